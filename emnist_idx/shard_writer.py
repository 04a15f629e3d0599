"""Writing a split's shards in bulk, in TFDS's own file layout and formats."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import numpy as np
from tensorflow_datasets.core import file_adapters, naming, splits
from tensorflow_datasets.core.utils import shard_utils

from emnist_idx.records import RecordEncoder

T = TypeVar("T")
RECORDS_PER_CHUNK = 16384

ChunkSource = Callable[[int, int], Iterable[np.ndarray]]


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
    filename_template: naming.ShardedFileTemplate,
    file_format: file_adapters.FileFormat,
    on_chunk: Callable[[np.ndarray], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> splits.SplitInfo:
    """Writes one split's shards and returns its SplitInfo.

    ``read_images(start, stop)`` yields upright image chunks for those examples; it runs in a
    background thread (gunzip releases the GIL) while this thread encodes and writes records.
    ``on_chunk`` sees every image chunk (in that thread too), e.g. to gather pixel statistics.
    """
    adapter = file_adapters.ADAPTER_FOR_FORMAT[file_format]
    template = filename_template.replace(split=split_name)
    shards = plan_shards(len(labels), encoder.record_size)
    paths = []
    for index, (start, stop) in enumerate(shards):
        path = template.sharded_filepath(shard_index=index, num_shards=len(shards))
        chunks = _with_callback(read_images(start, stop), on_chunk)
        records = _records(_prefetched(chunks), labels, start, encoder, progress)
        adapter.write_examples(path, records)
        paths.append(path)
    return splits.SplitInfo(
        name=split_name,
        shard_lengths=[stop - start for start, stop in shards],
        num_bytes=sum(path.stat().length for path in paths),
        filename_template=template,
    )


def _records(chunks: Iterable[np.ndarray], labels: np.ndarray, start: int,
             encoder: RecordEncoder, progress: Callable[[int], None] | None
             ) -> Iterator[tuple[int, bytes]]:
    position = start
    for images in chunks:
        rows = encoder.encode(images, labels[position : position + len(images)])
        for offset, row in enumerate(rows):
            yield position + offset, row.tobytes()
        position += len(images)
        if progress:
            progress(len(images))


def _with_callback(chunks: Iterable[np.ndarray], on_chunk: Callable[[np.ndarray], None] | None
                   ) -> Iterator[np.ndarray]:
    for chunk in chunks:
        if on_chunk:
            on_chunk(chunk)
        yield chunk


_DONE = object()


def _prefetched(items: Iterable[T], depth: int = 2) -> Iterator[T]:
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

    thread = threading.Thread(target=produce, name="emnist_idx-reader", daemon=True)
    thread.start()
    try:
        while (item := buffer.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
