"""Which epoch a ``load()`` result is on, and the shuffle seed each epoch derives from it.

Every epoch's order is a stateless function of ``(base_seed, epoch)``: the cached path permutes the
split with it, the streamed path orders its pieces and permutes each chunk with it. Both numbers
live in two host variables of the ``load()`` result, so an iterator can save them (a few bytes, see
``iteration.FlatIterator``) and a restore can set them back and replay that epoch's order exactly.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import tensorflow as tf
from tensorflow.python.ops import resource_variable_ops

from emnist_idx._pipeline.batching import no_autograph


class Epochs:
    """The epoch counter and base seed of one ``load()`` result.

    ``seed=None`` draws a random base seed: orders still differ between runs, but a checkpoint
    carries the seed, so a restored iterator replays its epoch's order all the same.
    """

    def __init__(self, seed: int | None) -> None:
        self.seeded = seed is not None  # the same orders in every run: reads stay in order
        base_seed = secrets.randbits(63) if seed is None else seed
        # ResourceVariable rather than tf.Variable: a tf.distribute strategy's scope must not make
        # these mirrored or per-replica (the input pipeline runs on the host, once).
        with tf.init_scope(), tf.device("/cpu:0"):
            self.base_seed = resource_variable_ops.ResourceVariable(
                base_seed, dtype=tf.int64, trainable=False, name="emnist_idx_base_seed")
            self.next_epoch = resource_variable_ops.ResourceVariable(
                0, dtype=tf.int64, trainable=False, name="emnist_idx_next_epoch")

    def draw(self) -> tf.Tensor:
        """In a dataset function: this epoch's stateless seed pair ``(base_seed, epoch)``, the
        counter moving on to the next epoch."""
        epoch = self.next_epoch.assign_add(1, read_value=True) - 1
        return tf.stack([self.base_seed.read_value(), epoch])

    def set(self, base_seed: int, next_epoch: int) -> None:
        """Restores the state a checkpoint saved: the next iteration starts epoch ``next_epoch``."""
        self.base_seed.assign(base_seed)
        self.next_epoch.assign(next_epoch)

    def each_epoch(self, make_epoch: Callable[[tf.Tensor], tf.data.Dataset]) -> tf.data.Dataset:
        """``make_epoch(seed_pair)`` once per iteration (each repetition of ``repeat()`` too), with
        the seed pair that ``draw()`` gives that epoch."""
        return tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).flat_map(
            no_autograph(lambda _: make_epoch(self.draw())))


def chunk_seed(epoch_seed: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """The stateless seed pair of chunk ``index`` of the epoch whose seed pair is ``epoch_seed``."""
    return tf.random.experimental.stateless_fold_in(epoch_seed, index)
