"""Shared fixtures: NIST's files for every config (the committed dummy_data), a prepared data_dir.

TensorFlow's CPU is split into two logical devices before anything initializes TensorFlow's
devices, so multi-device paths (prefetch_to_device, MirroredStrategy) run without a GPU. Tests that
need both devices check ``len(tf.config.list_logical_devices("CPU")) >= 2``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

try:
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
except RuntimeError:  # devices already initialized (e.g. by a plugin): one CPU device it is
    pass

import pytest  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

import emnist_idx  # noqa: E402,F401 - registers the emnist_idx builder
from emnist_idx import configs  # noqa: E402
from tests.bundle_factory import DUMMY_GZIP  # noqa: E402


@pytest.fixture
def two_cpus() -> None:
    """Skips a test that needs the two logical CPU devices made above (``usefixtures``)."""
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs conftest's two logical CPU devices")


@pytest.fixture(scope="session")
def manual_dir() -> Path:
    """The committed dummy NIST files (all six configs), laid out like NIST's ``gzip/`` folder."""
    if not DUMMY_GZIP.is_dir():
        pytest.fail(f"{DUMMY_GZIP} is missing: run `python dummy_data/make_dummy_data.py`")
    return DUMMY_GZIP


@pytest.fixture(scope="session")
def prepared_data_dir(tmp_path_factory: pytest.TempPathFactory, manual_dir: Path) -> Path:
    """A TFDS data_dir with every config prepared (TFRecord) from ``manual_dir``, once a session."""
    data_dir = tmp_path_factory.mktemp("tfds-data")
    download_config = tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    for config in configs.CONFIGS:
        builder = tfds.builder(f"emnist_idx/{config}", data_dir=str(data_dir))
        builder.download_and_prepare(download_config=download_config)
    return data_dir


@pytest.fixture(scope="session")
def data_dir(prepared_data_dir: Path) -> str:
    """``prepared_data_dir`` as the string ``data_dir=`` arguments take."""
    return str(prepared_data_dir)


@pytest.fixture(scope="session")
def digits_test(data_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """digits' test split, images and labels, as ``load_numpy`` reads it from a local prepare: what
    a prepare on object storage must give."""
    return emnist_idx.load_numpy("digits", "test", data_dir=data_dir, download=False)
