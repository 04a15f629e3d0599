"""The read path of ``load()`` and ``load_numpy()``: a split's prepared records, cut in bulk.

Prepared records are fixed-size TFRecord frames (``frames``), so a split is read a piece of
``CHUNK_RECORDS`` records at a time with one file read, every frame's length and CRC32C checked,
and the images and labels cut out with numpy: nothing is parsed one record at a time. Which records
belong to a split (slices such as ``train[:90%]`` included) comes from TFDS's own file instructions
(file, skip, take), never from globbing. Damage raises ``PreparedDataError`` naming the shard
(``prepared``); inside a tf.data pipeline it surfaces as a ``tf.errors.InvalidArgumentError`` whose
message holds the same text.

Through the tf.data service the pipeline must hold no Python code: there records come from
``TFRecordDataset`` (which checks each record's CRC itself, but names no file) and are parsed with
``tf.io.parse_example`` (the spec derived from the builder's features). A dataset prepared as
array_record is read through TFDS's data source.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import queue
import threading

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from emnist_idx import configs
from emnist_idx._pipeline import epochs as epochs_lib
from emnist_idx._pipeline import prepared, python_calls, splits, zero_copy
from emnist_idx._pipeline.batching import no_autograph
from emnist_idx._pipeline.epochs import Epochs
from emnist_idx._pipeline.frames import RecordLayout
from emnist_idx._prepare.shard_identity import ShardReads

CHUNK_RECORDS = 16_384  # records read and cut per call; also the unit a shuffled epoch reorders
PIECE_RECORDS = CHUNK_RECORDS  # a file instruction is cut into pieces of this many records
_READ_THREADS = os.cpu_count() or 1
INTERLEAVED_PIECES = 4  # shuffled pieces read together, so each permuted chunk mixes several



@dataclasses.dataclass(frozen=True)
class SplitSource:
    """Where one input pipeline's examples are: a prepared builder and a resolved split."""

    builder: tfds.core.DatasetBuilder
    split: object  # the split string, or TFDS's even part of it for one input pipeline
    num_examples: int
    instructions: tuple  # TFDS FileInstructions: filename, skip, take, examples_in_shard
    layout: RecordLayout  # where image and label are in each record

    @property
    def is_tfrecord(self) -> bool:
        return self.builder.info.file_format == tfds.core.FileFormat.TFRECORD


def split_source(builder: tfds.core.DatasetBuilder, split: splits.SplitArg,
                 input_context: tf.distribute.InputContext | None = None) -> SplitSource:
    """Resolves ``split`` (TFDS syntax: ``splits.split_info``) and, with an input context, this
    pipeline's share of it.

    Input pipelines get equal, disjoint, contiguous parts (``tfds.even_splits`` with
    ``drop_remainder``), so every worker runs the same number of steps. The shards it reads are
    checked against dataset_info.json (sizes) here, before anything is read.
    """
    split_info = splits.split_info(builder, split)
    if input_context is not None and input_context.num_input_pipelines > 1:
        parts = tfds.even_splits(split, n=input_context.num_input_pipelines, drop_remainder=True)
        split = parts[input_context.input_pipeline_id]
        split_info = builder.info.splits[split]
        if split_info.num_examples == 0:
            raise ValueError(f"split={split!r} ({input_context.num_input_pipelines} input "
                             f"pipelines' share of it) selects no examples")
    layout = RecordLayout.of(builder.info.features)
    instructions = tuple(split_info.file_instructions)
    if builder.info.file_format == tfds.core.FileFormat.TFRECORD:
        prepared.check_shards(builder, layout, {os.fspath(i.filename) for i in instructions})
    return SplitSource(builder=builder, split=split, num_examples=split_info.num_examples,
                       instructions=instructions, layout=layout)


class ReadCancelled(Exception):
    """``read_split`` stopped because its ``cancelled`` event was set: nobody wants the split."""


def read_split(source: SplitSource, cancelled: threading.Event | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """The whole split in file order as numpy: uint8 images (N, 28, 28, 1), int64 labels (N,).

    Exactly ``source.num_examples`` examples, every record checked, or PreparedDataError; or
    ``ReadCancelled`` when ``cancelled`` is set before the last piece is read.
    """
    if not source.is_tfrecord:
        return _read_split_as_data_source(source)
    # Aligned, so that the cache adopts them as tensors without a copy (``zero_copy``).
    images = zero_copy.aligned_empty((source.num_examples, *configs.IMAGE_SHAPE), np.uint8)
    labels = zero_copy.aligned_empty((source.num_examples,), np.int64)
    pieces = _pieces(source.instructions, CHUNK_RECORDS)
    starts = np.cumsum([0] + [take for _, _, take, _ in pieces])
    workers = min(len(pieces), _READ_THREADS) or 1
    # One frame buffer per reading thread, reused for each of its pieces: fresh memory is faulted
    # in and zeroed by the kernel page by page, which costs more than reading the file into it.
    buffers: queue.SimpleQueue[np.ndarray] = queue.SimpleQueue()
    largest = max(take for _, _, take, _ in pieces)
    for _ in range(workers):
        # A memory map (``zero_copy``): freed, its pages go back to the kernel, not to malloc's heap.
        buffers.put(zero_copy.aligned_empty((largest, source.layout.frame_size), np.uint8))
    shard_reads = ShardReads()  # each shard's digest, from the CRCs checked as it is read

    def read(index: int) -> None:
        if cancelled is not None and cancelled.is_set():
            raise ReadCancelled(f"reading {source.builder.info.full_name} split={source.split!r}")
        start, stop = starts[index], starts[index + 1]
        buffer = buffers.get()
        try:
            _read_pieces_into(pieces[index:index + 1], source.layout, images[start:stop],
                              labels[start:stop], shard_reads, buffer)
        finally:
            buffers.put(buffer)

    # File reads, CRC32C and numpy's copies release the GIL: pieces are read on every core.
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for done in pool.map(read, range(len(pieces))):  # re-raises the first error, in order
            del done
    return images, labels


def _read_pieces_into(pieces: list[tuple[str, int, int, int]], layout: RecordLayout,
                      images: np.ndarray, labels: np.ndarray, shard_reads: ShardReads,
                      frames_buffer: np.ndarray | None = None) -> None:
    """Reads and checks ``pieces`` (filename, skip, take, records in shard), one after the other,
    into ``images`` and ``labels``, which hold exactly their records (through ``frames_buffer``
    when given: ``prepared.read_records``); ``shard_reads`` checks that they are the shards'
    prepared records."""
    position = 0
    for filename, skip, take, in_shard in pieces:
        crcs = np.empty(take, dtype=np.uint32)
        _, labels[position:position + take] = prepared.read_records(
            filename, skip, take, in_shard, layout, images[position:position + take],
            frames_buffer, crcs)
        shard_reads.add(filename, skip, crcs, in_shard)
        position += take


def _read_split_as_data_source(source: SplitSource) -> tuple[np.ndarray, np.ndarray]:
    chunks = list(read_chunks(source).as_numpy_iterator())
    return (np.concatenate([images for images, _ in chunks]),
            np.concatenate([labels for _, labels in chunks]))


def read_chunks(source: SplitSource, epochs: Epochs | None = None) -> tf.data.Dataset:
    """The split as checked chunks (uint8 images, int64 labels) of up to ``CHUNK_RECORDS`` examples
    (``INTERLEAVED_PIECES`` times that when shuffled).

    Without ``epochs`` the examples come in file order. With it they are shuffled: the split's file
    instructions are cut into pieces of ``PIECE_RECORDS``, which come in a new order each epoch;
    every ``INTERLEAVED_PIECES`` of them are read together and permuted as a whole. Both orders
    are stateless functions of the epoch's seed pair (``epochs``), so a checkpoint replays them.
    """
    if not source.is_tfrecord:
        count = -(-source.num_examples // CHUNK_RECORDS)
        chunks_of = lambda indices: _random_access_chunks(source, indices)  # noqa: E731
    else:
        count = len(_pieces(source.instructions, PIECE_RECORDS))
        chunks_of = lambda indices: _frame_chunks(  # noqa: E731
            source, indices, INTERLEAVED_PIECES if epochs else 1,
            deterministic=epochs is None or epochs.seeded)
    if epochs is None:
        return chunks_of(tf.data.Dataset.range(count))

    def epoch(seed_pair: tf.Tensor) -> tf.data.Dataset:
        order = tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64),
                                                         seed=seed_pair)
        chunks = chunks_of(tf.data.Dataset.from_tensor_slices(order)).enumerate()
        return chunks.map(no_autograph(lambda index, chunk: _permuted(
            chunk, epochs_lib.chunk_seed(seed_pair, index))), num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=epochs.seeded)

    return epochs.each_epoch(epoch)


def service_chunks(source: SplitSource, *, shuffle: bool, seed: int | None) -> tf.data.Dataset:
    """``read_chunks`` for the tf.data service: TF ops only (serializable), pieces in file order
    (the units the service hands to its workers; a worker's shuffle buffer would claim them all),
    each chunk permuted when ``shuffle`` (from a ``seed``ed stream, redrawn each epoch)."""
    chunks = _tfrecord_dataset_chunks(source)
    if not shuffle:
        return chunks
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip(chunks, seeds).map(
        no_autograph(_permuted), num_parallel_calls=tf.data.AUTOTUNE, deterministic=seed is not None)


def _permuted(chunk: tuple[tf.Tensor, tf.Tensor], seed_pair: tf.Tensor
              ) -> tuple[tf.Tensor, tf.Tensor]:
    """The chunk's examples in the stateless permutation of ``seed_pair``."""
    images, labels = chunk
    order = tf.random.experimental.stateless_shuffle(tf.range(tf.shape(labels)[0]), seed=seed_pair)
    return tf.gather(images, order), tf.gather(labels, order)


def _frame_chunks(source: SplitSource, indices: tf.data.Dataset, together: int, *,
                  deterministic: bool) -> tf.data.Dataset:
    """The pieces at ``indices``, ``together`` at a time, read and checked by
    ``prepared.read_records`` (numpy), in parallel."""
    filenames, skips, takes, in_shards = (tf.constant(np.array(column)) for column in zip(
        *_pieces(source.instructions, PIECE_RECORDS)))
    pieces = indices.map(no_autograph(lambda index: (
        tf.gather(filenames, index), tf.gather(skips, index), tf.gather(takes, index),
        tf.gather(in_shards, index)))).batch(together)
    layout = source.layout
    shard_reads = ShardReads()  # digests are checked as each shard's last piece is read

    def read(names: np.ndarray, starts: np.ndarray, counts: np.ndarray, totals: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
        images = np.empty((int(counts.sum()), *configs.IMAGE_SHAPE), dtype=np.uint8)
        labels = np.empty((len(images),), dtype=np.int64)
        _read_pieces_into([(name.decode(), int(skip), int(take), int(total)) for
                           name, skip, take, total in zip(names, starts, counts, totals)],
                          layout, images, labels, shard_reads)
        return images, labels

    def read_op(names, starts, counts, totals):
        images, labels = tf.numpy_function(python_calls.guarded(read),
                                           [names, starts, counts, totals],
                                           (tf.uint8, tf.int64), stateful=False)
        return tf.ensure_shape(images, (None, *configs.IMAGE_SHAPE)), tf.ensure_shape(labels, (None,))

    return pieces.map(no_autograph(read_op), num_parallel_calls=tf.data.AUTOTUNE,
                      deterministic=deterministic)


def _tfrecord_dataset_chunks(source: SplitSource) -> tf.data.Dataset:
    """Pieces read with ``TFRecordDataset`` skip/take and parsed with TF ops (no Python code).

    TFRecordDataset checks each record's CRC; each piece must yield exactly its record count.
    """
    filenames, skips, takes, _ = (np.array(column) for column in zip(
        *_pieces(source.instructions, PIECE_RECORDS)))
    pieces = tf.data.Dataset.from_tensor_slices((filenames, skips, takes))
    records = pieces.interleave(no_autograph(_read_piece), cycle_length=INTERLEAVED_PIECES,
                                block_length=1)
    features = source.builder.info.features
    return records.batch(CHUNK_RECORDS).map(
        no_autograph(lambda rows: parse_records(rows, features)),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _read_piece(filename: tf.Tensor, skip: tf.Tensor, take: tf.Tensor) -> tf.data.Dataset:
    records = tf.data.TFRecordDataset(filename).skip(skip).take(take)
    return records.apply(tf.data.experimental.assert_cardinality(take))


def parse_records(serialized: tf.Tensor, features: tfds.features.FeaturesDict
                  ) -> tuple[tf.Tensor, tf.Tensor]:
    """A vector of serialized examples -> uint8 images (k, 28, 28, 1) and int64 labels (k,).

    The parse spec is the builder's own: its features' serialized form (image bytes, int64 label).
    """
    spec = {name: tf.io.FixedLenFeature(info.shape, info.tf_dtype)
            for name, info in features.get_serialized_info().items()}
    parsed = tf.io.parse_example(serialized, spec)
    images = tf.reshape(tf.io.decode_raw(parsed["image"], tf.uint8), (-1, *configs.IMAGE_SHAPE))
    return images, parsed["label"]


def _pieces(instructions: tuple, max_records: int | None
            ) -> list[tuple[str, int, int, int]]:
    """(filename, skip, take, records in shard) per piece: the file instructions, cut to
    ``max_records`` if given."""
    pieces = []
    for instruction in instructions:
        step = max_records or instruction.take
        for start in range(0, instruction.take, step):
            pieces.append((os.fspath(instruction.filename), instruction.skip + start,
                           min(step, instruction.take - start), instruction.examples_in_shard))
    return pieces


def _random_access_chunks(source: SplitSource, indices: tf.data.Dataset) -> tf.data.Dataset:
    """The fallback for formats tf.data cannot read (array_record): TFDS's data source, in chunks.

    Records are fetched raw through ``builder.as_data_source`` in Python, one chunk of index range
    (chunk ``index`` of ``indices``) per call, and then parsed. The pipeline holds a Python
    function, so it cannot be serialized (no tf.data service).
    """
    data_source = source.builder.as_data_source(
        split=source.split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)

    def fetch(start: np.int64, stop: np.int64) -> np.ndarray:
        return np.array(data_source.__getitems__(range(int(start), int(stop))), dtype=object)

    def chunk(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        start = index * CHUNK_RECORDS
        stop = tf.minimum(start + CHUNK_RECORDS, source.num_examples)
        records = tf.numpy_function(python_calls.guarded(fetch), [start, stop], tf.string,
                                    stateful=False)
        return parse_records(tf.ensure_shape(records, [None]), source.builder.info.features)

    return indices.map(no_autograph(chunk))
