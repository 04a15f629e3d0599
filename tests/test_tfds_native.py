"""EMNIST as TFDS and Keras users expect it: load_data() in keras.datasets' convention, metadata
TFDS's tools can walk, the `tfds new` files, show_examples(). Data: dummy_data, prepared once."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import tensorflow_datasets as tfds

import emnist_idx
from emnist_idx import configs
from emnist_idx._format.idx import read_idx
from emnist_idx._pipeline.loading import load
from tests.bundle_factory import DUMMY_GZIP

PACKAGE = Path(emnist_idx.__file__).resolve().parent


# --- load_data: keras.datasets.mnist.load_data()'s convention ---

@pytest.mark.parametrize("config", ["letters", "digits"])
def test_load_data_is_keras_datasets_convention(data_dir: str, config: str) -> None:
    (x_train, y_train), (x_test, y_test) = emnist_idx.load_data(config, data_dir=data_dir)
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        nist_images = read_idx(DUMMY_GZIP / configs.image_file(config, split))
        nist_labels = read_idx(DUMMY_GZIP / configs.label_file(config, split))
        assert x.dtype == np.uint8 and x.shape == (len(nist_images), 28, 28) and x.flags.c_contiguous
        assert y.dtype == np.uint8 and y.shape == (len(nist_labels),)
        # upright: NIST's files hold each image transposed; labels shifted to start at 0
        np.testing.assert_array_equal(x, nist_images.transpose(0, 2, 1))
        np.testing.assert_array_equal(y, nist_labels - configs.FIRST_LABEL[config])


def test_load_data_bad_config_lists_the_six() -> None:
    with pytest.raises(ValueError, match="'byclass', 'bymerge'"):
        emnist_idx.load_data("emnist")


# --- metadata and TFDS's tools ---

def test_metadata_nests_the_pixel_statistics(data_dir: str) -> None:
    metadata = tfds.builder("emnist_idx/digits", data_dir=data_dir).info.metadata
    assert set(metadata) == {"pixels", "shards"}  # shards: each shard's identity (shard_identity)
    assert set(metadata["pixels"]) == {"mean", "std"} and 0 < metadata["pixels"]["mean"] < 1


def test_tfds_show_examples_gets_past_the_metadata(data_dir: str) -> None:
    ds, info = tfds.load("emnist_idx/digits", split="test", data_dir=data_dir, with_info=True)
    # Float metadata values made TFDS's graph visualizer raise TypeError before it could say this:
    with pytest.raises(ValueError, match="Visualisation not supported"):
        tfds.show_examples(ds, info)


def test_tfds_as_dataframe_lists_the_examples(data_dir: str) -> None:
    ds, info = tfds.load("emnist_idx/digits", split="test[:4]", data_dir=data_dir, with_info=True)
    frame = tfds.as_dataframe(ds, info)
    assert len(frame) == 4 and set(frame.columns) == {"image", "label"}
    expected = read_idx(DUMMY_GZIP / configs.label_file("digits", "test"))[:4]
    assert list(frame["label"]) == list(expected)


def test_standardize_reads_metadata_of_the_previous_version(data_dir: str, tmp_path: Path) -> None:
    """A dataset prepared before the "pixels" key kept "mean" and "std" at the top level."""
    new = load("digits", "test", normalize="standardize", shuffle=False, data_dir=data_dir)
    old_root = tmp_path / "data"
    shutil.copytree(Path(data_dir) / "emnist_idx" / "digits", old_root / "emnist_idx" / "digits")
    metadata_file = next((old_root / "emnist_idx" / "digits").glob("*/metadata.json"))
    pixels = json.loads(metadata_file.read_text())["pixels"]
    metadata_file.write_text(json.dumps(pixels))  # {"mean": ..., "std": ...}
    old_builder = tfds.builder("emnist_idx/digits", data_dir=str(old_root))
    assert set(old_builder.info.metadata) == {"mean", "std"}
    old = load("digits", "test", normalize="standardize", shuffle=False, data_dir=str(old_root))
    np.testing.assert_array_equal(np.concatenate([x for x, _ in old.as_numpy_iterator()]),
                                  np.concatenate([x for x, _ in new.as_numpy_iterator()]))


def test_builder_files_in_the_tfds_new_layout() -> None:
    for name in ("README.md", "CITATIONS.bib", "TAGS.txt", "checksums.tsv"):
        assert (PACKAGE / name).is_file(), name
    metadata = emnist_idx.Builder.get_metadata()
    assert set(metadata.tags) <= set(tfds.core.dataset_metadata.valid_tags())
    assert "ml.task.image-classification" in metadata.tags
    info = emnist_idx.Builder(config="digits").info
    assert info.description == (PACKAGE / "README.md").read_text().strip()
    assert info.citation.strip() == (PACKAGE / "CITATIONS.bib").read_text().strip()
    assert "Cohen" in info.citation


# --- show_examples ---

def _cell_images(picture, rows: int, cols: int) -> np.ndarray:
    """The 28x28 images drawn in the grid's cells, read back from the picture."""
    from emnist_idx import grid

    pixels = np.asarray(picture.convert("L"))
    cell_width, cell_height = grid._cell_size(grid.SCALE, 1)
    cells = []
    for index in range(rows * cols):
        left = grid.PAD + (index % cols) * cell_width
        top = grid.PAD + (index // cols) * cell_height
        cells.append(pixels[top : top + 28 * grid.SCALE : grid.SCALE,
                            left : left + 28 * grid.SCALE : grid.SCALE])
    return np.stack(cells)


@pytest.mark.parametrize("source", ["config", "tfds", "tfds-supervised-batched", "load"])
def test_show_examples_draws_the_first_examples(data_dir: str, source: str) -> None:
    rows, cols = 2, 3
    if source == "config":
        picture = emnist_idx.show_examples("letters", rows=rows, cols=cols, data_dir=data_dir)
    elif source == "load":
        picture = emnist_idx.show_examples(load("letters", "test", shuffle=False, batch_size=4,
                                                one_hot=True, data_dir=data_dir),
                                           rows=rows, cols=cols, class_names=configs.CLASS_NAMES["letters"])
    else:
        supervised = source != "tfds"
        ds, info = tfds.load("emnist_idx/letters", split="test", data_dir=data_dir, with_info=True,
                             as_supervised=supervised, batch_size=4 if supervised else None)
        picture = emnist_idx.show_examples(ds, info, rows=rows, cols=cols)
    expected = read_idx(DUMMY_GZIP / configs.image_file("letters", "test"))[:6].transpose(0, 2, 1)
    np.testing.assert_array_equal(_cell_images(picture, rows, cols), expected)
    assert picture.mode == "RGB"


def test_show_examples_captions_name_and_label(data_dir: str, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    from emnist_idx import visualization

    drawn = {}

    def capture(images, captions, **kwargs):
        drawn.update(captions=captions, columns=kwargs["columns"], count=len(images))

    monkeypatch.setattr(visualization.grid, "draw_grid", capture)
    emnist_idx.show_examples("letters", split="test[:2]", rows=3, cols=4, data_dir=data_dir)
    labels = read_idx(DUMMY_GZIP / configs.label_file("letters", "test"))[:2] - 1
    names = configs.CLASS_NAMES["letters"]
    assert drawn == {"captions": [f"{names[label]} ({label})" for label in labels], "columns": 4,
                     "count": 2}


def test_show_examples_bad_arguments(data_dir: str) -> None:
    with pytest.raises(ValueError, match="rows must be a positive integer, got 0"):
        emnist_idx.show_examples("digits", rows=0, data_dir=data_dir)
    with pytest.raises(ValueError, match="config='emnist' is not an EMNIST config"):
        emnist_idx.show_examples("emnist", data_dir=data_dir)
    with pytest.raises(TypeError, match="config name or a tf.data.Dataset"):
        emnist_idx.show_examples(np.zeros((2, 28, 28)))


# --- quiet by default, clear errors ---

def test_load_with_a_missing_manual_dir_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=f"manual dir {missing} does not exist"):
        load("digits", data_dir=str(tmp_path / "data"), manual_dir=str(missing))
    assert not (tmp_path / "data" / "emnist_idx" / "digits").exists()


@pytest.mark.slow
def test_load_is_quiet_but_real_warnings_still_show(tmp_path: Path, manual_dir: Path) -> None:
    script = (
        "import emnist_idx, logging, tensorflow_datasets as tfds\n"
        "from absl import logging as absl_logging\n"
        f"data_dir, manual_dir = {str(tmp_path)!r}, {str(manual_dir)!r}\n"
        "batches = emnist_idx.load('digits', data_dir=data_dir, manual_dir=manual_dir)\n"
        "print(sum(int(len(y)) for _, y in batches))\n"
        "print(len(list(tfds.load('emnist_idx/digits', split='test', data_dir=data_dir))))\n"
        "import apache_beam\n"
        "absl_logging.warning('Variant folder is a real warning of a user')\n"
        "logging.warning('a real warning')\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    # oneDNN's banner is TensorFlow's, printed before its logging starts (whatever the log level) on
    # CPUs with AVX512_VNNI/BF16 or with oneDNN turned on: not ours to hide, and not checked below.
    env["TF_ENABLE_ONEDNN_OPTS"] = "1"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-2:] == ["40", "20"]
    assert f"Preparing emnist_idx/digits/1.0.0 in {tmp_path / 'emnist_idx'}" in done.stdout
    assert "Unknown size" not in done.stdout + done.stderr
    for noise in ("cpu_feature_guard", "FeatureConnector.dtype", "has no dataset_info",
                  "apitools not found"):
        assert noise not in done.stderr, done.stderr
    assert "Variant folder is a real warning of a user" in done.stderr
    assert "WARNING:root:a real warning" in done.stderr


# --- readers beyond tf.data: tfds.data_source, Grain ---

def _copy_prepared(data_dir: str, config: str, root: Path) -> str:
    shutil.copytree(Path(data_dir) / "emnist_idx" / config, root / "emnist_idx" / config)
    return str(root)


def test_data_source_works_after_a_normal_prepare(data_dir: str, tmp_path: Path) -> None:
    copy = _copy_prepared(data_dir, "letters", tmp_path)
    version_dir = next((tmp_path / "emnist_idx" / "letters").iterdir())
    assert not list(version_dir.glob("*array_record*"))
    source = tfds.data_source("emnist_idx/letters", split="test", data_dir=copy)
    x, y = emnist_idx.load_numpy("letters", "test", data_dir=copy)
    assert len(source) == len(y)
    for index in (0, len(y) // 2, len(y) - 1):
        np.testing.assert_array_equal(source[index]["image"], x[index])
        assert source[index]["label"] == y[index]
    info = json.loads((version_dir / "dataset_info.json").read_text())
    assert info["fileFormat"] == "tfrecord" and info["alternativeFileFormats"] == ["array_record"]
    shards = sorted(version_dir.glob("*array_record*"))
    assert [path.name for path in shards] == ["emnist_idx-test.array_record-00000-of-00001",
                                              "emnist_idx-train.array_record-00000-of-00001"]
    written = [path.stat().st_mtime_ns for path in shards]
    # Any later process reads them, also one that never imports emnist_idx; nothing is rewritten.
    script = ("import sys, tensorflow_datasets as tfds\n"
              f"source = tfds.data_source('emnist_idx/letters', split='train', data_dir={copy!r})\n"
              "print(len(source), int(source[3]['label']), 'emnist_idx' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    _, y_train = emnist_idx.load_numpy("letters", "train", data_dir=copy)
    assert done.stdout.split() == [str(len(y_train)), str(y_train[3]), "False"]
    tfds.data_source("emnist_idx/letters", split="train", data_dir=copy)
    assert [path.stat().st_mtime_ns for path in shards] == written


def test_a_damaged_tfrecord_shard_is_named(data_dir: str, tmp_path: Path) -> None:
    copy = _copy_prepared(data_dir, "digits", tmp_path)
    shard = next((tmp_path / "emnist_idx" / "digits").glob("*/emnist_idx-test.tfrecord-*"))
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(ValueError, match=f"{shard}: expected 20 TFRecord frames, found 19 whole"):
        tfds.data_source("emnist_idx/digits", split="test", data_dir=copy)
    assert not list(shard.parent.glob("*array_record*"))


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _import_recipe(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """An example script imported as a module, from examples/ as when it runs, so that workers
    can import what they unpickle (its transform functions)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    return importlib.import_module(name)


def _assert_one_shuffled_epoch(images: np.ndarray, labels: np.ndarray, data_dir: str) -> None:
    """``images`` (float32 in [0, 1]) and ``labels`` are digits' 40 train examples, each once."""
    x, y = emnist_idx.load_numpy("digits", "train", data_dir=data_dir)
    assert images.dtype == np.float32 and images.shape == (40, 28, 28, 1) and images.max() == 1.0
    assert not np.array_equal(labels, y)  # shuffled
    order = np.lexsort((labels, images.reshape(40, -1).sum(axis=1)))
    expected = np.lexsort((y, x.reshape(40, -1).astype(np.float32).sum(axis=1) / 255.0))
    np.testing.assert_array_equal(labels[order], y[expected])
    np.testing.assert_allclose(images[order], x[expected] / 255.0, rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_grain_recipe_reads_every_example_once(data_dir: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    pytest.importorskip("grain")
    recipe = _import_recipe("grain_emnist", monkeypatch)
    data_dir = _copy_prepared(data_dir, "digits", tmp_path)
    batches = list(recipe.grain_batches("digits", "train", data_dir=data_dir, batch_size=16,
                                           seed=1, workers=workers))
    assert [len(labels) for _, labels in batches] == [16, 16, 8]
    _assert_one_shuffled_epoch(np.concatenate([images for images, _ in batches]),
                               np.concatenate([labels for _, labels in batches]), data_dir)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_torch_recipe_reads_every_example_once(data_dir: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch, workers: int) -> None:
    pytest.importorskip("torch", reason="torch is not in the test extra (see setup.cfg)")
    recipe = _import_recipe("torch_emnist", monkeypatch)
    data_dir = _copy_prepared(data_dir, "digits", tmp_path)
    loader = recipe.torch_loader("digits", "train", data_dir=data_dir, batch_size=16, seed=1,
                                    workers=workers)
    for _ in range(2):  # two epochs; with workers, the same (persistent) worker processes
        batches = [(images.numpy(), labels.numpy()) for images, labels in loader]
        assert [len(labels) for _, labels in batches] == [16, 16, 8]
        assert batches[0][0].shape == (16, 1, 28, 28) and batches[0][1].dtype == np.int64
        images = np.concatenate([images for images, _ in batches]).transpose(0, 2, 3, 1)
        _assert_one_shuffled_epoch(images, np.concatenate([labels for _, labels in batches]),
                                   data_dir)
