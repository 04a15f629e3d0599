"""The in-memory cache of ``load()``: a split read once as uint8, then batches gathered by index.

Shuffling examples one at a time (``Dataset.shuffle``) costs a few microseconds per example. Here
each epoch draws one permutation of the indices and every batch is a single ``tf.gather`` of a slice
of it from the cached uint8 tensors, so later epochs run at hundreds of thousands of examples/s.

The cache is ``Dataset.cache()`` of a one-element dataset whose element is the whole split, filled
on the first epoch with the split that ``load()`` started reading in the background. No array is
captured from Python, so the dataset holds no large constants (no 2 GB GraphDef limit, byclass's
547 MB included). The split is read once, in parallel and checked, straight into the arrays the
cache keeps (``reading.read_split`` and ``zero_copy``): no copy of it is made on the way into
TensorFlow.
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import threading
import weakref
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from emnist_idx import configs
from emnist_idx._pipeline import batching, python_calls, reading, zero_copy
from emnist_idx._pipeline.batching import no_autograph
from emnist_idx._pipeline.epochs import Epochs
from emnist_idx._pipeline.reading import SplitSource

# cache="auto" caches a split when its uint8 images and int64 labels take at most this share of the
# memory available when load() is called. Filling it needs that and a few pieces of records being
# read, so this leaves room for the model and everything else.
CACHE_FRACTION = 0.25
_BYTES_PER_EXAMPLE = math.prod(configs.IMAGE_SHAPE) + 8
# Examples gathered and transformed per call of the cached epoch's map (8 batches of 128): on
# byclass in-graph 1.1-1.4 s an epoch against 1.4-1.5 s one batch per call, in a Python loop
# 2.1-2.5 s against 3.0-5.2 s (the ceiling: 2.2 s). Float32 blocks of 3.2 MB.
BLOCK_EXAMPLES = 1024

Batch = tuple[tf.Tensor, tf.Tensor]


def cache_bytes(num_examples: int) -> int:
    """Memory the cache takes for ``num_examples``: 784 bytes of pixels and an int64 label each."""
    return num_examples * _BYTES_PER_EXAMPLE


def available_memory() -> int:
    """Bytes of memory available now: psutil's estimate if installed, else free pages (sysconf)."""
    try:
        import psutil  # noqa: PLC0415 - optional dependency
    except ImportError:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return int(psutil.virtual_memory().available)


def fits_in_memory(num_examples: int) -> bool:
    """Whether cache="auto" caches a split of ``num_examples`` (see ``CACHE_FRACTION``)."""
    return cache_bytes(num_examples) <= CACHE_FRACTION * available_memory()


def cached_batches(source: SplitSource, batch_size: int, *, shuffle: bool, epochs: Epochs,
                   drop_remainder: bool, transform: Callable[..., Batch] | None = None
                   ) -> tf.data.Dataset:
    """One epoch of batches from the split in memory, which is read in the background from now on.

    A batch is (uint8 images, int64 labels), or what ``transform`` makes of it. Batches are
    gathered and transformed ``blocks_of(batch_size)`` at a time, in one function call, and then
    cut to ``batch_size``: a tf.data function call costs tens of microseconds on its own, about
    as much as gathering and normalizing a batch of 128.
    """
    whole, prefetch = _whole_split(source)
    steps = batching.num_batches(source.num_examples, batch_size, drop_remainder)
    served = steps * batch_size if drop_remainder else source.num_examples  # per epoch
    block = blocks_of(batch_size) * batch_size

    def epoch(order: tf.Tensor) -> tf.data.Dataset:
        # get_single_element reads past the only element, which completes the cache on first use.
        images, labels = whole.get_single_element()

        def gather(index: tf.Tensor) -> Batch:
            start = index * block
            indices = order[start:tf.minimum(start + block, served)]
            batch = tf.gather(images, indices), tf.gather(labels, indices)
            return transform(*batch) if transform else batch

        # deterministic: the smaller remainder batch must stay the last one.
        blocks = tf.data.Dataset.range(-(-served // block)).map(
            no_autograph(gather), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        # Every block but the last holds whole batches, so no batch mixes two blocks.
        return blocks.rebatch(batch_size, drop_remainder=drop_remainder)

    batches = each_epoch(source.num_examples, epoch, shuffle=shuffle, epochs=epochs)
    # The pipeline's functions hold the read only weakly (``python_calls.weak_method``): this
    # dataset, what is chained on it and their iterators keep it, and it goes with the last of them.
    batches._emnist_idx_split_prefetch = prefetch  # pylint: disable=protected-access
    return batches


def blocks_of(batch_size: int) -> int:
    """Batches gathered per call: ``BLOCK_EXAMPLES`` examples' worth, at least one batch."""
    return max(1, BLOCK_EXAMPLES // batch_size)


def ceiling_batches(num_examples: int, batch_size: int = 128, one_hot: int | None = None
                    ) -> tf.data.Dataset:
    """The pipeline's own ceiling: one epoch of precomputed model-ready batches, nothing else.

    The same batch count and shapes as ``load()``'s epoch of ``num_examples`` (float32 images,
    int64 labels, or float32 one-hot rows of ``one_hot`` classes), each batch already built, then
    prefetched: what iterating a tf.data pipeline costs by itself. ``benchmarks/run.py`` times it
    to show how far the cached epochs are from that limit.
    """
    full, rest = divmod(num_examples, batch_size)

    def batch(size: int) -> tf.data.Dataset:
        labels = tf.zeros((size,), tf.int64)
        if one_hot:
            labels = tf.one_hot(labels, one_hot, dtype=tf.float32)
        return tf.data.Dataset.from_tensors((tf.zeros((size, *configs.IMAGE_SHAPE), tf.float32),
                                             labels))

    batches = batch(batch_size).repeat(full)
    if rest:
        batches = batches.concatenate(batch(rest))
    return batches.prefetch(tf.data.AUTOTUNE)


def each_epoch(num_examples: int, make_epoch: Callable[[tf.Tensor], tf.data.Dataset], *,
               shuffle: bool, epochs: Epochs) -> tf.data.Dataset:
    """``make_epoch(order)`` once per iteration, ``order`` being that epoch's order of the
    examples (int64 indices): with ``shuffle`` a permutation drawn statelessly from the epoch's
    seed pair (``epochs``), so a checkpoint restores it; file order without.

    The order is drawn inside the one function tf.data traces for the epoch: a function of its
    own would cost ``load()`` another ~10 ms of tracing.
    """
    def epoch(seed_pair: tf.Tensor) -> tf.data.Dataset:
        order = tf.range(num_examples, dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(order, seed=seed_pair)
        return make_epoch(order)

    return epochs.each_epoch(epoch)


def _whole_split(source: SplitSource) -> tuple[tf.data.Dataset, SplitPrefetch | None]:
    """A cached one-element dataset: all of the split's images and labels, in file order; and the
    background read that it takes them from, which the caller must keep alive with the dataset.

    TFRecord shards are read by ``reading.read_split`` (every record checked, on every core) into
    aligned numpy arrays, which the cache then holds as they are (``zero_copy``): one pass over the
    split's bytes. That read starts at once, in the background (``SplitPrefetch``), so it overlaps
    building the pipeline and whatever the caller does before iterating. Other formats are
    assembled from the data source's chunks on first iteration.
    """
    total = source.num_examples
    if source.is_tfrecord:
        prefetch = SplitPrefetch(source)
        take = python_calls.weak_method(prefetch.take_tensors, "the split read in the background")

        def read() -> Batch:  # py_function: its output tensors are passed on without a copy
            return tf.py_function(take, [], (tf.uint8, tf.int64))
    else:
        prefetch = None

        def read() -> Batch:
            return reading.read_chunks(source).rebatch(total).get_single_element()

    def whole(_: tf.Tensor) -> Batch:
        images, labels = read()
        return (tf.ensure_shape(images, (total, *configs.IMAGE_SHAPE)),
                tf.ensure_shape(labels, (total,)))

    return tf.data.Dataset.from_tensors(0).map(no_autograph(whole)).cache(), prefetch


class SplitPrefetch:
    """``reading.read_split(source)`` running in a background thread, handed over once.

    ``take()`` waits for it and returns its arrays, or raises its error (``PreparedDataError``
    naming the shard). The result is handed over only once, so that nothing but the cache keeps
    the split in memory; a later ``take()`` (the cache was abandoned before it filled, or the read
    failed) reads the split again. Collected before ``take()``, it cancels the read (between
    pieces), and the read's arrays go with it.
    """

    def __init__(self, source: SplitSource) -> None:
        self._source = source
        self._lock = threading.Lock()
        cancelled = threading.Event()
        weakref.finalize(self, cancelled.set)
        executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="emnist_idx-read-split")
        self._future: concurrent.futures.Future | None = executor.submit(
            reading.read_split, source, cancelled)
        executor.shutdown(wait=False)  # the thread ends with the read

    def take(self) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            future, self._future = self._future, None
        if future is None:
            return reading.read_split(self._source)
        return future.result()

    def take_tensors(self) -> Batch:
        """``take()``'s arrays as tensors that hold their memory (``zero_copy``)."""
        images, labels = self.take()
        return zero_copy.as_tensor(images), zero_copy.as_tensor(labels)
