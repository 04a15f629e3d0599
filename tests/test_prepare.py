"""Preparing emnist_idx end to end: what users get from tfds.load, tfds build and model.fit."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import emnist_idx
from emnist_idx import IdxFormatError, configs
from emnist_idx import emnist_idx_dataset_builder as builder_module
from emnist_idx._prepare import array_records, downloads, shard_identity, shard_writer
from emnist_idx._prepare.records import fixed_order
from emnist_idx._prepare.tfrecord_frames import frame_records
from emnist_idx._format.idx import encode_header, read_idx, write_idx

from tests.bundle_factory import (DUMMY_GZIP, copy_config, default_splits, every_source_shape,
                                  upright_l_glyph, write_config)



def _prepare(config: str, manual_dir: Path, data_dir: Path, **kwargs) -> tfds.core.DatasetBuilder:
    download_config = kwargs.pop("download_config", None) or tfds.download.DownloadConfig(
        manual_dir=str(manual_dir)
    )
    builder = tfds.builder(f"emnist_idx/{config}", data_dir=str(data_dir), **kwargs)
    builder.download_and_prepare(download_config=download_config)
    return builder


def _arrays(builder: tfds.core.DatasetBuilder, split: str) -> tuple[np.ndarray, np.ndarray]:
    data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, shuffle_files=False))
    return data["image"], data["label"]


def _root(builder: tfds.core.DatasetBuilder) -> Path:
    """The data_dir a builder was made with (its data sits in <root>/<name>/<config>/<version>)."""
    return Path(builder.data_dir).parents[2]


def _is_complete(data_dir: Path) -> bool:
    """Whether TFDS would treat any version under data_dir as a prepared dataset."""
    return any(data_dir.rglob("dataset_info.json"))


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tfds.core.DatasetBuilder:
    data_dir = tmp_path_factory.mktemp("digits-data")
    return _prepare("digits", DUMMY_GZIP.parent, data_dir)


def test_images_are_upright_and_equal_to_the_file_pixel_for_pixel(
        digits: tfds.core.DatasetBuilder) -> None:
    for split in ("train", "test"):
        images, labels = _arrays(digits, split)
        stored = read_idx(DUMMY_GZIP / configs.image_file("digits", split))
        assert images.dtype == np.uint8 and images.shape == (len(stored), 28, 28, 1)
        np.testing.assert_array_equal(images[..., 0], stored.transpose(0, 2, 1))
        np.testing.assert_array_equal(labels, read_idx(DUMMY_GZIP / configs.label_file("digits", split)))


def test_asymmetric_glyph_comes_out_upright(tmp_path: Path) -> None:
    parts = default_splits("mnist", train=20, test=10)
    parts["train"][0][3] = upright_l_glyph()
    builder = _prepare("mnist", write_config(tmp_path / "nist", "mnist", parts), tmp_path / "data")
    image = _arrays(builder, "train")[0][3, :, :, 0]
    np.testing.assert_array_equal(image, upright_l_glyph())
    ink = image.astype(int)
    assert ink[14:].sum() > ink[:14].sum()  # the L's foot is at the bottom...
    assert ink[:, :14].sum() > ink[:, 14:].sum()  # ...and its stem on the left


def test_letters_labels_become_0_to_25_named_by_the_mapping(tmp_path: Path) -> None:
    builder = _prepare("letters", DUMMY_GZIP.parent, tmp_path)
    _, labels = _arrays(builder, "train")
    file_labels = read_idx(DUMMY_GZIP / configs.label_file("letters", "train"))
    assert file_labels.min() == 1 and file_labels.max() == 26
    np.testing.assert_array_equal(labels, file_labels.astype(np.int64) - 1)
    label = builder.info.features["label"]
    assert label.num_classes == 26
    assert label.int2str(0) == "Aa" and label.int2str(25) == "Zz"


@pytest.mark.parametrize("config", configs.CONFIGS)
def test_each_config_has_its_own_named_classes(config: str) -> None:
    info = tfds.builder(f"emnist_idx/{config}").info
    assert info.features["label"].names == list(configs.CLASS_NAMES[config])
    assert info.features["image"].shape == (28, 28, 1)
    assert info.features["image"].dtype == np.uint8
    assert info.supervised_keys == ("image", "label")
    assert "Cohen" in info.citation and info.homepage.startswith("https://www.nist.gov")
    assert tfds.builder("emnist_idx").builder_config.name == "balanced"


def test_metadata_holds_train_pixel_mean_and_std(digits: tfds.core.DatasetBuilder) -> None:
    pixels = read_idx(DUMMY_GZIP / configs.image_file("digits", "train")) / 255.0
    assert digits.info.metadata["pixels"]["mean"] == pytest.approx(pixels.mean(), rel=1e-9)
    assert digits.info.metadata["pixels"]["std"] == pytest.approx(pixels.std(), rel=1e-9)


def test_every_source_shape_prepares_the_same_dataset(digits: tfds.core.DatasetBuilder,
                                                       tmp_path: Path) -> None:
    expected_images, expected_labels = _arrays(digits, "train")
    for number, (shape, manual_dir) in enumerate(
            every_source_shape(DUMMY_GZIP, tmp_path / "shapes", "digits").items()):
        builder = _prepare("digits", manual_dir, tmp_path / f"data-{number}")
        images, labels = _arrays(builder, "train")
        np.testing.assert_array_equal(images, expected_images, err_msg=shape)
        np.testing.assert_array_equal(labels, expected_labels, err_msg=shape)


def _prepare_with_tfds_writer(config: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
                              ) -> tfds.core.DatasetBuilder:
    """Prepares with TFDS's own per-example writer (ShardBasedBuilder's path, our generators)."""
    def tfds_writer(self, splits, identities):
        tfds.core.ShardBasedBuilder._download_and_prepare(self, self._checked.dl_manager, None)
        identities.update({  # read back from the files TFDS wrote
            name: [shard_identity.identity_of_records(array_records.tfrecord_records(path, count))
                   for path, count in zip(split.filepaths, split.shard_lengths)]
            for name, split in self.info.splits.items()})
        return builder_module._pixel_histogram(splits["train"])

    with monkeypatch.context() as patch:
        patch.setattr(builder_module.Builder, "_write_splits_in_bulk", tfds_writer)
        return _prepare(config, DUMMY_GZIP.parent, data_dir)


def _records_in_fixed_order(path: Path) -> list[bytes]:
    """A shard's records, each with its fields in our one fixed order (TFDS's writer uses the
    order its process drew)."""
    return [fixed_order(record) for record in
            tf.data.TFRecordDataset(str(path)).as_numpy_iterator()]


def _assert_same_records_as_tfds_writer(ours: tfds.core.DatasetBuilder,
                                        theirs: tfds.core.DatasetBuilder) -> list[str]:
    """Same shard names; each shard's bytes are TFRecord frames of TFDS's records in fixed order."""
    names = sorted(p.name for p in Path(ours.data_dir).glob("*tfrecord*"))
    assert names == sorted(p.name for p in Path(theirs.data_dir).glob("*tfrecord*")) and names
    for name in names:
        records = _records_in_fixed_order(Path(theirs.data_dir) / name)
        assert _records_in_fixed_order(Path(ours.data_dir) / name) == records
        rows = np.frombuffer(b"".join(records), np.uint8).reshape(len(records), -1)
        assert (Path(ours.data_dir) / name).read_bytes() == frame_records(rows)
    return names


def test_bulk_records_are_tfds_own_writer_s_in_fixed_field_order(
        digits: tfds.core.DatasetBuilder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = _prepare_with_tfds_writer("digits", tmp_path, monkeypatch)
    _assert_same_records_as_tfds_writer(digits, reference)
    # The shards' digests differ where TFDS's writer drew the other field order; counts do not.
    assert reference.info.metadata["pixels"] == digits.info.metadata["pixels"]
    assert ({split: [shard["count"] for shard in shards]
             for split, shards in reference.info.metadata["shards"].items()}
            == {split: [shard["count"] for shard in shards]
                for split, shards in digits.info.metadata["shards"].items()})


def test_shards_cut_inside_chunks_are_tfds_own_writer_s(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Uneven shards that end inside chunks of 7 images: both writers use the same plan.
    monkeypatch.setattr(shard_writer, "RECORDS_PER_CHUNK", 7)
    monkeypatch.setattr(shard_writer, "plan_shards",
                        lambda count, size: [(0, count // 3), (count // 3, count - 2), (count - 2, count)])
    ours = _prepare("digits", DUMMY_GZIP.parent, tmp_path / "bulk")
    reference = _prepare_with_tfds_writer("digits", tmp_path / "tfds", monkeypatch)
    assert len(_assert_same_records_as_tfds_writer(ours, reference)) == 6
    assert [split.shard_lengths for split in ours.info.splits.values()] == [[13, 25, 2], [6, 12, 2]]
    np.testing.assert_array_equal(_arrays(ours, "train")[0][..., 0],
                                  read_idx(DUMMY_GZIP / configs.image_file("digits", "train"))
                                  .transpose(0, 2, 1))


@pytest.mark.slow
def test_fresh_process_loads_without_importing_the_package(digits: tfds.core.DatasetBuilder) -> None:
    script = (
        "import sys, tensorflow_datasets as tfds\n"
        f"data_dir = {str(_root(digits))!r}\n"
        "builder = tfds.builder('emnist_idx/digits', data_dir=data_dir)\n"
        "ds = tfds.load('emnist_idx/digits', split='test', data_dir=data_dir,\n"
        "               as_supervised=True, batch_size=8)\n"
        "n = sum(int(x.shape[0]) for x, y in ds)\n"
        "assert 'emnist_idx' not in sys.modules, 'emnist_idx was imported'\n"
        "print(type(builder).__name__, n, builder.info.metadata['pixels']['mean'] > 0,\n"
        "      builder.info.features['label'].names[:3])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=str(_root(digits)), timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[-2] == "ReadOnlyBuilder 20 True ['0', '1', '2']"


@pytest.mark.slow
def test_tfds_build_command_line(tmp_path: Path) -> None:
    tfds_cli = Path(sys.executable).with_name("tfds")
    command = [str(tfds_cli), "build", "emnist_idx", "--imports", "emnist_idx",
               "--manual_dir", str(DUMMY_GZIP.parent), "--data_dir", str(tmp_path),
               "--config", "mnist", "--file_format", "array_record"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False,
                            env={**os.environ, downloads.OFFLINE_VARIABLE: "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((tmp_path / "emnist_idx" / "mnist" / "1.0.0" / "dataset_info.json").read_text())
    lengths = {split["name"]: sum(int(n) for n in split["shardLengths"]) for split in info["splits"]}
    assert lengths == {"train": 40, "test": 20}
    assert info["fileFormat"] == "array_record"
    assert "Generating train examples" in result.stderr


@pytest.mark.slow
def test_model_fit_on_tfds_load_with_uint8_images(digits: tfds.core.DatasetBuilder) -> None:
    train = tfds.load("emnist_idx/digits", split="train", data_dir=str(_root(digits)),
                      as_supervised=True, batch_size=16)
    assert train.element_spec[0].dtype == tf.uint8
    model = tf.keras.Sequential([
        tf.keras.Input((28, 28, 1), dtype="uint8"),
        tf.keras.layers.Rescaling(1 / 255),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(train, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert np.isfinite(history.history["loss"]).all()


def test_array_record_with_random_access(digits: tfds.core.DatasetBuilder, tmp_path: Path) -> None:
    _prepare("digits", DUMMY_GZIP.parent, tmp_path, file_format="array_record")
    assert list(tmp_path.rglob("*.array_record*"))
    source = tfds.data_source("emnist_idx/digits", data_dir=str(tmp_path))
    images, labels = _arrays(digits, "train")
    assert len(source["train"]) == 40
    for index in (0, 17, 39):
        example = source["train"][index]
        np.testing.assert_array_equal(example["image"], images[index])
        assert example["label"] == labels[index]


# --- validation: every failure through download_and_prepare, nothing left marked complete ---

def _digits_files(directory: Path) -> Path:
    return copy_config(DUMMY_GZIP, "digits", directory)


def _train_images(directory: Path) -> Path:
    return directory / configs.image_file("digits", "train")


def _train_labels(directory: Path) -> Path:
    return directory / configs.label_file("digits", "train")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-40])


def _add_trailing_record(path: Path) -> None:
    """Header says 40 images, the gzip stream holds 41: only seen after the shard is written."""
    images = read_idx(path)
    header = encode_header(np.uint8, images.shape)
    path.write_bytes(gzip.compress(header + images.tobytes() + images[:1].tobytes()))


def _drop_a_label(path: Path) -> None:
    write_idx(path, read_idx(path)[:-1])


def _label_out_of_range(path: Path) -> None:
    labels = read_idx(path)
    labels[3] = 10
    write_idx(path, labels)


def _wrong_image_size(path: Path) -> None:
    write_idx(path, read_idx(path)[:, :, :27])


def _wrong_image_dtype(path: Path) -> None:
    write_idx(path, read_idx(path).astype(np.int16))


def _bad_magic(path: Path) -> None:
    path.write_bytes(b"\x08\x03\x00\x00" + bytes(100))


def _mapping_of_nine_classes(directory: Path) -> None:
    mapping = directory / configs.mapping_file("digits")
    mapping.write_text("".join(mapping.read_text().splitlines(keepends=True)[:9]))


DAMAGES = {
    "truncated images": (_truncate, _train_images, "corrupt or truncated gzip data"),
    "images longer than their header": (
        _add_trailing_record, _train_images,
        "header promises 31,360 payload bytes for shape \\(40, 28, 28\\), file has 32,144"),
    "fewer labels than images": (
        _drop_a_label, _train_labels, "header says 39 labels, images file .* has 40 images"),
    "label outside the classes": (
        _label_out_of_range, _train_labels,
        "label 10 at index 3 is not a class of EMNIST digits: expected 0 to 9"),
    "images not 28x28": (_wrong_image_size, _train_images, "expected images of shape \\(N, 28, 28\\)"),
    "images not uint8": (_wrong_image_dtype, _train_images, "dtype uint8, found .* dtype int16"),
    "labels not IDX": (_bad_magic, _train_labels, "bad magic number 0x08030000"),
    "mapping of other classes": (
        lambda directory: _mapping_of_nine_classes(directory), lambda directory: directory,
        "mapping names 9 classes '012345678', expected the 10 classes of EMNIST digits"),
}


@pytest.mark.parametrize("case", sorted(DAMAGES))
def test_damaged_input_fails_clearly_and_leaves_nothing_complete(case: str, tmp_path: Path) -> None:
    damage, target, message = DAMAGES[case]
    manual_dir = _digits_files(tmp_path / "nist")
    data_dir = tmp_path / "data"
    if case == "mapping of other classes":
        damage(manual_dir)
        named = manual_dir / configs.mapping_file("digits")
    else:
        damage(target(manual_dir))
        named = target(manual_dir)
    with pytest.raises(IdxFormatError, match=message) as raised:
        _prepare("digits", manual_dir, data_dir)
    assert str(named) in str(raised.value)
    assert not _is_complete(data_dir)
    assert not tfds.builder("emnist_idx/digits", data_dir=str(data_dir)).is_prepared()

    shutil.rmtree(manual_dir)  # the user fixes the input; the same data_dir then prepares fine
    _prepare("digits", _digits_files(manual_dir), data_dir)
    assert _is_complete(data_dir)


def test_damaged_zip_member_is_named_inside_the_zip(tmp_path: Path) -> None:
    folder = _digits_files(tmp_path / "gzip")
    _truncate(_train_images(folder))
    zip_dir = tmp_path / "zipped"
    zip_dir.mkdir()
    shutil.make_archive(str(zip_dir / "gzip"), "zip", root_dir=tmp_path, base_dir="gzip")
    with pytest.raises(IdxFormatError, match="gzip.zip:gzip/emnist-digits-train-images-idx3-ubyte.gz: "
                                             "corrupt or truncated"):
        _prepare("digits", zip_dir, tmp_path / "data")
    assert not _is_complete(tmp_path / "data")


def test_no_files_and_no_network_fails_fast_with_help(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(downloads.OFFLINE_VARIABLE, "1")
    empty = tmp_path / "manual"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as raised:
        _prepare("balanced", empty, tmp_path / "data")
    message = str(raised.value)
    assert "emnist-balanced-train-images-idx3-ubyte.gz" in message
    assert str(empty) in message and str(empty / "gzip") in message
    assert configs.BUNDLE_URL in message and "--manual_dir" in message
    assert f"{downloads.OFFLINE_VARIABLE} is set" in message
    assert not _is_complete(tmp_path / "data")


def test_unreachable_host_is_reported_without_retries() -> None:
    reason = downloads.unreachable_reason("http://127.0.0.1:9/gzip.zip", timeout=2)
    assert reason is not None and "127.0.0.1:9" in reason


def test_package_exports() -> None:
    for name in emnist_idx.__all__:  # each public name resolves (lazy ones import their module)
        assert getattr(emnist_idx, name) is not None, name
    assert callable(emnist_idx.load) and callable(emnist_idx.load_numpy)
    assert emnist_idx.class_names("digits") == list("0123456789")
    assert emnist_idx.__version__
    assert "emnist_idx" in tfds.list_builders()
