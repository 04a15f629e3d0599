"""The vectorized read path of ``load()``: a split's prepared records, parsed a chunk at a time.

TFDS's ``as_dataset`` parses one example per call (about 20k examples/s on 2 cores). Here records
are batched while still serialized and each chunk is parsed by one ``tf.io.parse_example`` and one
``tf.io.decode_raw``. Which records belong to a split (slices such as ``train[:90%]`` included)
comes from TFDS's own file instructions (file, skip, take), never from globbing.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from emnist_idx import configs
from emnist_idx._pipeline.batching import no_autograph

CHUNK_RECORDS = 16_384  # records parsed per op; also the window permuted as a whole when streaming
PIECE_RECORDS = 16_384  # a file instruction is cut into pieces of this many records to shuffle them
INTERLEAVED_PIECES = 4  # pieces read side by side, so each shuffled chunk mixes several of them


_RECORD_SPEC = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
}


@dataclasses.dataclass(frozen=True)
class SplitSource:
    """Where one input pipeline's examples are: a prepared builder and a resolved split."""

    builder: tfds.core.DatasetBuilder
    split: object  # the split string, or TFDS's even part of it for one input pipeline
    num_examples: int
    instructions: tuple  # TFDS FileInstructions: filename, skip, take

    @property
    def is_tfrecord(self) -> bool:
        return self.builder.info.file_format == tfds.core.FileFormat.TFRECORD


def split_source(builder: tfds.core.DatasetBuilder, split: str,
                 input_context: tf.distribute.InputContext | None = None) -> SplitSource:
    """Resolves ``split`` (TFDS syntax) and, with an input context, this pipeline's share of it.

    Input pipelines get equal, disjoint, contiguous parts (``tfds.even_splits`` with
    ``drop_remainder``), so every worker runs the same number of steps.
    """
    split_info = _split_info(builder, split)
    if input_context is not None and input_context.num_input_pipelines > 1:
        parts = tfds.even_splits(split, n=input_context.num_input_pipelines, drop_remainder=True)
        split = parts[input_context.input_pipeline_id]
        split_info = builder.info.splits[split]
    if split_info.num_examples == 0:
        raise ValueError(f"split={split!r} selects no examples of {builder.info.full_name}")
    return SplitSource(builder=builder, split=split, num_examples=split_info.num_examples,
                       instructions=tuple(split_info.file_instructions))


def _split_info(builder: tfds.core.DatasetBuilder, split: str):
    if not isinstance(split, str):
        raise TypeError(f"split must be a string such as 'train' or 'train[:90%]', got {split!r}")
    try:
        return builder.info.splits[split]
    except (KeyError, ValueError) as exc:
        raise ValueError(
            f"split={split!r} is not a split of {builder.info.full_name}: use "
            f"{' or '.join(repr(name) for name in builder.info.splits)}, optionally sliced or "
            "combined as in 'train[:90%]', 'train[90%:]', 'train[:1000]' or 'train+test'"
        ) from exc


def parse_records(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A vector of serialized examples -> uint8 images (k, 28, 28, 1) and int64 labels (k,)."""
    features = tf.io.parse_example(serialized, _RECORD_SPEC)
    images = tf.reshape(tf.io.decode_raw(features["image"], tf.uint8), (-1, *configs.IMAGE_SHAPE))
    return images, features["label"]


def read_chunks(source: SplitSource, *, shuffle: bool = False, seed: int | None = None,
                for_service: bool = False) -> tf.data.Dataset:
    """The split as parsed chunks (uint8 images, int64 labels) of up to ``CHUNK_RECORDS`` examples.

    Without ``shuffle`` the examples come in file order. With it, the split's file instructions are
    cut into pieces of ``PIECE_RECORDS``, which come in a new order each iteration,
    ``INTERLEAVED_PIECES`` at a time, and every chunk is permuted as a whole; a ``seed`` makes that
    sequence the same in every run. ``for_service`` always cuts pieces (the units the tf.data
    service hands to its workers) but keeps them in order: a worker's shuffle buffer would claim
    them all.
    """
    if source.is_tfrecord:
        serialized = _tfrecord_chunks(source, cut=shuffle or for_service,
                                      reorder=shuffle and not for_service, seed=seed)
    else:
        serialized = _random_access_chunks(source, shuffle, seed)
    deterministic = seed is not None or not shuffle
    chunks = serialized.map(no_autograph(parse_records), num_parallel_calls=tf.data.AUTOTUNE,
                            deterministic=deterministic)
    return _permute_each(chunks, seed) if shuffle else chunks


def _tfrecord_chunks(source: SplitSource, *, cut: bool, reorder: bool, seed: int | None
                     ) -> tf.data.Dataset:
    """Serialized records in vectors of ``CHUNK_RECORDS``, read with TFRecordDataset skip/take.

    Cutting costs some speed: TFRecordDataset reaches a piece's first record by reading past the
    records before it (a shuffled epoch of a one-file split streams about 20% slower).
    """
    filenames, skips, takes = _pieces(source.instructions, PIECE_RECORDS if cut else None)
    pieces = tf.data.Dataset.from_tensor_slices((filenames, skips, takes))
    if reorder:
        pieces = pieces.shuffle(len(filenames), seed=seed, reshuffle_each_iteration=True)
    records = pieces.interleave(no_autograph(_read_piece), cycle_length=INTERLEAVED_PIECES if cut else 1,
                                block_length=1)
    return records.batch(CHUNK_RECORDS)


def _read_piece(filename: tf.Tensor, skip: tf.Tensor, take: tf.Tensor) -> tf.data.Dataset:
    return tf.data.TFRecordDataset(filename).skip(skip).take(take)


def _pieces(instructions: tuple, max_records: int | None
            ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(filename, skip, take) per piece: the file instructions, cut to ``max_records`` if given."""
    filenames, skips, takes = [], [], []
    for instruction in instructions:
        step = max_records or instruction.take
        for start in range(0, instruction.take, step):
            filenames.append(os.fspath(instruction.filename))
            skips.append(instruction.skip + start)
            takes.append(min(step, instruction.take - start))
    return filenames, np.array(skips, dtype=np.int64), np.array(takes, dtype=np.int64)


def _random_access_chunks(source: SplitSource, shuffle: bool, seed: int | None) -> tf.data.Dataset:
    """The fallback for formats tf.data cannot read (array_record): TFDS's data source, in chunks.

    Records are fetched raw through ``builder.as_data_source`` in Python, one chunk of index range
    per call, and then parsed like TFRecord chunks. The pipeline holds a Python function, so it
    cannot be serialized (no tf.data service).
    """
    data_source = source.builder.as_data_source(
        split=source.split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)

    def fetch(start: np.int64, stop: np.int64) -> np.ndarray:
        return np.array(data_source.__getitems__(range(int(start), int(stop))), dtype=object)

    starts = np.arange(0, source.num_examples, CHUNK_RECORDS, dtype=np.int64)
    ranges = tf.data.Dataset.from_tensor_slices(
        (starts, np.minimum(starts + CHUNK_RECORDS, source.num_examples)))
    if shuffle:
        ranges = ranges.shuffle(len(starts), seed=seed, reshuffle_each_iteration=True)
    return ranges.map(no_autograph(lambda start, stop: tf.ensure_shape(
        tf.numpy_function(fetch, [start, stop], tf.string, stateful=False), [None])))


def _permute_each(chunks: tf.data.Dataset, seed: int | None) -> tf.data.Dataset:
    """Permutes every chunk's examples, with new permutations each iteration."""
    # One stateless seed per chunk from a seeded stream that is redrawn each iteration (epoch),
    # so the order is reproducible without any stateful op in a parallel map.
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def permute(chunk: tuple[tf.Tensor, tf.Tensor], pair: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        images, labels = chunk
        order = tf.random.experimental.stateless_shuffle(tf.range(tf.shape(labels)[0]), seed=pair)
        return tf.gather(images, order), tf.gather(labels, order)

    return tf.data.Dataset.zip(chunks, seeds).map(
        no_autograph(permute), num_parallel_calls=tf.data.AUTOTUNE, deterministic=seed is not None)
