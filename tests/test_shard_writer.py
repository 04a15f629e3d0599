"""The shard writer: TFDS's shard plan, its background reader thread, and shards TFDS can read."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core import file_adapters, naming
from tensorflow_datasets.core.utils import shard_utils

from emnist_idx import configs
from emnist_idx._prepare import shard_writer
from emnist_idx._prepare.records import RecordEncoder


@pytest.mark.parametrize("num_examples", [1, 1000, configs.NIST_COUNTS["balanced"][0], configs.NIST_COUNTS["byclass"][0]])
def test_plan_follows_tfds_rule_and_covers_every_example(num_examples: int) -> None:
    shards = shard_writer.plan_shards(num_examples, 822)
    expected = shard_utils.ShardConfig.calculate_number_shards(
        total_size=num_examples * 822, num_examples=num_examples)
    assert len(shards) == expected
    assert [start for start, _ in shards[1:]] == [stop for _, stop in shards[:-1]]
    assert (shards[0][0], shards[-1][1]) == (0, num_examples)


def test_prefetch_re_raises_the_reader_error_in_the_consumer() -> None:
    def failing():
        yield 1
        raise OSError("disk went away")

    got = []
    with pytest.raises(OSError, match="disk went away"):
        for item in shard_writer._prefetched(failing()):
            got.append(item)
    assert got == [1]


def test_prefetch_stops_its_thread_when_the_consumer_stops_early() -> None:
    produced = []

    def endless():
        for item in range(10**9):
            produced.append(item)
            yield item

    before = threading.active_count()
    items = shard_writer._prefetched(endless(), depth=2)
    assert [next(items), next(items)] == [0, 1]
    items.close()  # what happens when the consumer raises or breaks out
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before
    assert len(produced) <= 2 + 2 + 1  # consumed + queue depth + the one blocked in put


def test_written_split_reads_back_in_order_with_its_shard_lengths(tmp_path: Path) -> None:
    features = tfds.features.FeaturesDict({
        "image": tfds.features.Tensor(shape=configs.IMAGE_SHAPE, dtype=np.uint8,
                                      encoding=tfds.features.Encoding.BYTES),
        "label": tfds.features.ClassLabel(num_classes=10),
    })
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(300, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=300)
    template = naming.ShardedFileTemplate(data_dir=tmp_path, dataset_name="toy", split="train",
                                          filetype_suffix="tfrecord")
    info = shard_writer.write_split(
        split_name="train", labels=labels,
        read_images=lambda start, stop: (images[i:min(i + 64, stop)] for i in range(start, stop, 64)),
        encoder=RecordEncoder(features), filename_template=template,
        file_format=file_adapters.FileFormat.TFRECORD)
    assert sum(info.shard_lengths) == 300
    files = sorted(tmp_path.glob("toy-train.tfrecord-*"))
    assert len(files) == len(info.shard_lengths)
    records = [r.numpy() for r in tf.data.TFRecordDataset([str(f) for f in files])]
    decoded = [features.deserialize_example_np(r) for r in records]
    np.testing.assert_array_equal(np.stack([d["image"][..., 0] for d in decoded]), images)
    np.testing.assert_array_equal([d["label"] for d in decoded], labels)
    assert info.num_bytes == sum(f.stat().st_size for f in files)


def _chunks(total: int, size: int) -> list[np.ndarray]:
    images = np.arange(total, dtype=np.int64)
    return [images[start : start + size] for start in range(0, total, size)]


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 50])
def test_pieces_cover_each_shard_exactly_in_order(chunk_size: int) -> None:
    shards = [(0, 10), (10, 10), (10, 23), (23, 24), (24, 40)]  # with an empty shard
    pieces = list(shard_writer._shard_pieces(_chunks(40, chunk_size), shards))
    for shard, start, images in pieces:
        low, high = shards[shard]
        assert low <= start and start + len(images) <= high and len(images) > 0
        np.testing.assert_array_equal(images, np.arange(start, start + len(images)))
    seen = np.concatenate([images for _, _, images in pieces])
    np.testing.assert_array_equal(seen, np.arange(40))
    assert [shard for shard, _, _ in pieces] == sorted(shard for shard, _, _ in pieces)
    assert {shard for shard, _, _ in pieces} == {0, 2, 3, 4}


def test_pieces_refuse_a_source_with_more_or_fewer_examples() -> None:
    with pytest.raises(RuntimeError, match="gave 39 examples, 40 were planned"):
        list(shard_writer._shard_pieces(_chunks(39, 8), [(0, 20), (20, 40)]))
    with pytest.raises(RuntimeError, match="more than the 40 examples planned"):
        list(shard_writer._shard_pieces(_chunks(41, 8), [(0, 20), (20, 40)]))


@pytest.mark.parametrize("file_format", [file_adapters.FileFormat.TFRECORD,
                                         file_adapters.FileFormat.ARRAY_RECORD])
def test_every_planned_shard_file_is_written_with_its_examples(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_format: file_adapters.FileFormat) -> None:
    plan = [(0, 100), (100, 100), (100, 250), (250, 300)]  # an empty shard, ends inside chunks
    monkeypatch.setattr(shard_writer, "plan_shards", lambda count, size: plan)
    features = tfds.features.FeaturesDict({
        "image": tfds.features.Tensor(shape=configs.IMAGE_SHAPE, dtype=np.uint8,
                                      encoding=tfds.features.Encoding.BYTES),
        "label": tfds.features.ClassLabel(num_classes=10),
    })
    images = np.random.default_rng(1).integers(0, 256, size=(300, 28, 28), dtype=np.uint8)
    labels = np.arange(300) % 10
    encoder = RecordEncoder(features)
    template = naming.ShardedFileTemplate(data_dir=tmp_path, dataset_name="toy", split="train",
                                          filetype_suffix=file_format.file_suffix)
    info = shard_writer.write_split(
        split_name="train", labels=labels,
        read_images=lambda start, stop: (images[i:min(i + 64, stop)] for i in range(start, stop, 64)),
        encoder=encoder, filename_template=template, file_format=file_format)
    assert info.shard_lengths == [100, 0, 150, 50]
    files = sorted(tmp_path.glob(f"toy-train.{file_format.file_suffix}-*"))
    assert [f.name[-len("00000-of-00004"):] for f in files] == [
        f"{index:05d}-of-00004" for index in range(4)]
    records = [_read_records(f, file_format) for f in files]
    assert [len(shard) for shard in records] == [100, 0, 150, 50]
    flat = [record for shard in records for record in shard]
    assert flat == [encoder.encode_one(image[..., None], label) for image, label in zip(images, labels)]


def _read_records(path: Path, file_format: file_adapters.FileFormat) -> list[bytes]:
    if file_format == file_adapters.FileFormat.TFRECORD:
        return [record.numpy() for record in tf.data.TFRecordDataset(str(path))]
    from array_record.python import array_record_module

    reader = array_record_module.ArrayRecordReader(str(path))
    try:
        return list(reader.read_all())
    finally:
        reader.close()
