"""``Source``: random access to a prepared EMNIST split, without TensorFlow.

Every record of a prepared split is a TFRecord frame of the same size (``_pipeline.frames``), so
example i sits at a known offset of a known shard: ``source[i]`` reads its one frame from a
memory map of the shard, checks its CRC32C and cuts image and label out of it. Shards are opened
on first use in each process (a forked or unpickled copy opens its own), read-only, so a read-only
dataset folder serves as well. Nothing is converted (no array_record copy) and nothing imports
TensorFlow: split expressions are parsed by TFDS's own code, which does not need it.
"""

from __future__ import annotations

import bisect
import concurrent.futures
import mmap
import operator
import os
import queue
from collections.abc import Sequence
from pathlib import Path

import google_crc32c
import numpy as np

from emnist_idx import configs
from emnist_idx._pipeline import frames, prepared, splits
from emnist_idx._pipeline.frames import RecordLayout
from emnist_idx._prepare.shard_identity import ShardReads, check_fingerprint
from emnist_idx._prepare.tfrecord_frames import MASK_DELTA
from emnist_idx.errors import PreparedDataError

_PIECE_RECORDS = 16_384  # records read, checked and cut per step of a contiguous read
_READ_THREADS = os.cpu_count() or 1


class _Process:
    """How many forks lie between the first process and this one: a cheap "is this still the
    process that opened the maps" test (``os.getpid()`` is a system call on every read)."""

    forks = 0

    @classmethod
    def forked(cls) -> None:
        cls.forks += 1


os.register_at_fork(after_in_child=_Process.forked)


class Source:
    """A prepared EMNIST split as a map-style source: ``len()``, ``source[i]``, ``source[[i, j]]``.

    ``grain.MapDataset.source(Source(...))`` and ``torch.utils.data.DataLoader`` take it as it is.

    Args:
      config: "byclass", "bymerge", "balanced" (default), "letters", "digits" or "mnist".
      split: "train" (default) or "test", with TFDS's slicing ("train[:90%]", "train+test"), or a
        ``tfds.core.ReadInstruction``.
      data_dir: TFDS data directory (default: TFDS's, ``~/tensorflow_datasets``); a local folder,
        which may be read-only.
      download: prepare the config first when it is not prepared yet (as ``load_numpy`` does; this
        imports TensorFlow, in this process only). By default a missing config raises
        FileNotFoundError naming the command that prepares it.
      manual_dir: where NIST's files are when ``download`` prepares the config.

    Items:
      ``source[i]`` (a negative ``i`` counts from the end): ``(image, label)``, image uint8
      (28, 28), upright, 0 (background) to 255 (ink); label an ``int`` in
      ``[0, len(class_names(config)))``. ``source[[i, j, ...]]`` (any integer sequence or array) and
      ``source[start:stop:step]``: ``(images, labels)``, uint8 (n, 28, 28) and int64 (n,), read in
      one go. Every record read has its CRC32C checked; a damaged record, or a shard whose size is
      not what dataset_info.json says, raises PreparedDataError naming the shard.

    A ``Source`` pickles to its arguments: workers (forked, spawned, Grain's ``mp_prefetch``) open
    the shards themselves on first use.

    Example:

    ```python
    source = emnist_idx.Source("digits", "train[:90%]")
    image, label = source[0]
    images, labels = source[:256]
    ```
    """

    def __init__(self, config: str = configs.DEFAULT_CONFIG, split: splits.SplitArg = "train",
                 data_dir: str | os.PathLike | None = None, *, download: bool = False,
                 manual_dir: str | os.PathLike | None = None) -> None:
        from emnist_idx._pipeline.preparing import prepared_builder

        configs.check_config(config)
        if not isinstance(download, bool):
            raise ValueError(f"download must be True or False (a bool), got {download!r}")
        self.config, self.split = config, split
        self.data_dir = os.fspath(data_dir) if data_dir is not None else None
        builder = prepared_builder(config, data_dir=data_dir, manual_dir=manual_dir,
                                   download=download)
        if builder.info.file_format.value != "tfrecord":
            raise ValueError(f"{builder.data_path} was prepared as "
                             f"{builder.info.file_format.value}: Source reads TFRecord shards")
        self.class_names: tuple[str, ...] = tuple(builder.info.features["label"].names)
        self._layout = RecordLayout.of(builder.info.features)
        instructions = splits.split_info(builder, split).file_instructions
        prepared.check_shards(builder, self._layout, {os.fspath(i.filename) for i in instructions})
        # One run of consecutive records per file instruction: shard path, first record, count.
        self._runs = [(os.fspath(i.filename), int(i.skip), int(i.take), int(i.examples_in_shard))
                      for i in instructions]
        self._starts = np.cumsum([0] + [take for _, _, take, _ in self._runs]).tolist()
        self._length = self._starts[-1]
        self._one = _OneRecord(self._layout)
        self._maps: dict[str, tuple[mmap.mmap, np.ndarray]] = {}  # shard: its map, as frames
        self._frame_size = self._layout.frame_size
        self._opened_in = -1  # the fork count of the process whose maps _maps holds

    def __len__(self) -> int:
        return self._length

    def __repr__(self) -> str:
        return (f"Source({self.config!r}, {self.split!r}, data_dir={self.data_dir!r}): "
                f"{self._length:,} examples")

    def __reduce__(self):
        return type(self), (self.config, self.split, self.data_dir)

    def __getitem__(self, index):
        if type(index) is not int:  # noqa: E721 - an int, the common case, is read at once
            return self._read_other(index)
        position = index + self._length if index < 0 else index
        if not 0 <= position < self._length:
            raise IndexError(f"index {index} is out of range for {self!r}")
        run = bisect.bisect_right(self._starts, position) - 1 if len(self._runs) > 1 else 0
        path, skip, _, _ = self._runs[run]
        mapped = self._maps.get(path) if self._opened_in == _Process.forks else None
        if mapped is None:
            mapped = self._open_in_this_process(path)
        start = (skip + position - self._starts[run]) * self._frame_size
        try:
            return self._one.cut(mapped[0][start:start + self._frame_size])
        except frames.FrameError as exc:
            raise _named(path, start // self._frame_size, exc) from None

    def _read_other(self, index):
        """``source[index]`` for anything but a Python int."""
        if isinstance(index, slice):
            start, stop, step = index.indices(self._length)
            if step == 1:
                return self._read_range(start, max(start, stop))
            return self._read_indices(np.arange(start, stop, step))
        if isinstance(index, (int, np.integer)) and not isinstance(index, (bool, np.bool_)):
            return self[operator.index(index)]
        if isinstance(index, (Sequence, np.ndarray)) and not isinstance(index, (str, bytes)):
            indices = np.asarray(index)
            if indices.size == 0:
                indices = indices.astype(np.int64)
            if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
                raise TypeError(f"Source indices must be integers, got {index!r}")
            return self._read_indices(indices)
        raise TypeError(f"Source indices must be integers, integer sequences or slices, "
                        f"got {type(index).__name__}")

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[np.ndarray, int]]:
        """Examples one by one, read together: what a batch sampler (torch, Grain) asks for."""
        images, labels = self._read_indices(np.asarray(indices, dtype=np.int64))
        return list(zip(images, labels.tolist()))

    # --- reading ---

    def _read_indices(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        positions = np.where(indices < 0, indices + self._length, indices)
        bad = np.flatnonzero((positions < 0) | (positions >= self._length))
        if len(bad):
            raise IndexError(f"index {indices[bad[0]]} is out of range for {self!r}")
        indices = positions
        images = np.empty((len(indices), *configs.IMAGE_SHAPE[:2]), dtype=np.uint8)
        labels = np.empty(len(indices), dtype=np.int64)
        runs = np.searchsorted(self._starts, indices, side="right") - 1
        for run in np.unique(runs):
            chosen = np.flatnonzero(runs == run)
            path, skip, _, _ = self._runs[run]
            records = skip + indices[chosen] - self._starts[run]
            images[chosen], labels[chosen] = self._cut(path, self._frames(path)[records], records)
        return images, labels

    def _read_range(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Examples ``start`` to ``stop`` in file order, read as ``load_numpy`` reads a split:
        pieces of consecutive frames read into reused buffers and checked in bulk, on every core
        (file reads, CRC32C and numpy's copies release the GIL)."""
        images = np.empty((stop - start, *configs.IMAGE_SHAPE), dtype=np.uint8)
        labels = np.empty(stop - start, dtype=np.int64)
        pieces = []  # shard path, first record, count, records in the shard, position in output
        for run, (path, skip, take, in_shard) in enumerate(self._runs):
            first = max(start, self._starts[run])
            last = min(stop, self._starts[run] + take)
            for piece_start in range(first, last, _PIECE_RECORDS):
                count = min(_PIECE_RECORDS, last - piece_start)
                pieces.append((path, skip + piece_start - self._starts[run], count, in_shard,
                               piece_start - start))
        workers = max(1, min(len(pieces), _READ_THREADS))
        buffers: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()
        for _ in range(workers):
            buffers.put(np.empty((_PIECE_RECORDS, self._frame_size), dtype=np.uint8))

        shard_reads = ShardReads()  # each whole shard read is checked against its digest

        def read(piece: tuple[str, int, int, int, int]) -> None:
            path, record, count, in_shard, at = piece
            buffer = buffers.get()
            try:
                crcs = np.empty(count, dtype=np.uint32)
                _, labels[at:at + count] = prepared.read_records(
                    path, record, count, in_shard, self._layout, images[at:at + count], buffer,
                    crcs)
                shard_reads.add(path, record, crcs, in_shard)
            finally:
                buffers.put(buffer)

        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(read, pieces))  # re-raises the first error
        return images[..., 0], labels

    def _cut(self, path: str, block: np.ndarray, records: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
        try:
            shard_images, shard_labels = frames.cut(block, self._layout)
        except frames.FrameError as exc:
            raise _named(path, int(records[exc.index]), exc) from None
        return shard_images[..., 0], shard_labels

    def _frames(self, path: str) -> np.ndarray:
        """The shard's frames, (records, frame size) uint8, memory-mapped in this process."""
        mapped = self._maps.get(path) if self._opened_in == _Process.forks else None
        return (mapped or self._open_in_this_process(path))[1]

    def _open_in_this_process(self, path: str) -> tuple[mmap.mmap, np.ndarray]:
        if self._opened_in != _Process.forks:  # a new Source, or a forked copy: open our own
            self._maps, self._opened_in = {}, _Process.forks
        in_shard = next(total for run_path, _, _, total in self._runs if run_path == path)
        expected = in_shard * self._layout.frame_size
        try:
            with open(path, "rb") as stream:
                size = os.fstat(stream.fileno()).st_size
                if size != expected:  # changed since the constructor checked it
                    prepared.check_shard_size(  # raises its named error
                        Path(path), in_shard, self._layout.frame_size, str(self.split))
                mapped = mmap.mmap(stream.fileno(), expected, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise PreparedDataError(path, f"cannot be read ({exc.strerror or exc})",
                                    configs.rebuild_command(os.path.dirname(path))) from exc
        as_frames = np.frombuffer(mapped, dtype=np.uint8).reshape(in_shard, -1)
        # A swapped, foreign or stale shard of the right size: its count and first and last
        # record are not those recorded at prepare (each record's own CRC is checked as it is read).
        if in_shard:
            check_fingerprint(path, in_shard, *(google_crc32c.value(
                as_frames[index, frames.HEADER_SIZE:frames.HEADER_SIZE + self._layout.record_size])
                for index in (0, in_shard - 1)))
        self._maps[path] = (mapped, as_frames)
        return mapped, as_frames


class _OneRecord:
    """Cuts one checked frame, in a few bytes comparisons: the fast path of ``source[i]``.

    A record is what TFDS's serializer writes for its label with some image: the bytes around the
    image are the label's template in one of the layout's field orders. Anything else (and any
    frame whose CRC32C fails) goes to ``frames.cut``, which names the problem.
    """

    def __init__(self, layout: RecordLayout) -> None:
        self._layout = layout
        self._shape = layout.image_shape[:2]
        self._record_end = frames.HEADER_SIZE + layout.record_size  # the stored CRC32C follows
        image_size = int(np.prod(layout.image_shape))
        header = frames.frame_header(layout.record_size).tobytes()
        self._orders = [_templates(order, layout.record_size, image_size, header)
                        for order in layout.orders if order.label_table is not None]

    def cut(self, frame: bytes) -> tuple[np.ndarray, int]:
        """``(image (28, 28), label)`` of one frame, or FrameError."""
        crc = google_crc32c.value(frame[frames.HEADER_SIZE:self._record_end])
        # TFRecord's masked CRC (tfrecord_frames.masked_crc), in Python ints: faster for one
        masked = ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + MASK_DELTA) & 0xFFFFFFFF
        if masked == int.from_bytes(frame[self._record_end:], "little"):
            for image_start, image_stop, label_byte, table, heads, tails in self._orders:
                label = table[frame[label_byte]]
                if (label >= 0 and frame.startswith(heads[label])
                        and frame.startswith(tails[label], image_stop, self._record_end)):
                    return np.ndarray(self._shape, np.uint8,
                                      bytearray(frame[image_start:image_stop])), label
        images, labels = frames.cut(np.frombuffer(frame, np.uint8)[None], self._layout)
        return images[0, ..., 0], int(labels[0])  # not reached: frames.cut raises FrameError


def _templates(order: frames.FieldOrder, record_size: int, image_size: int, header: bytes
               ) -> tuple[int, int, int, list[int], list[bytes], list[bytes]]:
    """A one-byte-label field order, in frame positions: (image start and stop, label byte,
    label by that byte's value, and each label's frame bytes before the image (the frame header
    and the record's start) and after it (the record's end and the stored CRC32C))."""
    table = order.label_table
    if table is None:  # pragma: no cover - the caller passes one-byte-label orders only
        raise ValueError("a one-byte-label field order is needed")
    rows = np.zeros((len(order.label_values), record_size), dtype=np.uint8)
    rows[:, order.fixed_columns] = order.fixed_values
    rows[order.label_values, order.label_columns[0]] = order.label_keys
    start = frames.HEADER_SIZE + order.image_start
    stop = start + image_size
    return (start, stop, frames.HEADER_SIZE + int(order.label_columns[0]), table.tolist(),
            [header + row[:order.image_start].tobytes() for row in rows],
            [row[order.image_start + image_size:].tobytes() for row in rows])


def _named(path: str, record: int, exc: frames.FrameError) -> PreparedDataError:
    return PreparedDataError(path, f"record {record:,} {exc.problem}",
                             configs.rebuild_command(os.path.dirname(path)))
