"""Damaged prepared data: every read path raises PreparedDataError naming the file, never data.

Each case copies the dummy balanced config prepared by conftest into a fresh data_dir and damages it
for real (a shard cut, a flipped byte, an extra record, dataset_info.json counts, missing or invalid
JSON files), then reads it through load(cache=True), load(cache=False), load(service=...) (whose
checks run before any contact with the service), load_numpy and the CLI's show.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import google_crc32c
import numpy as np
import pytest
import tensorflow as tf

from emnist_idx import PreparedDataError
from emnist_idx._pipeline import frames
from emnist_idx._prepare import shard_identity, tfrecord_frames
from emnist_idx._pipeline.loading import load, load_numpy
from emnist_idx._pipeline.preparing import prepared_builder
from emnist_idx.commands import cli

CONFIG = "balanced"
TRAIN, TEST = 1128, 282
FRAME = 838  # 16 bytes of TFRecord framing + an 822-byte record
SHARD = "emnist_idx-train.tfrecord-00000-of-00001"


def _copy(prepared_data_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A data_dir holding a copy of the prepared balanced config; returns it and the version dir."""
    data_dir = tmp_path / "data"
    shutil.copytree(prepared_data_dir / "emnist_idx" / CONFIG, data_dir / "emnist_idx" / CONFIG)
    return data_dir, data_dir / "emnist_idx" / CONFIG / "1.0.0"


def _set_train_count(folder: Path, count: int) -> None:
    path = folder / "dataset_info.json"
    info = json.loads(path.read_text())
    for split in info["splits"]:
        if split["name"] == "train":
            split["shardLengths"] = [str(count)]
    path.write_text(json.dumps(info))


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as stream:
        stream.truncate(size)


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


def _append_last_record(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data + data[-FRAME:])


# name -> (damage, the file the message must name, words the message must hold,
#          whether it is found when load() is called (else while reading))
DAMAGES: dict[str, tuple[Callable[[Path], None], str, str, bool]] = {
    "cut at a record boundary": (lambda f: _truncate(f / SHARD, 1000 * FRAME), SHARD,
                                 "1,000 records), but dataset_info.json says 1,128", True),
    "cut mid-record": (lambda f: _truncate(f / SHARD, 1000 * FRAME + 100), SHARD,
                       "100 bytes of a cut record", True),
    "extra record appended": (lambda f: _append_last_record(f / SHARD), SHARD,
                              "(1,129 records), but dataset_info.json says 1,128", True),
    "flipped image byte": (lambda f: _flip(f / SHARD, 700 * FRAME + 12 + 400), SHARD,
                           "record 700 fails its CRC32C check", False),
    "flipped length byte": (lambda f: _flip(f / SHARD, 3 * FRAME + 1), SHARD,
                            "record 3 has a frame header", False),
    "counts too low": (lambda f: _set_train_count(f, TRAIN - 1), SHARD,
                       "but dataset_info.json says 1,127 records", True),
    "counts too high": (lambda f: _set_train_count(f, TRAIN + 1), SHARD,
                        "but dataset_info.json says 1,129 records", True),
    "invalid dataset_info.json": (lambda f: (f / "dataset_info.json").write_text("{\"splits\": ["),
                                  "dataset_info.json", "is not valid JSON", True),
    "missing metadata.json": (lambda f: (f / "metadata.json").unlink(), "metadata.json",
                              "is missing", True),
    "invalid metadata.json": (lambda f: (f / "metadata.json").write_bytes(b"\xff\x00"),
                              "metadata.json", "is not valid JSON", True),
    "metadata.json not an object": (lambda f: (f / "metadata.json").write_text("[0.1, 0.3]"),
                                    "metadata.json", "holds a JSON list, not the JSON object", True),
    "dataset_info.json without splits": (
        lambda f: (f / "dataset_info.json").write_text('{"name": "emnist_idx"}'),
        "dataset_info.json", "has no 'splits' entry", True),
    "invalid features.json": (lambda f: (f / "features.json").write_text("nonsense"),
                              "features.json", "is not valid JSON", True),
    "shard missing": (lambda f: (f / SHARD).unlink(), SHARD, "is missing", True),
}
READERS = ["load cached", "load streamed", "load through the service", "load_numpy", "cli show"]


def _read(reader: str, data_dir: Path, tmp_path: Path, capsys) -> None:
    """Reads the train split all through with ``reader``; show reports errors as exit code 1."""
    if reader == "cli show":
        code = cli.main(["show", CONFIG, "--split", "train", "-n", str(TRAIN), "-o",
                         str(tmp_path / "grid.png"), "--data_dir", str(data_dir)])
        err = capsys.readouterr().err
        assert code == 1, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("emnist-idx: error: "), err
        raise PreparedDataError(lines[0], "")  # so that the caller checks the message alike
    if reader == "load_numpy":
        load_numpy(CONFIG, "train", data_dir=str(data_dir), download=False)
        return
    options = {"load cached": {"cache": True}, "load streamed": {"cache": False},
               "load through the service": {"cache": False, "service": "grpc://localhost:1"}}
    dataset = load(CONFIG, "train", data_dir=str(data_dir), download=False, device=None,
                   **options[reader])
    for _ in dataset:
        pass


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_prepared_data_is_an_error_naming_the_file(
        prepared_data_dir: Path, tmp_path: Path, capsys, damage: str, reader: str) -> None:
    damage_fn, named, words, at_load = DAMAGES[damage]
    if reader == "load through the service" and not at_load:
        pytest.skip("read by the service's workers (TFRecordDataset checks the CRCs there)")
    data_dir, folder = _copy(prepared_data_dir, tmp_path)
    damage_fn(folder)
    if at_load or reader in ("load_numpy", "cli show"):
        with pytest.raises(PreparedDataError) as raised:
            _read(reader, data_dir, tmp_path, capsys)
    else:  # raised inside the tf.data pipeline, on the first pass
        with pytest.raises(tf.errors.OpError) as raised:
            _read(reader, data_dir, tmp_path, capsys)
        assert "PreparedDataError" in str(raised.value)
    message = str(raised.value)
    assert str(folder / named) in message and words in message, message
    assert "rebuild it with: rm -r" in message and "tfds build emnist_idx" in message


def test_unharmed_copy_reads_the_same_everywhere(prepared_data_dir: Path, tmp_path: Path,
                                                 capsys) -> None:
    """The control for the cases above: the undamaged copy reads without error, all examples."""
    data_dir, _ = _copy(prepared_data_dir, tmp_path)
    images, labels = load_numpy(CONFIG, "train", data_dir=str(data_dir), download=False)
    assert images.shape == (TRAIN, 28, 28, 1) and labels.shape == (TRAIN,)
    for cache in (True, False):
        dataset = load(CONFIG, "train", data_dir=str(data_dir), download=False, device=None,
                       cache=cache, shuffle=False, normalize="none", batch_size=500)
        got = [(x.numpy(), y.numpy()) for x, y in dataset]
        np.testing.assert_array_equal(np.concatenate([x for x, _ in got]), images)
        np.testing.assert_array_equal(np.concatenate([y for _, y in got]), labels)
    assert cli.main(["show", CONFIG, "--split", "train", "-n", "5", "-o",
                     str(tmp_path / "grid.png"), "--data_dir", str(data_dir)]) == 0


def test_slices_of_a_damaged_shard_are_refused_too(prepared_data_dir: Path, tmp_path: Path) -> None:
    """Even a slice that reads only undamaged records refuses a shard of the wrong size."""
    data_dir, folder = _copy(prepared_data_dir, tmp_path)
    _truncate(folder / SHARD, 1000 * FRAME)
    with pytest.raises(PreparedDataError, match=SHARD):
        load_numpy(CONFIG, "train[:10]", data_dir=str(data_dir))
    x, y = load_numpy(CONFIG, "test", data_dir=str(data_dir))  # the test shard is fine
    assert len(x) == len(y) == TEST


def test_missing_dataset_info_without_download_names_it(prepared_data_dir: Path,
                                                        tmp_path: Path) -> None:
    data_dir, folder = _copy(prepared_data_dir, tmp_path)
    (folder / "dataset_info.json").unlink()
    for read in (lambda: load_numpy(CONFIG, "test", data_dir=str(data_dir), download=False),
                 lambda: load(CONFIG, "test", data_dir=str(data_dir), download=False)):
        with pytest.raises(PreparedDataError) as raised:
            read()
        assert str(folder / "dataset_info.json") in str(raised.value)
        assert "is missing" in str(raised.value)


def test_missing_dataset_info_with_download_is_rebuilt(prepared_data_dir: Path, tmp_path: Path,
                                                       manual_dir: Path, capsys) -> None:
    """TFDS reuses a version folder without dataset_info.json ("split 'test' is not a split");
    load() and show prepare it again from the manual dir."""
    expected = load_numpy(CONFIG, "test", data_dir=str(prepared_data_dir))
    data_dir, folder = _copy(prepared_data_dir, tmp_path)
    (folder / "dataset_info.json").unlink()
    (folder / "stale-file").write_text("left by the interrupted prepare")
    got = load_numpy(CONFIG, "test", data_dir=str(data_dir), manual_dir=str(manual_dir))
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])
    assert (folder / "dataset_info.json").is_file() and not (folder / "stale-file").exists()

    (folder / "dataset_info.json").unlink()
    code = cli.main(["show", CONFIG, "-n", "3", "-o", str(tmp_path / "grid.png"),
                     "--data_dir", str(data_dir), "--manual_dir", str(manual_dir)])
    assert code == 0, capsys.readouterr().err
    assert (folder / "dataset_info.json").is_file()


@pytest.mark.slow
def test_the_rebuild_command_in_the_message_works(prepared_data_dir: Path, tmp_path: Path,
                                                  manual_dir: Path) -> None:
    """The command a PreparedDataError gives, run as printed (DIR filled in), repairs the data."""
    data_dir, folder = _copy(prepared_data_dir, tmp_path)
    (folder / "metadata.json").write_text("{")
    with pytest.raises(PreparedDataError) as raised:
        load_numpy(CONFIG, "test", data_dir=str(data_dir))
    command = raised.value.rebuild.split("rebuild it with: ", 1)[1].split("  (DIR:")[0]
    command = command.replace("--manual_dir DIR", f"--manual_dir {manual_dir}")
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", command], env=environment, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    x, y = load_numpy(CONFIG, "test", data_dir=str(data_dir), download=False)
    assert len(x) == len(y) == TEST


def _rewrite(path: Path, records: np.ndarray) -> None:
    """Writes ``records`` as the shard at ``path`` with TensorFlow's writer: valid CRCs."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record.tobytes())


@pytest.mark.parametrize("which", [slice(1, None, 2), slice(None)], ids=["mixed", "all"])
def test_records_with_their_fields_in_either_order_read_the_same(prepared_data_dir: Path,
                                                                 tmp_path: Path,
                                                                 which: slice) -> None:
    """tf.train.Example's feature map is serialized in an order that depends on the writing
    process: a shard whose records hold label before image (all or mixed) reads the same
    examples."""
    data_dir, folder = _copy(prepared_data_dir, tmp_path)
    expected = load_numpy(CONFIG, "train", data_dir=str(data_dir))
    records = np.fromfile(folder / SHARD, dtype=np.uint8).reshape(-1, FRAME)[:, 12:-4]
    orders = frames._field_orders(records[0].tobytes())
    assert len(orders) == 2 and (orders[0] == np.arange(822)).all()
    swapped = records.copy()
    swapped[which] = records[which][:, orders[1]]
    assert not np.array_equal(swapped[1], records[1])
    _rewrite(folder / SHARD, swapped)
    # As a prepare in a process with the other order would have recorded them (shard_identity).
    metadata = json.loads((folder / "metadata.json").read_text())
    metadata["shards"]["train"][0] = shard_identity.identity_of_records(
        row.tobytes() for row in swapped).as_json()
    (folder / "metadata.json").write_text(json.dumps(metadata))
    got = load_numpy(CONFIG, "train", data_dir=str(data_dir))
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


# --- the frame checks themselves ---

def _frames(count: int, seed: int = 0) -> np.ndarray:
    """``count`` real TFRecord frames of random 822-byte records, framed by TensorFlow."""
    rng = np.random.default_rng(seed)
    records = rng.integers(0, 256, (count, 822), dtype=np.uint8)
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"frames-{os.getpid()}-{count}.tfrecord"
    try:
        with tf.io.TFRecordWriter(str(path)) as writer:
            for record in records:
                writer.write(record.tobytes())
        return np.fromfile(path, dtype=np.uint8).reshape(count, FRAME)
    finally:
        path.unlink(missing_ok=True)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 17, 100, 127, 128, 129, 300])
def test_combined_crc_equals_the_crc_of_the_bytes(count: int) -> None:
    """Counts below, at and past one block of ``_sum_of_powers`` (128 frames)."""
    data = _frames(count, seed=count)
    words = np.ascontiguousarray(data[:, -4:]).view("<u4").reshape(count)
    per_record = [google_crc32c.value(row[12:-4].tobytes()) for row in data]
    assert tfrecord_frames.unmasked_crc(words).tolist() == per_record
    assert frames._implied_crc(words, 822) == google_crc32c.value(data.tobytes())
    frames.check_frames(data, 822)  # no error on good frames


def test_combined_crc_of_more_frames_than_two_levels_of_blocks() -> None:
    """16,385 frames (one more than 128 * 128) take a third level. They are tiled from frames
    TensorFlow wrote, so each record's CRC is still the one stored."""
    data = np.tile(_frames(257, seed=7), (64, 1))[:16_385]
    words = np.ascontiguousarray(data[:, -4:]).view("<u4").reshape(len(data))
    assert frames._implied_crc(words, 822) == google_crc32c.value(data.tobytes())
    frames.check_frames(data, 822)
    data[16_384, 500] ^= 0x10  # in the one frame past two levels
    with pytest.raises(frames.FrameError) as raised:
        frames.check_frames(data, 822)
    assert raised.value.index == 16_384


@pytest.mark.parametrize("column", [0, 7, 8, 11, 12, 500, 833, 834, 837])
def test_any_damaged_byte_of_any_record_is_found(column: int) -> None:
    """A flipped bit anywhere in a frame (length, its CRC, record, record CRC) of any record."""
    for row in (0, 6, 12):
        data = _frames(13)
        data[row, column] ^= 0x01
        with pytest.raises(frames.FrameError) as raised:
            frames.check_frames(data, 822)
        assert raised.value.index == row


def _label_and_fixed_columns(data_dir: Path, records: np.ndarray) -> tuple[int, int]:
    """The label byte's column, and a column that is the same in every valid record, in the
    field order of these records."""
    builder = prepared_builder(CONFIG, data_dir=str(data_dir), download=False)
    layout = frames.RecordLayout.of(builder.info.features)
    (order,) = [order for order in layout.orders if order.matches(records).all()]
    return int(order.label_columns[0]), int(order.fixed_columns[0])


@pytest.mark.parametrize("damage", ["label", "fixed"])
@pytest.mark.parametrize("reader", ["load_numpy", "cache", "stream"])
def test_a_record_with_valid_crcs_but_no_valid_example_raises(prepared_data_dir: Path,
                                                              tmp_path: Path, damage: str,
                                                              reader: str) -> None:
    """A record whose label byte is no class (200 of 47) or whose Example structure differs,
    re-framed with valid CRCs (as a different writer would), names the shard and the record."""
    data_dir, folder = _copy(prepared_data_dir, tmp_path)
    records = np.fromfile(folder / SHARD, dtype=np.uint8).reshape(-1, FRAME)[:, 12:-4].copy()
    label, fixed = _label_and_fixed_columns(data_dir, records)
    assert records[:, label].max() < 47
    row = 700
    if damage == "label":
        records[row, label] = 200
    else:
        records[row, fixed] ^= 0x01
    _rewrite(folder / SHARD, records)
    with pytest.raises((PreparedDataError, tf.errors.InvalidArgumentError)) as raised:
        if reader == "load_numpy":
            load_numpy(CONFIG, "train", data_dir=str(data_dir))
        else:
            for _ in load(CONFIG, "train", data_dir=str(data_dir), download=False,
                          cache=reader == "cache", device=None):
                pass
    message = str(raised.value)
    assert SHARD in message and f"record {row}" in message, message
    assert ("holds no valid label" if damage == "label" else "is not an image-and-label record"
            ) in message, message
