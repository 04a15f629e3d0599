"""Python loops over ``load()``'s batches, with less of tf.data's per-batch cost.

``for x, y in dataset`` calls tf.data's ``OwnedIterator.__next__`` once a batch. In TF 2.21 on
these 2-core VMs that call took 350-440 us a batch, whatever the pipeline. Well over half of it
rebuilds the ``(images, labels)`` tuple from the op's flat list of tensors through ``tf.nest``,
whose typing-Protocol ``isinstance`` checks are slow. ``load()``'s elements are always a flat
tuple of dense tensors, for which that rebuild is ``tuple(tensors)``: ``FlatIterator`` does only
that. TensorFlow's iterator also switches to a fresh synchronous executor for every element, which
``FlatIterator`` does only when the thread's executor is asynchronous. It iterates ready batches in
about 120-140 us each, against 340-420 us. It is TensorFlow's iterator in every other respect
(``get_next``, ``tf.function``) but checkpointing.

Checkpoints: tf.data's own iterator state cannot be saved on the cached path (the cache holds the
whole split, read by a stateful op) and would hold prefetched batches on the streamed one. A
``FlatIterator`` of a ``load()`` result (``Progress``) instead saves three integers: the epoch's
base seed and number (``epochs``) and the elements served in it. Restoring sets the epoch counter
back and recreates the iterator over ``dataset.skip(served)``: the epoch's order is a stateless
function of its seed pair, so the restored iterator yields exactly the elements the saved one would
have yielded next.

``FlatBatches`` is a dataset made of another's ops whose eager ``iter()`` is a ``FlatIterator``.
Anything chained on it is an ordinary dataset with TensorFlow's iterator; inside ``tf.function``
its iteration is TensorFlow's own. ``FlatIterator`` relies on ``OwnedIterator``'s private
``_next_internal`` and on three private attributes (its resource, flat output types and shapes);
where an iterator lacks those attributes, ``iter()`` falls back to TensorFlow's iterator.

Ctrl-C: ``FlatIterator`` hands the op its output types and shapes as plain ints and tuples
(``plain_signature``), not ``DType`` and ``TensorShape`` objects. TensorFlow's fast path
(``TFE_Py_FastPathExecute``) reads a shape through ``len()`` and ``[]``, which on a ``TensorShape``
run Python code, and so Python's pending signal handlers: a ``KeyboardInterrupt`` raised there is not
checked. ``len()`` returning -1 in the first of its two passes sized the dims buffer too small
(glibc then aborted: ``free(): invalid next size (fast)``), an item returning NULL was dereferenced
(a segfault). Ints and tuples are read in C alone, so the interrupt is raised after the op returns.
"""

from __future__ import annotations

import dataclasses
import functools

import tensorflow as tf
from tensorflow.python.data.ops import iterator_ops
from tensorflow.python.eager import context
from tensorflow.python.ops import gen_dataset_ops

from emnist_idx.errors import NotCheckpointableError
from emnist_idx._pipeline.epochs import Epochs

_PRIVATE_ATTRIBUTES = ("_iterator_resource", "_flat_output_types", "_flat_output_shapes")


class SameOps(tf.data.Dataset):
    """A dataset made of another's ops (``dataset``), to which a subclass adds one behaviour."""

    def __init__(self, dataset: tf.data.Dataset) -> None:
        self._dataset = dataset
        super().__init__(tf.data.experimental.to_variant(dataset))

    def _inputs(self) -> list[tf.data.Dataset]:
        return [self._dataset]

    @property
    def element_spec(self):
        return self._dataset.element_spec


@dataclasses.dataclass(frozen=True)
class Progress:
    """What a ``FlatIterator`` needs to checkpoint its position: the result's epoch counter and
    seed (``epochs``), the elements of one epoch, and whether the dataset repeats them forever."""

    epochs: Epochs
    per_epoch: int
    repeats: bool


class FlatIterator(iterator_ops.OwnedIterator):
    """TensorFlow's eager iterator over a dataset of flat tuples of dense tensors, returning each
    element as the tuple of tensors its op yields (no ``tf.nest`` rebuild); checkpointed as a
    position in the epoch's stateless order when the dataset has a ``Progress``."""

    def __init__(self, dataset: FlatBatches) -> None:
        self._whole, self._progress = dataset, dataset.progress
        self._uncheckpointable = dataset.uncheckpointable
        # The epoch this iterator starts on: the counter moves on as the iterator's epoch begins.
        self._first_epoch = int(self._progress.epochs.next_epoch.numpy()) if self._progress else 0
        self._served = 0  # elements returned by this iterator, all epochs together
        super().__init__(dataset)

    def _next_internal(self):
        if not context.executing_eagerly():  # inside tf.function: TensorFlow's own
            return super()._next_internal()
        # Synchronously, as TensorFlow's eager iterator runs: the end of the data is an error
        # status. TensorFlow switches to a new synchronous executor for every element (~40 us);
        # that is needed only when this thread's executor is asynchronous.
        if context.context().is_async():
            with context.execution_mode(context.SYNC):
                element = self._get_next()
        else:
            element = self._get_next()
        self._served += 1
        return element

    @functools.cached_property
    def _plain_signature(self) -> tuple[tuple[int, ...], tuple[tuple[int | None, ...] | None, ...]]:
        return plain_signature(self._flat_output_types, self._flat_output_shapes)

    def _get_next(self) -> tuple[tf.Tensor, ...]:
        output_types, output_shapes = self._plain_signature
        return tuple(gen_dataset_ops.iterator_get_next(
            self._iterator_resource, output_types=output_types, output_shapes=output_shapes))

    def _serialize_to_tensors(self):
        if self._uncheckpointable:
            raise NotCheckpointableError(self._uncheckpointable)
        if self._progress is None:  # not a load() result: TensorFlow's own checkpoint
            return super()._serialize_to_tensors()
        epoch, served = self._first_epoch, self._served
        if self._progress.repeats:
            passed, served = divmod(served, self._progress.per_epoch)
            epoch += passed
        return {"base_seed": self._progress.epochs.base_seed.read_value(),
                "epoch": tf.constant(epoch, tf.int64), "served": tf.constant(served, tf.int64)}

    def _restore_from_tensors(self, restored_tensors):
        if self._progress is None or self._uncheckpointable:
            return super()._restore_from_tensors(restored_tensors)
        epoch, served = int(restored_tensors["epoch"]), int(restored_tensors["served"])
        self._iterator_resource = None  # the old iterator goes before the counter is set back
        self._progress.epochs.set(int(restored_tensors["base_seed"]), epoch)
        self._first_epoch, self._served = epoch, served
        # After every stage of the pipeline (assert_cardinality included): skipping is replaying.
        self._create_iterator(self._whole.skip(served))
        return []


class FlatBatches(SameOps):
    """``dataset``'s ops; iterated eagerly in Python, a ``FlatIterator``.

    ``progress`` makes its iterators checkpointable as positions (``FlatIterator``);
    ``uncheckpointable`` says why they cannot be (raised as ``NotCheckpointableError``).
    """

    def __init__(self, dataset: tf.data.Dataset, progress: Progress | None = None, *,
                 uncheckpointable: str | None = None) -> None:
        self.progress, self.uncheckpointable = progress, uncheckpointable
        super().__init__(dataset)

    def __iter__(self):
        if not (tf.executing_eagerly() and is_flat(self.element_spec)):
            return super().__iter__()
        iterator = FlatIterator(self)
        if not all(hasattr(iterator, name) for name in _PRIVATE_ATTRIBUTES):
            return super().__iter__()  # a TensorFlow release without them
        return iterator


def is_flat(element_spec: object) -> bool:
    """Whether elements of ``element_spec`` are a tuple of dense tensors."""
    return isinstance(element_spec, tuple) and all(
        isinstance(spec, tf.TensorSpec) for spec in element_spec)


def plain_signature(types: list[tf.DType], shapes: list[tf.TensorShape]
                    ) -> tuple[tuple[int, ...], tuple[tuple[int | None, ...] | None, ...]]:
    """``types`` as their enum ints and ``shapes`` as tuples (None: unknown rank or size): attribute
    values that TensorFlow's fast path reads without running Python code (see the module's doc)."""
    return (tuple(dtype.as_datatype_enum for dtype in types),
            tuple(None if shape.rank is None else tuple(shape.as_list()) for shape in shapes))
