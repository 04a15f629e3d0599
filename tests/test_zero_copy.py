"""numpy arrays adopted by TensorFlow without a copy, and the cache that holds its split once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from emnist_idx._pipeline import zero_copy
from tests.bundle_factory import REPO, default_splits, write_config


@pytest.mark.parametrize(("shape", "dtype"), [((3, 28, 28, 1), np.uint8), ((5,), np.int64),
                                              ((7, 3), np.float32)])
def test_aligned_empty_starts_on_the_boundary(shape: tuple[int, ...], dtype: type) -> None:
    for _ in range(8):  # numpy's own allocations land on 16-byte boundaries: try several
        array = zero_copy.aligned_empty(shape, dtype)
        assert array.shape == shape and array.dtype == dtype
        assert array.flags.c_contiguous and array.flags.writeable
        assert array.ctypes.data % zero_copy.ALIGNMENT == 0
        assert zero_copy.is_adoptable(array)


def test_an_aligned_array_is_adopted_not_copied() -> None:
    array = zero_copy.aligned_empty((100, 28, 28, 1), np.uint8)
    array[...] = np.arange(100, dtype=np.uint8)[:, None, None, None]
    tensor = zero_copy.as_tensor(array)
    array[3] = 255  # the tensor reads the array's memory
    assert int(tensor[3, 0, 0, 0]) == 255 and int(tensor[4, 5, 5, 0]) == 4
    # Kernels that require aligned tensors run on it; the array lives as long as the tensor.
    del array
    picked = tf.gather(tensor, [4, 3])[:, 1:3]
    assert picked.numpy().tolist() == [[[[4]] * 28] * 2, [[[255]] * 28] * 2]


_UNALIGNED_CHILD = """
import numpy as np, tensorflow as tf
from emnist_idx._pipeline import zero_copy
raw = zero_copy.aligned_empty((8 * 100 + 1,), np.uint8)
raw[...] = 7
views = {"offset by one byte": raw[1:].view(np.int64),
         "not contiguous": zero_copy.aligned_empty((10, 8), np.int64)[:, ::2],
         "read-only": np.frombuffer(bytes(800), np.int64)}
for name, view in views.items():
    view = np.asarray(view)
    assert not zero_copy.is_adoptable(view) or name == "read-only" and view.flags.writeable, name
    tensor = zero_copy.as_tensor(view)
    before = tensor.numpy().copy()
    if view.flags.writeable:
        view[...] = 1
    # A strided slice aborts the process on a misaligned tensor; a copy is aligned.
    assert np.array_equal(tensor[1:3].numpy(), before[1:3]), name
    assert np.array_equal(tensor.numpy(), before), name
print("copied")
"""


@pytest.mark.slow
def test_unaligned_arrays_are_copied_not_adopted() -> None:
    # In a child process: adopting a misaligned array would abort the process, not raise.
    done = subprocess.run([sys.executable, "-c", _UNALIGNED_CHILD], capture_output=True, text=True,
                          timeout=300, env=_child_env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "copied"


_CACHE_CHILD = """
import json, sys
import emnist_idx


def status_kb(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


data_dir, manual_dir = sys.argv[1:3]
emnist_idx.load_numpy("mnist", "test", data_dir=data_dir, manual_dir=manual_dir)  # prepare first
dataset = emnist_idx.load("mnist", "train", cache=True, data_dir=data_dir, device=None)
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # resets the high-water mark to the current RSS
before = status_kb("VmRSS")
examples = sum(int(labels.shape[0]) for _, labels in dataset)
print(json.dumps({"examples": examples, "growth_kb": status_kb("VmHWM") - before}))
"""


@pytest.mark.slow
def test_the_cache_holds_its_split_once(tmp_path: Path) -> None:
    """Filling the cache takes about the split's size, not the two or three copies it once took."""
    train = 120_000  # 91 MB: far above the fixed costs (the pieces being read, TensorFlow's own)
    manual_dir = write_config(tmp_path / "gzip", "mnist", default_splits("mnist", train, test=100))
    done = subprocess.run([sys.executable, "-c", _CACHE_CHILD, str(tmp_path / "data"),
                           str(manual_dir)], capture_output=True, text=True, timeout=600,
                          env=_child_env())
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["examples"] == train
    split_mb = train * (28 * 28 + 8) / 2**20
    growth_mb = result["growth_kb"] / 1024
    print(f"\ncache of {split_mb:.1f} MB: peak RSS growth {growth_mb:.1f} MB during epoch 1")
    # One copy of the split, plus the pieces being read (16,384 records, 13.7 MB, per reader
    # thread) and TensorFlow's per-batch buffers: measured 1.56x. Assembling the split from
    # copied chunks took 2.34x.
    assert growth_mb < 2 * split_mb


def _child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "TF_CPP_MIN_LOG_LEVEL": "2"}
