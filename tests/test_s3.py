"""A data_dir on s3:// (prepare, load cached and streamed, load_numpy, load_data, Source, the
version lock), against moto's S3 server on 127.0.0.1 reached through etils.epath and s3fs with
EPATH_USE_TF=false (TensorFlow's file system has no S3), each scenario in a loopback-only network
namespace where one is allowed (tests/s3_server.py).

The lock's scenarios run on s3:// and gs:// alike: tests/test_object_locking.py."""

from __future__ import annotations


import numpy as np
import pytest

from tests.bundle_factory import DUMMY_GZIP
from tests.local_store import last_json
from tests.s3_server import BUCKET, run_scenario

DATA_DIR = f"s3://{BUCKET}/tfds"


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
def test_load_numpy_prepares_and_every_reader_reads_an_s3_data_dir(digits_test) -> None:
    expected_x, expected_y = digits_test
    done = run_scenario(_PREPARE_AND_READ)
    result = last_json(done)
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

