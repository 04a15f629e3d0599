"""Each shard's identity (issue #21, item 3): shards of the right size that are not the ones prepared.

Real prepares of dummy_data (digits and mnist: the same features and counts) and of a synthetic
digits bundle whose train and test splits have the same count, then shards swapped, copied from
another config, left from an older prepare or reordered inside, read through every reader.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath

import emnist_idx  # registers the builder for tfds.load / tfds.data_source
from emnist_idx import PreparedDataError
from emnist_idx._pipeline.loading import load, load_numpy
from emnist_idx._prepare import array_records, shard_identity
from emnist_idx._pipeline.preparing import prepared_builder
from emnist_idx.commands import cli
from emnist_idx.synthetic import write_config_files
from tests.bundle_factory import DUMMY_GZIP

FRAME = 838  # digits' TFRecord frame: 16 bytes of framing + an 822-byte record
TRAIN = "emnist_idx-train.tfrecord-00000-of-00001"
TEST = "emnist_idx-test.tfrecord-00000-of-00001"
EVEN = 30  # train and test count of the synthetic digits bundle


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Prepared data_dirs: "dummy" (digits, mnist from dummy_data), "even" and "older" (digits
    from two synthetic bundles of EVEN train and EVEN test examples, different images)."""
    root = tmp_path_factory.mktemp("identity")
    dirs = {"dummy": root / "dummy", "even": root / "even", "older": root / "older"}
    for config in ("digits", "mnist"):
        prepared_builder(config, data_dir=dirs["dummy"], manual_dir=DUMMY_GZIP)
    for name, seed in (("even", 1), ("older", 2)):
        write_config_files(root / f"bundle-{name}", "digits", EVEN, EVEN, seed=seed, compresslevel=1)
        prepared_builder("digits", data_dir=dirs[name], manual_dir=root / f"bundle-{name}")
    return dirs


def _copy(prepared: dict[str, Path], name: str, tmp_path: Path, config: str = "digits") -> Path:
    """A fresh data_dir holding a copy of ``name``'s prepared config; returns its version dir."""
    target = tmp_path / "data" / "emnist_idx" / config
    shutil.copytree(prepared[name] / "emnist_idx" / config, target)
    return target / "1.0.0"


def _data_dir(version_dir: Path) -> str:
    return str(version_dir.parent.parent.parent)


def _every_reader_refuses(version_dir: Path, shard: str, split: str = "train") -> None:
    """load (both cache modes), load_numpy, tfds.load and tfds.data_source all raise
    PreparedDataError naming ``shard`` and the rebuild command; none returns an example."""
    data_dir = _data_dir(version_dir)
    readers = {
        "load(cache=True)": lambda: list(load("digits", split=split, batch_size=8, cache=True,
                                             data_dir=data_dir, download=False)),
        "load(cache=False)": lambda: list(load("digits", split=split, batch_size=8, cache=False,
                                              data_dir=data_dir, download=False)),
        "load_numpy": lambda: load_numpy("digits", split=split, data_dir=data_dir, download=False),
        "tfds.load": lambda: list(tfds.load("emnist_idx/digits", split=split, data_dir=data_dir,
                                            download=False)),
        "tfds.data_source": lambda: tfds.data_source("emnist_idx/digits", split=split,
                                                     data_dir=data_dir, download=False)[0],
        "Source[i]": lambda: emnist_idx.Source("digits", split, data_dir=data_dir)[3],
        "Source[:]": lambda: emnist_idx.Source("digits", split, data_dir=data_dir)[:],
    }
    for name, read in readers.items():
        with pytest.raises(PreparedDataError) as caught:
            read()
        message = str(caught.value)
        assert shard.split(".")[0] in message and "rebuild it with: rm -r" in message, name
        assert "does not hold the records this dataset was prepared with" in message, name


def test_swapped_train_and_test_shards_of_one_size_are_refused(prepared, tmp_path) -> None:
    version_dir = _copy(prepared, "even", tmp_path)
    train, test = version_dir / TRAIN, version_dir / TEST
    assert train.stat().st_size == test.stat().st_size == EVEN * FRAME
    train.rename(tmp_path / "swap")
    test.rename(train)
    (tmp_path / "swap").rename(test)
    _every_reader_refuses(version_dir, TRAIN, "train")
    _every_reader_refuses(version_dir, TEST, "test")


def test_another_configs_shard_copied_over_is_refused(prepared, tmp_path) -> None:
    """mnist's train shard over digits' (same features, same count: the issue's case)."""
    version_dir = _copy(prepared, "dummy", tmp_path)
    foreign = prepared["dummy"] / "emnist_idx" / "mnist" / "1.0.0" / TRAIN
    assert foreign.stat().st_size == (version_dir / TRAIN).stat().st_size
    shutil.copyfile(foreign, version_dir / TRAIN)
    _every_reader_refuses(version_dir, TRAIN)


def test_stale_shard_from_an_older_prepare_is_refused(prepared, tmp_path) -> None:
    version_dir = _copy(prepared, "even", tmp_path)
    shutil.copyfile(prepared["older"] / "emnist_idx" / "digits" / "1.0.0" / TRAIN,
                    version_dir / TRAIN)
    _every_reader_refuses(version_dir, TRAIN)


def test_records_reordered_inside_a_shard_fail_the_full_digest(prepared, tmp_path) -> None:
    """Records 5 and 6 swapped: count, first and last record and every CRC still match, so only
    the full digest (whole-split reads) sees it."""
    version_dir = _copy(prepared, "dummy", tmp_path)
    frames = np.fromfile(version_dir / TRAIN, dtype=np.uint8).reshape(-1, FRAME)
    frames[[5, 6]] = frames[[6, 5]]
    frames.tofile(version_dir / TRAIN)
    data_dir = _data_dir(version_dir)
    for read in (lambda: load_numpy("digits", data_dir=data_dir, download=False),
                 lambda: list(load("digits", batch_size=8, cache=True, data_dir=data_dir,
                                   download=False)),
                 lambda: list(load("digits", batch_size=8, cache=False, data_dir=data_dir,
                                   download=False)),
                 lambda: emnist_idx.Source("digits", data_dir=data_dir)[:]):
        with pytest.raises((PreparedDataError, tf.errors.InvalidArgumentError),
                           match=r"emnist_idx-train\.tfrecord.*does not hold the records"):
            read()


def test_whole_split_reads_of_good_shards_pass_the_digest(prepared, tmp_path) -> None:
    version_dir = _copy(prepared, "dummy", tmp_path)
    images, labels = load_numpy("digits", split="train+test", data_dir=_data_dir(version_dir),
                                download=False)
    assert images.shape == (60, 28, 28, 1) and labels.shape == (60,)
    sliced, _ = load_numpy("digits", split="train[5:35]", data_dir=_data_dir(version_dir),
                           download=False)
    np.testing.assert_array_equal(sliced, images[5:35])


def test_array_record_copy_shares_the_tfrecord_digest(prepared, tmp_path) -> None:
    version_dir = _copy(prepared, "dummy", tmp_path)
    source = tfds.data_source("emnist_idx/digits", split="train", data_dir=_data_dir(version_dir))
    assert len(source) == 40
    copy = version_dir / "emnist_idx-train.array_record-00000-of-00001"
    from array_record.python.array_record_module import ArrayRecordReader

    reader = ArrayRecordReader(str(copy))
    records = reader.read_all()
    reader.close()
    assert shard_identity.identity_of_records(records) == shard_identity.expected_identity(
        version_dir / TRAIN) == shard_identity.expected_identity(copy)
    array_records.check_fingerprints({str(version_dir / TRAIN): 40})


def test_dataset_prepared_before_the_manifest_loads_with_one_note(prepared, tmp_path,
                                                                 caplog) -> None:
    version_dir = _copy(prepared, "dummy", tmp_path)
    metadata = json.loads((version_dir / "metadata.json").read_text())
    del metadata[shard_identity.MANIFEST_KEY]
    (version_dir / "metadata.json").write_text(json.dumps(metadata))
    data_dir = _data_dir(version_dir)
    with caplog.at_level(logging.WARNING, logger="emnist_idx"):
        for _ in range(2):
            images, _ = load_numpy("digits", data_dir=data_dir, download=False)
            assert len(images) == 40
        list(tfds.load("emnist_idx/digits", split="test", data_dir=data_dir, download=False))
    notes = [record for record in caplog.records if "before emnist_idx recorded" in record.message]
    assert len(notes) == 1 and str(version_dir) in notes[0].message


@pytest.mark.parametrize("manifest", [
    [1, 2],
    {"train": [{"count": 40}], "test": []},
    {"train": [{"count": 40, "first_crc": -1, "last_crc": 0, "sha256": "0" * 64}],
     "test": [{"count": 20, "first_crc": 0, "last_crc": 0, "sha256": "0" * 64}]},
])
def test_damaged_manifest_names_metadata_json(prepared, tmp_path, manifest) -> None:
    version_dir = _copy(prepared, "dummy", tmp_path)
    metadata = json.loads((version_dir / "metadata.json").read_text())
    metadata[shard_identity.MANIFEST_KEY] = manifest
    (version_dir / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(PreparedDataError, match=r"metadata\.json: .*rebuild it with"):
        load_numpy("digits", data_dir=_data_dir(version_dir), download=False)


def _verify(capsys, path: Path) -> tuple[int, str, str]:
    code = cli.main(["verify", str(path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_verify_checks_prepared_data_in_full(prepared, tmp_path, capsys) -> None:
    version_dir = _copy(prepared, "dummy", tmp_path)
    tfds.data_source("emnist_idx/digits", split="train", data_dir=_data_dir(version_dir))
    code, out, _ = _verify(capsys, tmp_path / "data")
    assert code == 0 and "digits 1.0.0: OK  60 records in 2 splits" in out
    code, out, _ = _verify(capsys, version_dir)
    assert code == 0 and out.rstrip().endswith("OK")


def test_verify_names_a_reordered_shard_and_a_foreign_array_record_copy(prepared, tmp_path,
                                                                       capsys) -> None:
    version_dir = _copy(prepared, "dummy", tmp_path)
    mnist_dir = _copy(prepared, "dummy", tmp_path, config="mnist")
    for folder, config in ((version_dir, "digits"), (mnist_dir, "mnist")):
        tfds.data_source(f"emnist_idx/{config}", split="test", data_dir=_data_dir(folder))
    frames = np.fromfile(version_dir / TRAIN, dtype=np.uint8).reshape(-1, FRAME)
    frames[[5, 6]] = frames[[6, 5]]  # only the full digest sees this
    frames.tofile(version_dir / TRAIN)
    copy = "emnist_idx-test.array_record-00000-of-00001"
    shutil.copyfile(mnist_dir / copy, version_dir / copy)
    code, out, err = _verify(capsys, tmp_path / "data")
    assert code == 1 and "digits 1.0.0: FAILED (2 problem(s))" in out and "mnist 1.0.0: OK" in out
    lines = [line for line in err.splitlines() if line.startswith("emnist-idx: error: ")]
    assert len(lines) == 2
    assert f"{TRAIN}: does not hold the records" in lines[0]
    assert f"{copy}: does not hold the records" in lines[1]


def test_beam_prepare_records_each_shards_identity(tmp_path) -> None:
    """On Beam TFDS's own writer writes the shards; their identities are read back from them."""
    from apache_beam.options.pipeline_options import PipelineOptions

    builder = tfds.builder("emnist_idx/digits", data_dir=str(tmp_path))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(DUMMY_GZIP), beam_options=PipelineOptions(["--runner=DirectRunner"])))
    version_dir = tmp_path / "emnist_idx" / "digits" / "1.0.0"
    for name, count in ((TRAIN, 40), (TEST, 20)):
        records = array_records.tfrecord_records(epath.Path(version_dir / name), count)
        assert shard_identity.identity_of_records(records) == shard_identity.expected_identity(
            version_dir / name)
    images, _ = load_numpy("digits", data_dir=str(tmp_path), download=False)
    assert images.shape == (40, 28, 28, 1)


def test_metadata_json_is_read_once_per_check_and_again_by_the_next(prepared, tmp_path,
                                                                    monkeypatch) -> None:
    """One read per check call (not one per shard or piece), and none kept across calls: a
    manifest changed between two reads is the one the second read checks against."""
    from emnist_idx._pipeline import prepared as prepared_lib

    version_dir = _copy(prepared, "dummy", tmp_path)
    reads: list[str] = []
    real_read = shard_identity._read_manifest
    monkeypatch.setattr(shard_identity, "_read_manifest",
                        lambda folder: reads.append(str(folder)) or real_read(folder))
    builder = prepared_builder("digits", data_dir=_data_dir(version_dir), download=False)
    prepared_lib.check_shards(builder, prepared_lib.RecordLayout.of(builder.info.features))
    assert reads == [str(version_dir)]  # 2 shards, 1 read
    reads.clear()
    images, _ = load_numpy("digits", split="train+test", data_dir=_data_dir(version_dir),
                           download=False)
    assert len(images) == 60 and reads == [str(version_dir)] * 2  # the shards' check, the digests
    metadata = json.loads((version_dir / "metadata.json").read_text())
    metadata[shard_identity.MANIFEST_KEY]["train"][0]["sha256"] = "0" * 64
    (version_dir / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(PreparedDataError, match=r"emnist_idx-train\.tfrecord.*does not hold"):
        load_numpy("digits", split="train", data_dir=_data_dir(version_dir), download=False)
