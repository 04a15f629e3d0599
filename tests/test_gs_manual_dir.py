"""A manual dir on gs:// (NIST's gzip.zip, its gzip/ folder, loose .gz files), read through
etils.epath from a local GCS emulator, prepares what a local manual dir prepares."""

from __future__ import annotations

import hashlib

import pytest

from emnist_idx import configs
from tests.bundle_factory import DUMMY_DATA, DUMMY_GZIP
from tests.gcs_emulator import BUCKET, run_scenario
from tests.local_store import last_json

MANUAL = f"gs://{BUCKET}/manual"
SHAPES = {"zip in the dir": f"{MANUAL}/zip", "the zip as the dir": f"{MANUAL}/zip/gzip.zip",
          "gzip/ folder": f"{MANUAL}/folder", "loose .gz files": f"{MANUAL}/loose/gzip"}

_SCENARIO = f"""
import hashlib, json, tempfile
from pathlib import Path
from etils import epath
import tensorflow_datasets as tfds
import emnist_idx
from emnist_idx import configs
from emnist_idx.emnist_idx_dataset_builder import Builder

epath.Path({MANUAL!r} + "/zip/gzip.zip").write_bytes(Path({str(DUMMY_DATA / "gzip.zip")!r}).read_bytes())
for name in configs.file_names("digits"):
    data = Path({str(DUMMY_GZIP)!r}, name).read_bytes()
    for folder in ("folder/gzip", "loose/gzip"):
        epath.Path({MANUAL!r}, folder, name).write_bytes(data)
epath.Path({MANUAL!r}, "partial", configs.mapping_file("digits")).write_text("0 48\\n")

def prepare(manual_dir):
    data_dir = tempfile.mkdtemp()
    Builder(config="digits", data_dir=data_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    x, y = emnist_idx.load_numpy("digits", "test", data_dir=data_dir, download=False)
    return [hashlib.sha256(x.tobytes()).hexdigest(), hashlib.sha256(y.tobytes()).hexdigest()]

result = {{shape: prepare(url) for shape, url in {SHAPES!r}.items()}}
x, y = emnist_idx.load_numpy("digits", "test", data_dir=tempfile.mkdtemp(),
                             manual_dir={MANUAL!r} + "/zip")  # load's own manual_dir check
result["load_numpy"] = [hashlib.sha256(x.tobytes()).hexdigest(), hashlib.sha256(y.tobytes()).hexdigest()]
try:
    emnist_idx.load_numpy("digits", "test", data_dir=tempfile.mkdtemp(), manual_dir={MANUAL!r} + "/none")
except FileNotFoundError as error:
    result["no_dir"] = str(error)
try:
    prepare({MANUAL!r} + "/partial")
except FileNotFoundError as error:
    result["missing"] = str(error)
print(json.dumps(result))
"""


@pytest.mark.slow
def test_a_gs_manual_dir_in_each_shape_prepares_as_a_local_one(digits_test) -> None:
    x, y = digits_test
    local = [hashlib.sha256(x.tobytes()).hexdigest(), hashlib.sha256(y.tobytes()).hexdigest()]
    result = last_json(run_scenario(_SCENARIO))
    for shape in [*SHAPES, "load_numpy"]:
        assert result[shape] == local, shape
    assert result["no_dir"].startswith(f"manual dir {MANUAL}/none does not exist")
    missing = result["missing"]  # names the full URLs searched, never "gs:/bucket"
    assert f"{MANUAL}/partial\n" in missing and f"{MANUAL}/partial/gzip\n" in missing
    assert configs.image_file("digits", "train") in missing and "gs:/bucket" not in missing
