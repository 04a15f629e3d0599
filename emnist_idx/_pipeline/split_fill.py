"""The cached split's arrays, filled piece by piece in background threads from ``load()`` on.

``SplitFill`` allocates the split's uint8 images and int64 labels once (aligned, so the cache's
tensors adopt them without a copy: ``zero_copy``) and reads the split into them in pieces of
``PIECE_RECORDS`` records, every record checked (``reading.read_piece_into``), in a given order of
pieces. Reading starts at once, on every core, so it overlaps building the pipeline, the model and
the first epoch itself: a consumer asks only for the pieces it needs (``ensure``), reading any that
no thread has started yet. A damaged piece raises ``PreparedDataError`` naming its shard in the
consumer that needs it; it is read again by the next consumer that needs it.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import tensorflow as tf

from emnist_idx import configs
from emnist_idx._pipeline import reading, zero_copy
from emnist_idx._pipeline.reading import SplitSource

# Records per piece: the unit of reading, and of the first epoch's order (``memory_cache``). Small
# enough that the first epoch mixes many pieces, large enough that a read's fixed costs (open,
# seek, one CRC pass) stay small: 3.4 MB of frames.
PIECE_RECORDS = 4096
_READ_THREADS = os.cpu_count() or 1
_PENDING, _READING, _DONE, _FAILED = range(4)


def piece_starts(source: SplitSource) -> np.ndarray:
    """Where each piece of the split starts, and its end: piece i is examples [i]:[i + 1]."""
    counts = [take for _, _, take, _ in _pieces(source)] or [source.num_examples]
    return np.cumsum([0, *counts])


def _pieces(source: SplitSource) -> list[tuple[str, int, int, int]]:
    return reading.pieces(source.instructions, PIECE_RECORDS) if source.is_tfrecord else []


class SplitFill:
    """The split's images and labels in file order, being read piece by piece in ``read_order``.

    TFRecord shards are read in background threads from construction on. Other formats
    (array_record, through TFDS's data source) are one piece, read by the first ``ensure``.
    """

    def __init__(self, source: SplitSource, read_order: np.ndarray | None = None) -> None:
        total = source.num_examples
        self.images = zero_copy.aligned_empty((total, *configs.IMAGE_SHAPE), np.uint8)
        self.labels = zero_copy.aligned_empty((total,), np.int64)
        self._source = source
        self._pieces = _pieces(source)
        self.starts = piece_starts(source)  # piece i holds examples starts[i]:starts[i + 1]
        count = len(self.starts) - 1
        self.read_order = np.arange(count) if read_order is None else np.asarray(read_order)
        if sorted(self.read_order.tolist()) != list(range(count)):
            raise ValueError(f"read_order must be a permutation of the {count} pieces")
        self._state = [_PENDING] * count
        self._finished = [threading.Event() for _ in range(count)]
        self._lock = threading.Lock()
        self._done = 0  # read_order[:_done] are all read
        self._tensors: tuple[tf.Tensor, tf.Tensor] | None = None
        # Each thread reads its pieces' frames into one buffer: a new one per piece would be
        # fresh memory each time, which the kernel must map (and zero) again.
        self._buffers = threading.local()
        if source.is_tfrecord:
            for index in range(min(_READ_THREADS, count)):
                threading.Thread(target=self._read_in_order, daemon=True,
                                 name=f"emnist_idx-read-split-{index}").start()

    @property
    def num_pieces(self) -> int:
        return len(self.read_order)

    def done(self) -> int:
        """How many pieces at the start of ``read_order`` are read: ``ensure(done())`` waits for
        nothing."""
        return self._done

    def ensure(self, count: int | np.integer) -> int:
        """Returns once the first ``count`` pieces of ``read_order`` are read, reading here any
        that no thread has started. Raises ``PreparedDataError`` for a damaged one."""
        for piece in self.read_order[:int(count)].tolist():
            if self._state[piece] == _DONE:
                continue
            if self._claim(piece, retry_failed=True):
                self._read(piece, reraise=True)
                continue
            self._finished[piece].wait()
            if self._state[piece] != _DONE:  # its reader failed: read it again, here
                self.ensure(count)
                break
        return int(count)

    def tensors(self) -> tuple[tf.Tensor, tf.Tensor]:
        """The images and labels as tensors that hold the arrays' memory (``zero_copy``).

        Read only the examples of pieces that ``ensure`` has returned for.
        """
        if self._tensors is None:
            self._tensors = zero_copy.as_tensor(self.images), zero_copy.as_tensor(self.labels)
        return self._tensors

    def _read_in_order(self) -> None:
        for piece in self.read_order.tolist():
            if self._claim(piece, retry_failed=False):
                self._read(piece, reraise=False)

    def _claim(self, piece: int, *, retry_failed: bool) -> bool:
        with self._lock:
            state = self._state[piece]
            if state == _PENDING or (retry_failed and state == _FAILED):
                self._state[piece] = _READING
                self._finished[piece].clear()
                return True
            return False

    def _read(self, piece: int, *, reraise: bool) -> None:
        start, stop = int(self.starts[piece]), int(self.starts[piece + 1])
        try:
            if self._pieces:
                reading.read_piece_into(self._pieces[piece], self._source.layout,
                                        self.images[start:stop], self.labels[start:stop],
                                        self._frames_buffer())
            else:
                self.images[...], self.labels[...] = reading.read_split(self._source)
        except BaseException:
            self._finish(piece, _FAILED)
            if reraise:
                raise
            return  # the consumer that needs this piece reads it again and raises
        self._finish(piece, _DONE)

    def _frames_buffer(self) -> np.ndarray:
        buffer = getattr(self._buffers, "frames", None)
        if buffer is None:
            buffer = np.empty(PIECE_RECORDS * self._source.layout.frame_size, dtype=np.uint8)
            self._buffers.frames = buffer
        return buffer

    def _finish(self, piece: int, state: int) -> None:
        with self._lock:
            self._state[piece] = state
            while self._done < len(self.read_order) and \
                    self._state[self.read_order[self._done]] == _DONE:
                self._done += 1
        self._finished[piece].set()
