"""The in-memory cache of ``load()``: a split read once as uint8, then batches gathered by index.

Shuffling examples one at a time (``Dataset.shuffle``) costs a few microseconds per example. Here
each epoch draws one permutation of the indices and every batch is a single ``tf.gather`` of a slice
of it from the cached uint8 tensors, so later epochs run at hundreds of thousands of examples/s.

The cache is a ``split_fill.SplitFill``: the split's arrays, read once, checked, in background
threads from ``load()`` on, which the epochs' tensors adopt without a copy (``zero_copy``). The
first epoch runs while they fill: each block of batches waits for (or reads) only the pieces it
draws on, and a shuffled first epoch takes the pieces in the random order they are read
(``EpochPlans``). No array is captured from Python, so the dataset holds no large constants (no
2 GB GraphDef limit, byclass's 547 MB included).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from emnist_idx._pipeline import batching, split_fill
from emnist_idx._pipeline.batching import no_autograph
from emnist_idx import configs
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
# Pieces the shuffled first epoch permutes together (4 x 4,096 = 16,384 examples), in the random
# order they are read in.
FIRST_EPOCH_WINDOW = 4

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


def cached_batches(source: SplitSource, batch_size: int, *, shuffle: bool, seed: int | None,
                   drop_remainder: bool, transform: Callable[..., Batch] | None = None
                   ) -> tf.data.Dataset:
    """One epoch of batches from the split in memory, which is read in the background from now on.

    A batch is (uint8 images, int64 labels), or what ``transform`` makes of it. Batches are
    gathered and transformed ``blocks_of(batch_size)`` at a time, in one function call, and then
    cut to ``batch_size``: a tf.data function call costs tens of microseconds on its own, about
    as much as gathering and normalizing a batch of 128. A block whose examples are not all read
    yet (the first epoch) first waits for, or reads, the pieces it needs (``SplitFill.ensure``).
    """
    plans = EpochPlans(source, batch_size, shuffle=shuffle, seed=seed,
                       drop_remainder=drop_remainder)
    fill, block, served = plans.fill, plans.block, plans.served

    def epoch(_: tf.Tensor) -> tf.data.Dataset:
        order, needs, done = tf.numpy_function(plans.next_epoch, [], (tf.int64,) * 3,
                                               stateful=True)
        order = tf.ensure_shape(order, (source.num_examples,))
        needs, done = tf.ensure_shape(needs, (plans.num_blocks,)), tf.ensure_shape(done, ())
        images, labels = tf.py_function(fill.tensors, [], (tf.uint8, tf.int64))
        images = tf.ensure_shape(images, (source.num_examples, *configs.IMAGE_SHAPE))
        labels = tf.ensure_shape(labels, (source.num_examples,))

        def gather(index: tf.Tensor) -> Batch:
            start = index * block
            indices = order[start:tf.minimum(start + block, served)]

            def read_first() -> tf.Tensor:  # the gather must not run before its pieces are read
                ready = tf.numpy_function(fill.ensure, [needs[index]], tf.int64, stateful=True)
                with tf.control_dependencies([ready]):
                    return tf.identity(indices)

            indices = tf.cond(needs[index] <= done, lambda: indices, read_first)
            batch = tf.gather(images, indices), tf.gather(labels, indices)
            return transform(*batch) if transform else batch

        # deterministic: the smaller remainder batch must stay the last one.
        blocks = tf.data.Dataset.range(plans.num_blocks).map(
            no_autograph(gather), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        # Every block but the last holds whole batches, so no batch mixes two blocks.
        return blocks.rebatch(batch_size, drop_remainder=drop_remainder)

    return tf.data.Dataset.from_tensors(0).flat_map(no_autograph(epoch))


class EpochOrders:
    """Each epoch's order of a split's examples, and the order its pieces are read in.

    Shuffled, every epoch after the first is a permutation of the whole split. The first runs
    while the split is still being read (``split_fill``): its pieces are read in a random order,
    and the epoch takes them ``FIRST_EPOCH_WINDOW`` at a time in that order, each window's examples
    permuted as a whole, so that it starts before the read ends. Prepared shards are themselves in
    a random order (TFDS's writer shuffles the examples). Unshuffled, every epoch is the file
    order. ``seed`` fixes the whole sequence; every path of ``load()`` draws the same one.
    """

    def __init__(self, source: SplitSource, *, shuffle: bool, seed: int | None) -> None:
        self._shuffle = shuffle
        self._random = np.random.default_rng(seed)
        self.starts = split_fill.piece_starts(source)  # piece i: examples starts[i]:starts[i+1]
        count = len(self.starts) - 1
        self.read_order = self._random.permutation(count) if shuffle else np.arange(count)
        self._epochs = 0

    def next_epoch(self) -> np.ndarray:
        """The next epoch's order: int64 indices of all the split's examples."""
        first, self._epochs = self._epochs == 0, self._epochs + 1
        total = int(self.starts[-1])
        if not self._shuffle:
            return np.arange(total, dtype=np.int64)
        if not first:
            return self._random.permutation(total)
        starts = self.starts
        windows = [np.concatenate([np.arange(starts[piece], starts[piece + 1])
                                   for piece in self.read_order[at:at + FIRST_EPOCH_WINDOW]])
                   for at in range(0, len(self.read_order), FIRST_EPOCH_WINDOW)]
        return np.concatenate([self._random.permutation(window) for window in windows])

    def dataset(self) -> tf.data.Dataset:
        """One element per iteration of the result: the next epoch's order."""
        total = int(self.starts[-1])

        def order(_: tf.Tensor) -> tf.Tensor:
            drawn = tf.numpy_function(self.next_epoch, [], tf.int64, stateful=True)
            return tf.ensure_shape(drawn, (total,))

        return tf.data.Dataset.from_tensors(0).map(no_autograph(order))


class EpochPlans:
    """``EpochOrders`` over a ``SplitFill``, with what each block of an epoch needs read first."""

    def __init__(self, source: SplitSource, batch_size: int, *, shuffle: bool, seed: int | None,
                 drop_remainder: bool) -> None:
        steps = batching.num_batches(source.num_examples, batch_size, drop_remainder)
        self.served = steps * batch_size if drop_remainder else source.num_examples  # per epoch
        self.block = blocks_of(batch_size) * batch_size
        self.num_blocks = -(-self.served // self.block)
        self.orders = EpochOrders(source, shuffle=shuffle, seed=seed)
        self.fill = split_fill.SplitFill(source, self.orders.read_order)

    def next_epoch(self) -> tuple[np.ndarray, np.ndarray, np.int64]:
        """(order of the examples, pieces of the read order each block needs, pieces read now)."""
        fill = self.fill
        order = self.orders.next_epoch()
        done = fill.done()
        if done == fill.num_pieces:
            needs = np.zeros(self.num_blocks, dtype=np.int64)
        else:  # per block: 1 + the latest position in the read order of a piece it draws from
            rank = np.empty(fill.num_pieces, dtype=np.int64)
            rank[fill.read_order] = np.arange(fill.num_pieces)
            position = rank[np.searchsorted(fill.starts, order[:self.served], side="right") - 1]
            needs = np.maximum.reduceat(position, np.arange(0, self.served, self.block)) + 1
        return order, needs, np.int64(done)


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
