"""emnist_idx.Source on a data_dir it cannot memory-map (object storage): checked blocks of records
through a bounded cache (``_pipeline/remote_shards.py``).

The fast tests send local shards down that path (``storage.is_local`` patched to say no); the slow
one prepares digits on gs:// in a local GCS emulator and reads it through etils.epath and gcsfs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import emnist_idx
from emnist_idx import PreparedDataError, Source
from emnist_idx import source as source_module
from emnist_idx._pipeline import remote_shards
from etils.epath import backend as epath_backend
from tests.bundle_factory import DUMMY_GZIP
from tests.gcs_emulator import BUCKET, run_in_child, running_emulator
from tests.local_store import last_json

FRAME = 838  # digits' and balanced's TFRecord frame
BLOCK = 7  # records per block in these tests: splits of a few dozen records span several


@pytest.fixture
def as_if_remote(monkeypatch: pytest.MonkeyPatch) -> None:
    """Local shards read the way object storage is: blocks of BLOCK records, no memory map."""
    monkeypatch.setattr(source_module.storage, "is_local", lambda location: False)
    monkeypatch.setattr(remote_shards, "BLOCK_BYTES", BLOCK * FRAME)


def _copy(data_dir: Path, tmp_path: Path, config: str = "digits") -> Path:
    shutil.copytree(data_dir / "emnist_idx" / config, tmp_path / "emnist_idx" / config)
    return next((tmp_path / "emnist_idx" / config).glob("*/emnist_idx-train.tfrecord-*"))


@pytest.mark.parametrize("cache_bytes", [0, 3 * BLOCK * 792, remote_shards.DEFAULT_CACHE_BYTES])
def test_blocks_give_the_mapped_examples_in_a_bounded_cache(prepared_data_dir: Path, as_if_remote,
                                                            cache_bytes: int) -> None:
    split = "train[10%:60%]+test[:9]"
    mapped = Source("balanced", split, data_dir=prepared_data_dir, remote_cache_bytes=0)
    images, labels = mapped[:]
    remote = Source("balanced", split, data_dir=prepared_data_dir, remote_cache_bytes=cache_bytes)
    order = np.random.default_rng(0).permutation(len(remote))
    for index in order:
        image, label = remote[int(index)]
        assert label == labels[index] and image.flags.writeable
        np.testing.assert_array_equal(image, images[index])
    blocks = remote._remote
    assert blocks is not None and blocks.block_records == BLOCK
    assert blocks.cached_bytes <= cache_bytes
    for part in (order[:50], [3, 3, -1, 0], slice(None, None, -3), slice(4, 40)):
        np.testing.assert_array_equal(remote[part][0], images[part])
        np.testing.assert_array_equal(remote[part][1], labels[part])
    assert blocks.cached_bytes <= cache_bytes


def test_blocks_check_each_record(prepared_data_dir: Path, tmp_path: Path, as_if_remote) -> None:
    shard = _copy(prepared_data_dir, tmp_path)
    data = bytearray(shard.read_bytes())
    data[9 * FRAME + 12 + 400] ^= 0x10  # a pixel of record 9, in the second block
    shard.write_bytes(bytes(data))
    source = Source("digits", "train", data_dir=tmp_path)
    assert source[8][1] == emnist_idx.Source("digits", "train[8:9]", data_dir=tmp_path)[:][1][0]
    for read in (lambda: source[9], lambda: source[[0, 9]], lambda: source[::3]):
        with pytest.raises(PreparedDataError, match=f"{shard}: record 9 fails its CRC32C check"):
            read()


def test_a_shard_whose_every_block_was_read_is_checked_whole(prepared_data_dir: Path,
                                                            tmp_path: Path, as_if_remote) -> None:
    """Records 2 and 3 swapped: each record and the shard's first and last are good, so only the
    digest of all its records (once every block was read) tells."""
    shard = _copy(prepared_data_dir, tmp_path)
    frames = np.fromfile(shard, dtype=np.uint8).reshape(-1, FRAME)
    frames[[2, 3]] = frames[[3, 2]]
    frames.tofile(shard)
    source = Source("digits", "train", data_dir=tmp_path)
    for index in range(BLOCK, len(source)):  # every block but the first
        source[index]
    with pytest.raises(PreparedDataError, match=f"{shard}: does not hold the records"):
        source[0]


def _epath_filesystems_cached(_: object = None) -> int:
    return epath_backend.fsspec_backend._get_filesystem.cache_info().currsize


def test_forked_children_make_their_own_epath_filesystems() -> None:
    """gcsfs refuses to run in a forked child ("not fork-safe"), and epath keeps one filesystem
    per protocol: children must start without the parent's."""
    import multiprocessing

    epath_backend.fsspec_backend.fs("/tmp")  # the parent now holds one
    assert _epath_filesystems_cached() >= 1
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.map_async(_epath_filesystems_cached, [None]).get(timeout=60) == [0]


_PREPARE = f"""
import emnist_idx
emnist_idx.load_numpy("digits", "test", data_dir="gs://{BUCKET}/tfds", manual_dir={str(DUMMY_GZIP)!r})
"""

_READ = f"""
import json, multiprocessing, pickle, sys
import numpy as np
import emnist_idx
from emnist_idx._pipeline import remote_shards
from etils import epath
remote_shards.BLOCK_BYTES = {BLOCK * FRAME}  # several blocks per shard, as a real split has
data_dir = "gs://{BUCKET}/tfds"
source = emnist_idx.Source("digits", "train+test", data_dir=data_dir, remote_cache_bytes=2 * {BLOCK} * 792)
singles = [source[index] for index in range(len(source))]
whole, chosen, strided = source[:], source[[59, 0, 20, 7]], source[::7]
copy = pickle.loads(pickle.dumps(source))

def labels(source):
    return [source[index][1] for index in range(len(source))]

copied = labels(copy)
with multiprocessing.get_context("fork").Pool(2) as pool:
    forked = pool.map_async(labels, [source, source]).get(timeout=120)
# a pixel of test record 7, on the bucket: a fresh Source names the shard's full URL
shard = epath.Path(data_dir) / "emnist_idx/digits/1.0.0/emnist_idx-test.tfrecord-00000-of-00001"
data = bytearray(shard.read_bytes())
data[7 * {FRAME} + 12 + 400] ^= 0x10
shard.write_bytes(bytes(data))
damaged = emnist_idx.Source("digits", "test", data_dir=data_dir)
errors = []
for read in (lambda: damaged[7], lambda: damaged[:], lambda: damaged[[0, 7]]):
    try:
        read()
    except emnist_idx.PreparedDataError as error:
        errors.append(str(error))
print(json.dumps({{
    "images": [image.tolist() for image, _ in singles], "labels": [label for _, label in singles],
    "whole": [whole[0].tolist(), whole[1].tolist()], "chosen": chosen[1].tolist(),
    "strided": [strided[0].tolist(), strided[1].tolist()], "copy": copied,
    "forked": forked, "errors": errors, "tensorflow": "tensorflow" in sys.modules}}))
"""


@pytest.mark.slow
def test_source_reads_a_gs_data_dir(prepared_data_dir: Path) -> None:
    images, labels = Source("digits", "train+test", data_dir=prepared_data_dir)[:]
    with running_emulator() as port:
        prepared = run_in_child(_PREPARE, port)
        assert prepared.returncode == 0, prepared.stderr[-3000:]
        done = run_in_child(_READ, port)
    result = last_json(done)
    np.testing.assert_array_equal(np.array(result["images"], np.uint8), images)
    assert result["labels"] == labels.tolist() == result["whole"][1] == result["copy"]
    np.testing.assert_array_equal(np.array(result["whole"][0], np.uint8), images)
    assert result["chosen"] == labels[[59, 0, 20, 7]].tolist()
    np.testing.assert_array_equal(np.array(result["strided"][0], np.uint8), images[::7])
    assert result["strided"][1] == labels[::7].tolist()
    assert result["forked"] == [labels.tolist()] * 2
    shard = f"gs://{BUCKET}/tfds/emnist_idx/digits/1.0.0/emnist_idx-test.tfrecord-00000-of-00001"
    assert len(result["errors"]) == 3
    for error in result["errors"]:
        assert error.startswith(f"{shard}: record 7 fails its CRC32C check"), error
    assert result["tensorflow"] is False


@pytest.mark.slow
def test_sources_benchmark_times_source_on_gs(tmp_path: Path) -> None:
    """``benchmarks/sources.py --gs`` on a tiny bundle writes its gs:// rows (no timing asserted)."""
    import subprocess
    import sys

    out = tmp_path / "sources.json"
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "sources.py"
    done = subprocess.run(
        [sys.executable, str(script), "--config", "digits", "--scale", "0.001", "--repeats", "1",
         "--reads", "50", "--gs", "--json", str(out), "--cache-dir", str(tmp_path / "cache"),
         "--tmp-dir", str(tmp_path)], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    for name in ("gs_source_random_single_cold", "gs_source_random_single_warm",
                 "gs_source_random_batches_warm", "gs_source_whole_split"):
        assert rows[name]["examples"] == (240 if name == "gs_source_whole_split" else 50), name
        assert f"| {name} |" in done.stdout
    assert rows["gs_cached_bytes"] == 240 * FRAME and rows["tensorflow_imported"] is False
