"""A data_dir on s3:// (prepare, load cached and streamed, load_numpy, load_data, Source, the
version lock), against moto's S3 server on 127.0.0.1 reached through etils.epath and s3fs with
EPATH_USE_TF=false (TensorFlow's file system has no S3), each scenario in a loopback-only network
namespace where one is allowed (tests/s3_server.py).

The lock's scenarios are tests/test_gs_locking.py's, run on s3:// (``_on_s3``) with their own
assertions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emnist_idx import load_numpy
from emnist_idx._prepare import object_lock
from tests import test_gs_locking
from tests.bundle_factory import DUMMY_GZIP
from tests.s3_server import BUCKET, run_scenario
from tests.test_gs_locking import local_digits  # noqa: F401 - a fixture the lock tests use

DATA_DIR = f"s3://{BUCKET}/tfds"
LOCK = f"{DATA_DIR}/emnist_idx/digits/1.0.0.lock"


def _on_s3(code: str) -> str:
    """A gs:// scenario of tests/test_gs_locking.py, on s3:// against tests/s3_server.py."""
    for gs, s3 in ((f"gs://{BUCKET}/", f"s3://{BUCKET}/"), ("tests.gcs_emulator", "tests.s3_server"),
                   ('fsspec.filesystem("gs")', 'fsspec.filesystem("s3")')):
        code = code.replace(gs, s3)
    assert "gs://" not in code and "gcs_emulator" not in code, code
    return code


@pytest.fixture
def gs_locking_on_s3(monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/test_gs_locking.py's scenarios and URLs, on s3://."""
    monkeypatch.setattr(test_gs_locking, "run_scenario",
                        lambda code, **kwargs: run_scenario(_on_s3(code), **kwargs))
    for name in ("LOCK", "DATA_DIR", "VERSION_DIR"):
        monkeypatch.setattr(test_gs_locking, name, _on_s3(getattr(test_gs_locking, name)))


def test_the_lock_message_names_the_aws_command_and_gs_scenarios_move_to_s3() -> None:
    assert object_lock.remove_command(LOCK) == f"aws s3 rm {LOCK}"
    listing = _on_s3(test_gs_locking._LISTING)
    assert 'fsspec.filesystem("s3")' in listing and repr(DATA_DIR) in listing


_PREPARE_AND_READ = f"""
import json, logging, multiprocessing, operator
import numpy as np
import emnist_idx
from emnist_idx._pipeline import prepared
logging.basicConfig()
data_dir = {DATA_DIR!r}
def as_uint8(images):  # every reader's images as uint8 (N, 28, 28) lists
    images = np.asarray(images)
    return np.rint(images * 255 if images.dtype.kind == "f" else images).reshape(-1, 28, 28).tolist()
x, y = emnist_idx.load_numpy("digits", "test", data_dir=data_dir, manual_dir={str(DUMMY_GZIP)!r})
readers = {{"load_numpy": [as_uint8(x), y.tolist()]}}
for cache in (True, False):
    batches = list(emnist_idx.load("digits", "test", data_dir=data_dir, batch_size=8, cache=cache,
                                   download=False))
    readers[f"load(cache={{cache}})"] = [as_uint8(np.concatenate([b[0] for b in batches])),
                                         np.concatenate([b[1] for b in batches]).tolist()]
(train_x, train_y), (test_x, test_y) = emnist_idx.load_data("digits", data_dir=data_dir)
readers["load_data"] = [as_uint8(test_x), test_y.tolist()]
source = emnist_idx.Source("digits", "test", data_dir=data_dir)
source_x, source_y = source[:]
readers["Source"] = [as_uint8(source_x), source_y.tolist()]
with multiprocessing.get_context("fork").Pool(1) as pool:  # s3fs, like gcsfs, is not fork-safe
    forked_x, forked_y = pool.starmap_async(operator.getitem, [(source, slice(None))]).get(120)[0]
readers["Source in a forked worker"] = [as_uint8(forked_x), forked_y.tolist()]
shard = prepared.version_dir("digits", data_dir) / "emnist_idx-test.tfrecord-00000-of-00001"
assert str(shard).startswith("s3://")
shard.write_bytes(shard.read_bytes()[:-5])  # damaged on the bucket: the error names the full URL
try:
    emnist_idx.load_numpy("digits", "test", data_dir=data_dir, download=False)
except emnist_idx.PreparedDataError as error:
    message = str(error)
print(json.dumps({{"readers": readers, "train_count": len(train_y), "error": message}}))
"""


@pytest.mark.slow
def test_load_numpy_prepares_and_every_reader_reads_an_s3_data_dir(tmp_path) -> None:
    expected_x, expected_y = load_numpy("digits", "test", data_dir=str(tmp_path),
                                        manual_dir=str(DUMMY_GZIP))
    done = run_scenario(_PREPARE_AND_READ)
    result = test_gs_locking._last_json(done)
    assert "not locked" not in done.stderr  # s3fs's exclusive create: the prepare held the lock
    assert sorted(result["readers"]) == ["Source", "Source in a forked worker", "load(cache=False)",
                                         "load(cache=True)", "load_data", "load_numpy"]
    for reader, (images, labels) in result["readers"].items():
        np.testing.assert_array_equal(np.array(images, np.uint8), expected_x[..., 0],
                                      err_msg=reader)
        assert labels == expected_y.tolist(), reader
    assert result["train_count"] == 40
    shard = f"{DATA_DIR}/emnist_idx/digits/1.0.0/emnist_idx-test.tfrecord-00000-of-00001"
    assert result["error"].startswith(shard) and "s3:/bucket" not in result["error"]


@pytest.mark.slow
def test_one_of_racing_s3_creates_wins_and_two_holders_take_turns(gs_locking_on_s3) -> None:
    """S3's ``If-None-Match: *`` put (s3fs's ``pipe_file(mode="create")``), which moto honours."""
    test_gs_locking.test_one_of_racing_creates_wins_and_two_holders_take_turns()


@pytest.mark.slow
def test_an_s3_lock_of_a_dead_holder_is_taken_over_and_a_stale_one_names_aws_s3_rm(
        gs_locking_on_s3) -> None:
    """The take-over deletes the lock ``If-Match`` the ETag it read (moto answers others 412)."""
    done = run_scenario(_on_s3(test_gs_locking._STALE),
                        env={"EMNIST_IDX_LOCK_STALE_S": "2", "EMNIST_IDX_LOCK_HEARTBEAT_S": "0.5"})
    result = test_gs_locking._last_json(done)
    assert (result["took_over"], result["released"], result["intruder_kept"]) == (True,) * 3
    assert f"Took over the lock {LOCK}: its holder" in done.stderr
    assert result["stale"].startswith(f"{LOCK}: held by pid 4242 on host other-host")
    assert f"`aws s3 rm {LOCK}`" in result["stale"]
    assert "still held, with a live heartbeat" in result["busy"]


@pytest.mark.slow
def test_two_concurrent_prepares_of_one_s3_folder_give_one_identical_dataset(
        gs_locking_on_s3, local_digits) -> None:  # noqa: F811 - the imported fixture
    test_gs_locking.test_two_concurrent_prepares_of_one_gs_folder_give_one_identical_dataset(
        local_digits)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["writing", "publishing"])
def test_a_killed_s3_prepare_is_never_read_as_complete_and_the_next_one_takes_over(
        gs_locking_on_s3, local_digits, stage) -> None:  # noqa: F811 - the imported fixture
    test_gs_locking.test_a_killed_gs_prepare_is_never_read_as_complete_and_the_next_one_recovers(
        local_digits, stage)
