"""A data_dir on gs:// (prepare, load cached and streamed, load_numpy, load_data), against a local GCS emulator reached through etils.epath and gcsfs (in a loopback-only network namespace where one is allowed)."""

from __future__ import annotations


import numpy as np
import pytest

from emnist_idx import configs, load_numpy
from emnist_idx._pipeline import prepared
from tests.bundle_factory import DUMMY_GZIP
from tests.gcs_emulator import BUCKET, run_scenario
from tests.local_store import last_json
from tests.test_same_bytes import shard_hashes


def test_version_dir_keeps_the_url() -> None:
    folder = prepared.version_dir("digits", f"gs://{BUCKET}/dd")
    assert str(folder) == f"gs://{BUCKET}/dd/emnist_idx/digits/1.0.0"
    assert ("gcloud storage rm -r gs://bucket/dd/emnist_idx/digits/1.0.0 && tfds build emnist_idx "
            "--imports emnist_idx --config digits --data_dir gs://bucket/dd "
            in configs.rebuild_command(folder))


_PREPARE_AND_READ = f"""
import json, sys
import numpy as np
from etils import epath
import emnist_idx
from emnist_idx._pipeline import prepared
data_dir = "gs://{BUCKET}/tfds"
x, y = emnist_idx.load_numpy("digits", "test", data_dir=data_dir, manual_dir={str(DUMMY_GZIP)!r})
batches = {{str(cache): [(b[0].numpy().tolist(), b[1].numpy().tolist()) for b in
                        emnist_idx.load("digits", "test", data_dir=data_dir, batch_size=8,
                                        cache=cache, download=False)]
           for cache in (True, False)}}
(train_x, train_y), (test_x, test_y) = emnist_idx.load_data("digits", data_dir=data_dir)
folder = prepared.version_dir("digits", data_dir)
shard = folder / "emnist_idx-test.tfrecord-00000-of-00001"
assert shard.exists() and str(shard).startswith("gs://")
# damage the shard on the bucket: the error names the full URL
shard.write_bytes(shard.read_bytes()[:-5])
try:
    emnist_idx.load_numpy("digits", "test", data_dir=data_dir, download=False)
except emnist_idx.PreparedDataError as error:
    message = str(error)
print(json.dumps({{"x": x.tolist(), "y": y.tolist(), "error": message, "batches": batches,
                  "load_data": [len(train_y), test_x.tolist(), test_y.tolist()]}}))
"""


@pytest.mark.slow
def test_load_numpy_prepares_and_reads_a_gs_data_dir(digits_test) -> None:
    expected_x, expected_y = digits_test
    result = last_json(run_scenario(_PREPARE_AND_READ))
    np.testing.assert_array_equal(np.array(result["x"], np.uint8), expected_x)
    np.testing.assert_array_equal(np.array(result["y"]), expected_y)
    for cache, batches in result["batches"].items():  # load(), cached and streamed
        assert len(batches) == 3, cache
        images = np.concatenate([np.array(b[0]) for b in batches])
        np.testing.assert_allclose(images, expected_x / 255.0, atol=1e-6, err_msg=cache)
        assert sum((b[1] for b in batches), []) == expected_y.tolist()
    train_count, test_x, test_y = result["load_data"]
    assert train_count == 40 and test_y == expected_y.tolist()
    np.testing.assert_array_equal(np.array(test_x, np.uint8), expected_x[..., 0])
    shard = f"gs://{BUCKET}/tfds/emnist_idx/digits/1.0.0/emnist_idx-test.tfrecord-00000-of-00001"
    assert result["error"].startswith(shard) and "gs:/bucket" not in result["error"]


_BEAM_TO_GS = f"""
import hashlib, json
from pathlib import Path
from etils import epath
import tensorflow_datasets as tfds
from apache_beam.runners.direct.direct_runner import DirectRunner
import emnist_idx
from emnist_idx import configs
for name in configs.file_names("digits"):
    epath.Path("gs://{BUCKET}/nist/gzip", name).write_bytes(Path({str(DUMMY_GZIP)!r}, name).read_bytes())
builder = tfds.builder("emnist_idx/digits", data_dir="gs://{BUCKET}/tfds")
builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
    manual_dir="gs://{BUCKET}/nist", beam_runner=DirectRunner()))
folder = epath.Path("gs://{BUCKET}/tfds/emnist_idx/digits/1.0.0")
x, y = emnist_idx.load_numpy("digits", "test", data_dir="gs://{BUCKET}/tfds", download=False)
print(json.dumps({{"shards": {{path.name: hashlib.sha256(path.read_bytes()).hexdigest()
                              for path in sorted(folder.iterdir()) if "tfrecord" in path.name}},
                  "work_files": [p.name for p in folder.iterdir() if p.name.startswith(".emnist")],
                  "test_labels": y.tolist()}}))
"""


@pytest.mark.slow
def test_beam_prepares_a_gs_data_dir_from_a_gs_manual_dir_with_the_bulk_bytes(tmp_path) -> None:
    """Beam's driver writes its plan files to the bucket, its workers read NIST's files from it."""
    _, expected_y = load_numpy("digits", "test", data_dir=str(tmp_path), manual_dir=str(DUMMY_GZIP))
    result = last_json(run_scenario(_BEAM_TO_GS))
    assert result["shards"] == shard_hashes(prepared.version_dir("digits", str(tmp_path)))
    assert len(result["shards"]) == 2 and result["work_files"] == []
    assert result["test_labels"] == expected_y.tolist()
