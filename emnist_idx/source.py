"""``Source``: random access to a prepared EMNIST split, without TensorFlow.

Every record of a prepared split is a TFRecord frame of the same size (``_pipeline.frames``), so
example i sits at a known offset of a known shard: ``source[i]`` reads its one frame from a
memory map of the shard, checks its CRC32C and cuts image and label out of it. Shards are opened
on first use in each process (a forked or unpickled copy opens its own), read-only, so a read-only
dataset folder serves as well. A data_dir on object storage (gs://, any etils.epath URL) cannot be
mapped: its shards are read in checked blocks through a bounded cache (``remote_shards``).
Nothing is converted (no array_record copy) and nothing imports TensorFlow: split expressions are
parsed by TFDS's own code, which does not need it.
"""

from __future__ import annotations

import bisect
import concurrent.futures
import mmap
import operator
import os
import queue
from collections.abc import Sequence

import numpy as np

from emnist_idx import configs
from emnist_idx._format import storage
from emnist_idx._pipeline import frames, prepared, remote_shards, splits
from emnist_idx._pipeline.frames import RecordLayout
from emnist_idx._prepare.shard_identity import ShardReads, check_fingerprint
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
        which may be read-only, or a URL etils.epath reads (``gs://bucket/tfds``; see below).
      download: prepare the config first when it is not prepared yet (as ``load_numpy`` does; this
        imports TensorFlow, in this process only). By default a missing config raises
        FileNotFoundError naming the command that prepares it.
      manual_dir: where NIST's files are when ``download`` prepares the config.
      remote_cache_bytes: for a data_dir on object storage, how many bytes of records read each
        process keeps for this Source (default 256 MiB; 0: none).

    Items:
      ``source[i]`` (a negative ``i`` counts from the end): ``(image, label)``, image uint8
      (28, 28), upright, 0 (background) to 255 (ink); label an ``int`` in
      ``[0, len(class_names(config)))``. ``source[[i, j, ...]]`` (any integer sequence or array) and
      ``source[start:stop:step]``: ``(images, labels)``, uint8 (n, 28, 28) and int64 (n,), read in
      one go. Every record read has its CRC32C checked; a damaged record, or a shard whose size is
      not what dataset_info.json says, raises PreparedDataError naming the shard.

    A ``Source`` pickles to its arguments: workers (forked, spawned, Grain's ``mp_prefetch``) open
    the shards themselves on first use.

    On object storage, shards cannot be memory-mapped: a single or list read fetches the ~1 MiB
    blocks of records that hold its examples with ranged reads (every record's CRC32C checked) and
    keeps them in a least-recently-used cache of ``remote_cache_bytes`` per process; slices
    (``source[:]``, ``source[a:b]``) stream in pieces, as ``load_numpy`` does, uncached. Each
    shard's size and fingerprint are checked on its first use in a process. URLs go through
    etils.epath: with TensorFlow importable and ``EPATH_USE_TF`` unset, epath imports TensorFlow
    and uses its file system; set ``EPATH_USE_TF=false`` to read through fsspec (gcsfs for gs://)
    without TensorFlow.

    Example:

    ```python
    source = emnist_idx.Source("digits", "train[:90%]")
    image, label = source[0]
    images, labels = source[:256]
    ```
    """

    def __init__(self, config: str = configs.DEFAULT_CONFIG, split: splits.SplitArg = "train",
                 data_dir: str | os.PathLike | None = None, *, download: bool = False,
                 manual_dir: str | os.PathLike | None = None,
                 remote_cache_bytes: int = remote_shards.DEFAULT_CACHE_BYTES) -> None:
        from emnist_idx._pipeline.preparing import prepared_builder

        configs.check_config(config)
        if not isinstance(download, bool):
            raise ValueError(f"download must be True or False (a bool), got {download!r}")
        if type(remote_cache_bytes) is not int or remote_cache_bytes < 0:
            raise ValueError(f"remote_cache_bytes must be an int >= 0, got {remote_cache_bytes!r}")
        self.config, self.split = config, split
        self.remote_cache_bytes = remote_cache_bytes
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
        self._one = frames.OneFrame(self._layout)
        self._shards: dict[str, _MappedShard | remote_shards.RemoteShard] = {}  # opened in this process
        self._remote: remote_shards.RemoteShards | None = None  # their blocks, in this process
        self._opened_in = -1  # the fork count of the process whose shards _shards holds

    def __len__(self) -> int:
        return self._length

    def __repr__(self) -> str:
        return (f"Source({self.config!r}, {self.split!r}, data_dir={self.data_dir!r}): "
                f"{self._length:,} examples")

    def __reduce__(self):
        return _restored, (type(self), self.config, self.split, self.data_dir,
                           self.remote_cache_bytes)

    def __getitem__(self, index):
        if type(index) is not int:  # noqa: E721 - an int, the common case, is read at once
            return self._read_other(index)
        position = index + self._length if index < 0 else index
        if not 0 <= position < self._length:
            raise IndexError(f"index {index} is out of range for {self!r}")
        run = bisect.bisect_right(self._starts, position) - 1 if len(self._runs) > 1 else 0
        path, skip, _, _ = self._runs[run]
        shard = self._shards.get(path) if self._opened_in == _Process.forks else None
        if shard is None:
            shard = self._open_in_this_process(path)
        record = skip + position - self._starts[run]
        try:
            return self._one.cut(shard.frame(record))
        except frames.FrameError as exc:
            raise prepared.frame_error(path, record, exc) from None

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
            shard = self._shards.get(path) if self._opened_in == _Process.forks else None
            shard_frames = (shard or self._open_in_this_process(path)).frames(records)
            try:
                shard_images, labels[chosen] = frames.cut(shard_frames, self._layout)
            except frames.FrameError as exc:
                raise prepared.frame_error(path, int(records[exc.index]), exc) from None
            images[chosen] = shard_images[..., 0]
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
            buffers.put(np.empty((_PIECE_RECORDS, self._layout.frame_size), dtype=np.uint8))

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

    def _open_in_this_process(self, path: str) -> _MappedShard | remote_shards.RemoteShard:
        if self._opened_in != _Process.forks:  # a new Source, or a forked copy: open our own
            self._shards, self._remote, self._opened_in = {}, None, _Process.forks
        in_shard = next(total for run_path, _, _, total in self._runs if run_path == path)
        shard: _MappedShard | remote_shards.RemoteShard
        if storage.is_local(path):
            shard = _MappedShard(path, in_shard, self._layout, str(self.split))
        else:
            if self._remote is None:
                self._remote = remote_shards.RemoteShards(
                    self._layout, {run_path: total for run_path, _, _, total in self._runs},
                    str(self.split), self.remote_cache_bytes)
            shard = self._remote.shard(path)
        self._shards[path] = shard
        return shard


def _restored(cls: type[Source], config: str, split: splits.SplitArg, data_dir: str | None,
              remote_cache_bytes: int) -> Source:
    """A Source from its pickle: its arguments."""
    return cls(config, split, data_dir, remote_cache_bytes=remote_cache_bytes)


class _MappedShard:
    """A local shard, memory-mapped read-only, its size and fingerprint checked when mapped."""

    def __init__(self, path: str, in_shard: int, layout: RecordLayout, split: str) -> None:
        self._frame_size = layout.frame_size
        expected = in_shard * self._frame_size
        try:
            with open(path, "rb") as stream:
                if os.fstat(stream.fileno()).st_size != expected:  # changed since the check
                    prepared.check_shard(path, in_shard, layout, split)  # raises its named error
                self._map = mmap.mmap(stream.fileno(), expected, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise PreparedDataError(path, f"cannot be read ({exc.strerror or exc})",
                                    configs.rebuild_command(os.path.dirname(path))) from exc
        self._frames = np.frombuffer(self._map, dtype=np.uint8).reshape(in_shard, -1)
        # A swapped, foreign or stale shard of the right size: its count and first and last
        # record are not those recorded at prepare (each record's own CRC is checked as it is read).
        if in_shard:
            check_fingerprint(path, in_shard, layout.record_crc(self._frames[0]),
                              layout.record_crc(self._frames[-1]))

    def frame(self, record: int) -> bytes:
        start = record * self._frame_size
        return self._map[start:start + self._frame_size]

    def frames(self, records: np.ndarray) -> np.ndarray:
        return self._frames[records]
