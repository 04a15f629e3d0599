"""Every entry point on TFDS's default data dir: no ``data_dir`` anywhere, ``TFDS_DATA_DIR`` unset,
``HOME`` an empty temporary folder, each run in a child process so that TFDS's module-level
defaults are computed afresh there. The data must land in ``$HOME/tensorflow_datasets``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from emnist_idx._prepare.downloads import OFFLINE_VARIABLE
from tests.bundle_factory import DUMMY_GZIP

pytestmark = pytest.mark.slow  # each child process imports TensorFlow and prepares (10-40 s each)

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty HOME, the child processes' working directory too."""
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def _run(home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``argv`` run with HOME=``home``, no TFDS_DATA_DIR, this checkout's emnist_idx, no network."""
    env = {key: value for key, value in os.environ.items() if key != "TFDS_DATA_DIR"}
    env.update(HOME=str(home), PYTHONPATH=str(REPO), **{OFFLINE_VARIABLE: "1"})
    done = subprocess.run(argv, cwd=home, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def _python(home: Path, script: str) -> subprocess.CompletedProcess[str]:
    return _run(home, sys.executable, "-c", textwrap.dedent(script))


def _version_dir(home: Path, config: str) -> Path:
    return home / "tensorflow_datasets" / "emnist_idx" / config / "1.0.0"


def test_python_entry_points_use_the_default_data_dir(home: Path) -> None:
    done = _python(home, f"""
        import numpy as np, tensorflow_datasets as tfds, emnist_idx
        manual_dir = {str(DUMMY_GZIP)!r}
        batches = emnist_idx.load("digits", manual_dir=manual_dir, batch_size=64)
        print("=", "load", sum(len(labels) for _, labels in batches))
        x, y = emnist_idx.load_numpy("digits", "test")
        print("=", "load_numpy", x.shape, y.shape)
        (x_train, _), (x_test, _) = emnist_idx.load_data("digits")
        print("=", "load_data", x_train.shape, x_test.shape)
        print("=", "tfds.load", len(list(tfds.load("emnist_idx/digits", split="test"))))
        source = tfds.data_source("emnist_idx/digits", split="train")
        np.testing.assert_array_equal(np.stack([source[i]["image"] for i in range(len(source))]),
                                      emnist_idx.load_numpy("digits", "train")[0])
        print("=", "tfds.data_source", len(source))
        builder = tfds.builder("emnist_idx/digits")
        print("=", "as_data_source", len(builder.as_data_source(split="test")))
        emnist_idx.show_examples("digits", rows=2, cols=3).save("grid.png")
        first = tfds.data_source("emnist_idx/mnist", split="test", download_and_prepare_kwargs={{
            "download_config": tfds.download.DownloadConfig(manual_dir=manual_dir)}})
        print("=", "first tfds.data_source", len(first))
    """)
    assert [line[2:] for line in done.stdout.splitlines() if line.startswith("= ")] == [
        "load 40", "load_numpy (20, 28, 28, 1) (20,)", "load_data (40, 28, 28) (20, 28, 28)",
        "tfds.load 20", "tfds.data_source 40", "as_data_source 20", "first tfds.data_source 20"]
    assert sorted(path.name for path in _version_dir(home, "digits").glob("*-train.*")) == [
        "emnist_idx-train.array_record-00000-of-00001", "emnist_idx-train.tfrecord-00000-of-00001"]
    assert (home / "grid.png").stat().st_size > 0
    assert (_version_dir(home, "mnist") / "dataset_info.json").is_file()
    assert "Unknown size" not in done.stdout


def test_cli_uses_the_default_data_dir(home: Path) -> None:
    cli = [sys.executable, "-c", "import sys; from emnist_idx.commands.cli import main; sys.exit(main())"]
    _run(home, *cli, "show", "letters", "--manual_dir", str(DUMMY_GZIP), "--output", "letters.png")
    assert (_version_dir(home, "letters") / "dataset_info.json").is_file()
    assert (home / "letters.png").stat().st_size > 0
    _run(home, *cli, "build", "mnist", "--manual_dir", str(DUMMY_GZIP))
    assert (_version_dir(home, "mnist") / "dataset_info.json").is_file()


@pytest.mark.parametrize("example", ["grain_emnist.py", "torch_emnist.py"])
def test_example_uses_the_default_data_dir(home: Path, example: str) -> None:
    pytest.importorskip(example.split("_")[0])
    done = _run(home, sys.executable, str(EXAMPLES / example), "--config", "digits",
                "--manual_dir", str(DUMMY_GZIP), "--workers", "2", "--batch_size", "16")
    assert "40" in done.stdout, done.stdout
    # Prepared in TFDS's default data dir, read through emnist_idx.Source: no array_record copy.
    assert [path.name for path in _version_dir(home, "digits").glob("emnist_idx-train.*")] == [
        "emnist_idx-train.tfrecord-00000-of-00001"]
