"""Writing a split's shards in bulk, in TFDS's own file layout and formats.

Three threads overlap on a TFRecord prepare: one gunzips the images, one encodes and frames the
records (CRC32C), and the calling thread writes them and then hands the images to ``on_chunk``
(counting the train pixels), which balances the three about evenly.
gunzip, numpy copies and file writes release the GIL, so they share both cores. The images file is
streamed once per split; chunks are cut where shards end.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import BinaryIO, TypeVar

import numpy as np
from etils import epath
import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import shard_utils

from emnist_idx._prepare import tfrecord_frames
from emnist_idx._prepare.shard_identity import ShardDigest, ShardIdentity
from emnist_idx._prepare.records import RecordEncoder

T = TypeVar("T")
# Small chunks stay in cache and keep the peak memory low: measured on byclass, 2048 images per
# chunk prepared fastest (~140k ex/s) with ~40 MB peak growth; 16384 ran at ~70k ex/s, 220 MB.
RECORDS_PER_CHUNK = 2048

ChunkSource = Callable[[int, int], Iterable[np.ndarray]]
# (shard index, index of the piece's first example in the split, upright images)
Piece = tuple[int, int, np.ndarray]


def plan_shards(num_examples: int, record_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each shard, with TFDS's own rule for the number of shards."""
    num_shards = shard_utils.ShardConfig.calculate_number_shards(
        total_size=num_examples * record_size, num_examples=num_examples
    )
    bounds = [0, *shard_utils.get_shard_boundaries(num_examples, num_shards)]
    return list(zip(bounds[:-1], bounds[1:]))


def write_split(
    *,
    split_name: str,
    labels: np.ndarray,
    read_images: ChunkSource,
    encoder: RecordEncoder,
    filename_template: tfds.core.ShardedFileTemplate,
    file_format: tfds.core.FileFormat,
    on_chunk: Callable[[np.ndarray], None] | None = None,
    progress: Callable[[int], None] | None = None,
    identities: list[ShardIdentity] | None = None,
) -> tfds.core.SplitInfo:
    """Writes one split's shards and returns its SplitInfo; appends each shard's identity (its
    records' CRC32Cs, ``shard_identity``) to ``identities`` when given.

    ``read_images(start, stop)`` yields upright image chunks for those examples; it is called once,
    for the whole split, and runs in a background thread. ``on_chunk`` sees every image once, in
    chunks (in the calling thread, after their records were written), e.g. to count pixels.
    """
    template = filename_template.replace(split=split_name)
    shards = plan_shards(len(labels), encoder.record_size)
    paths = [template.sharded_filepath(shard_index=index, num_shards=len(shards))
             for index in range(len(shards))]

    def written(images: np.ndarray) -> None:
        if on_chunk:
            on_chunk(images)
        if progress:
            progress(len(images))

    pieces = _shard_pieces(_prefetched(read_images(0, len(labels))), shards)
    digests = [ShardDigest() for _ in shards]
    if file_format == tfds.core.FileFormat.TFRECORD:
        _write_tfrecord_shards(paths, pieces, labels, encoder, written, digests)
    else:
        _write_adapter_shards(paths, pieces, labels, encoder, file_format, written, digests)
    if identities is not None:
        identities.extend(digest.identity() for digest in digests)
    return tfds.core.SplitInfo(
        name=split_name,
        shard_lengths=[stop - start for start, stop in shards],
        num_bytes=sum(path.stat().length for path in paths),
        filename_template=template,
    )


def write_shard(path: epath.Path, chunks: Iterable[np.ndarray], labels: np.ndarray,
                encoder: RecordEncoder, file_format: tfds.core.FileFormat,
                on_chunk: Callable[[np.ndarray], None] | None = None) -> ShardIdentity:
    """Writes one shard (all of ``labels``' examples, their images in ``chunks``) with the same
    framing as ``write_split``; ``on_chunk`` sees every image once. Used by Beam's workers.
    Returns the shard's identity (``shard_identity``)."""
    pieces = _shard_pieces(_prefetched(chunks), [(0, len(labels))])
    written = on_chunk or (lambda images: None)
    digests = [ShardDigest()]
    if file_format == tfds.core.FileFormat.TFRECORD:
        _write_tfrecord_shards([path], pieces, labels, encoder, written, digests)
    else:
        _write_adapter_shards([path], pieces, labels, encoder, file_format, written, digests)
    return digests[0].identity()


def _shard_pieces(chunks: Iterable[np.ndarray], shards: Sequence[tuple[int, int]]
                  ) -> Iterator[Piece]:
    """Cuts the split's image chunks where shards end; every example lands in exactly one piece."""
    stops = [stop for _, stop in shards]
    total = stops[-1] if stops else 0
    shard = position = 0
    for chunk in chunks:
        offset = 0
        while offset < len(chunk):
            while shard < len(stops) and position >= stops[shard]:
                shard += 1
            if shard == len(stops):
                raise RuntimeError(f"the images source gave more than the {total} examples planned")
            take = min(len(chunk) - offset, stops[shard] - position)
            yield shard, position, chunk[offset : offset + take]
            offset += take
            position += take
    if position != total:
        raise RuntimeError(f"the images source gave {position} examples, {total} were planned")


def _write_tfrecord_shards(paths: Sequence[epath.Path], pieces: Iterable[Piece],
                           labels: np.ndarray, encoder: RecordEncoder,
                           written: Callable[[np.ndarray], None],
                           digests: Sequence[ShardDigest]) -> None:
    """Frames the pieces in a background thread and writes them here, one shard file after another
    (every shard file is created, also an empty one)."""
    framed = _prefetched(
        (shard, images, _frames(encoder, images, labels[start : start + len(images)]))
        for shard, start, images in pieces
    )
    streams: list[BinaryIO] = []

    def stream_for(shard: int) -> BinaryIO:
        while len(streams) <= shard:  # every shard file in order, also an empty one
            if streams:
                streams[-1].close()
            streams.append(paths[len(streams)].open("wb"))
        return streams[shard]

    try:
        for shard, images, frames in framed:
            stream_for(shard).write(frames.data)
            digests[shard].add(tfrecord_frames.record_crcs(frames))
            written(images)
        stream_for(len(paths) - 1)
    finally:
        if streams:
            streams[-1].close()


def _frames(encoder: RecordEncoder, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The TFRecord frames of these examples' records, as one (N, frame size) uint8 array."""
    frames = tfrecord_frames.empty_frames(len(labels), encoder.record_size)
    encoder.encode_into(tfrecord_frames.record_view(frames), images, labels)
    return tfrecord_frames.seal(frames)


def _write_adapter_shards(paths: Sequence[epath.Path], pieces: Iterable[Piece],
                          labels: np.ndarray, encoder: RecordEncoder,
                          file_format: tfds.core.FileFormat,
                          written: Callable[[np.ndarray], None],
                          digests: Sequence[ShardDigest]) -> None:
    """Formats other than TFRecord go through TFDS's own adapter, one shard at a time."""
    adapter = tfds.core.file_adapters.ADAPTER_FOR_FORMAT[file_format]
    grouped = itertools.groupby(pieces, key=lambda piece: piece[0])
    current = next(grouped, None)
    for index, path in enumerate(paths):
        group: Iterable[Piece] = ()
        if current is not None and current[0] == index:
            group, current = current[1], None
        adapter.write_examples(path, _keyed_records(group, labels, encoder, written,
                                                    digests[index]))
        if current is None:  # the group was written: on to the next shard's pieces
            current = next(grouped, None)


def _keyed_records(pieces: Iterable[Piece], labels: np.ndarray, encoder: RecordEncoder,
                   written: Callable[[np.ndarray], None], digest: ShardDigest
                   ) -> Iterator[tuple[int, bytes]]:
    for _, start, images in pieces:
        rows = encoder.encode(images, labels[start : start + len(images)])
        digest.add(tfrecord_frames.crc32c_rows(rows))
        data = rows.tobytes()
        size = encoder.record_size
        for key, offset in enumerate(range(0, len(data), size), start):
            yield key, data[offset : offset + size]
        written(images)


_DONE = object()


def _prefetched(items: Iterable[T], depth: int = 4) -> Iterator[T]:
    """Runs ``items`` in a background thread, ``depth`` items ahead; re-raises its errors here."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(exc)
        finally:  # stops the threads of a chain of prefetched generators now, not at GC
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="emnist_idx-prefetch", daemon=True)
    thread.start()
    try:
        while (item := buffer.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
