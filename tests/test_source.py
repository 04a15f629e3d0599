"""emnist_idx.Source: random access to prepared shards without TensorFlow, checked like load_numpy."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import emnist_idx
from emnist_idx import PreparedDataError, Source
from emnist_idx._prepare.tfrecord_frames import HEADER_SIZE


def copy_prepared(data_dir: Path, config: str, root: Path) -> Path:
    """A copy of one prepared config under ``root`` (a data dir of its own), to damage or lock."""
    shutil.copytree(data_dir / "emnist_idx" / config, root / "emnist_idx" / config)
    return root


def shard(data_dir: Path, config: str, split: str) -> Path:
    return next((data_dir / "emnist_idx" / config).glob(f"*/emnist_idx-{split}.tfrecord-*"))


@pytest.mark.parametrize("config, split", [("digits", "train"), ("letters", "test"),
                                           ("balanced", "train[10%:30%]+test[:7]")])
def test_every_access_gives_load_numpys_examples(prepared_data_dir: Path, config: str,
                                                 split: str) -> None:
    x, y = emnist_idx.load_numpy(config, split, data_dir=prepared_data_dir, download=False)
    x = x[..., 0]
    source = Source(config, split, data_dir=prepared_data_dir)
    assert len(source) == len(y)
    for index in range(len(source)):
        image, label = source[index]
        assert image.dtype == np.uint8 and image.shape == (28, 28) and image.flags.writeable
        assert type(label) is int and label == y[index]
        np.testing.assert_array_equal(image, x[index])
    images, labels = source[:]
    assert images.shape == x.shape and labels.dtype == np.int64
    np.testing.assert_array_equal(images, x)
    np.testing.assert_array_equal(labels, y)
    chosen = [len(y) - 1, 0, 3, -2, 3]
    images, labels = source[chosen]
    np.testing.assert_array_equal(images, x[chosen])
    np.testing.assert_array_equal(labels, y[chosen])
    for part in (slice(2, 9, 3), slice(None, None, -1), slice(5, 5)):
        images, labels = source[part]
        np.testing.assert_array_equal(images, x[part])
        np.testing.assert_array_equal(labels, y[part])
    image, label = source[np.int64(-1)]
    assert label == y[-1]
    assert [label for _, label in source.__getitems__([4, 1])] == [y[4], y[1]]


def test_a_read_instruction_and_class_names(prepared_data_dir: Path) -> None:
    import tensorflow_datasets as tfds

    source = Source("letters", tfds.core.ReadInstruction("test", from_=2, to=6),
                    data_dir=prepared_data_dir)
    _, y = emnist_idx.load_numpy("letters", "test[2:6]", data_dir=prepared_data_dir)
    np.testing.assert_array_equal(source[:][1], y)
    assert source.class_names == tuple(emnist_idx.class_names("letters"))


def test_bad_indices_and_splits_name_the_problem(prepared_data_dir: Path) -> None:
    source = Source("digits", "test", data_dir=prepared_data_dir)
    for index in (len(source), -len(source) - 1):
        with pytest.raises(IndexError, match=f"index {index} is out of range"):
            source[index]
    with pytest.raises(IndexError, match="out of range"):
        source[[0, len(source)]]
    for index in ("0", 1.0, True, [[0]], [0.5]):
        with pytest.raises(TypeError, match="Source indices must be integers"):
            source[index]
    with pytest.raises(ValueError, match=r"percent slice boundaries should be in \[-100, 100\]"):
        Source("digits", "train[:150%]", data_dir=prepared_data_dir)
    with pytest.raises(ValueError, match="'valid' is not a split of emnist_idx/digits"):
        Source("digits", "valid", data_dir=prepared_data_dir)
    with pytest.raises(ValueError, match="config='emnist' is not an EMNIST config"):
        Source("emnist")


def test_a_missing_config_names_the_command_or_is_prepared(tmp_path: Path, manual_dir: Path
                                                           ) -> None:
    with pytest.raises(FileNotFoundError, match="tfds build emnist_idx --imports emnist_idx "
                                                "--config mnist"):
        Source("mnist", "test", data_dir=tmp_path)
    assert len(Source("mnist", "test", data_dir=tmp_path, download=True,
                      manual_dir=manual_dir)) == 20


def test_no_tensorflow_is_imported(prepared_data_dir: Path) -> None:
    script = (
        "import sys, pickle, emnist_idx\n"
        f"source = emnist_idx.Source('digits', 'train[:50%]+test', data_dir={str(prepared_data_dir)!r})\n"
        "print(len(source), source[3][1], len(source[:][0]), len(source[[1, 2]][1]),\n"
        "      len(pickle.loads(pickle.dumps(source))), 'tensorflow' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    _, y = emnist_idx.load_numpy("digits", "train[:50%]+test", data_dir=prepared_data_dir)
    assert done.stdout.split() == [str(len(y)), str(y[3]), str(len(y)), "2", str(len(y)), "False"]


def test_pickles_to_its_arguments(prepared_data_dir: Path) -> None:
    source = Source("digits", "test[:5]", data_dir=prepared_data_dir)
    source[0]  # opens the shard: the map is not part of the pickle
    data = pickle.dumps(source)
    assert len(data) < 300 and b"mmap" not in data
    copy = pickle.loads(data)
    assert (copy.config, copy.split, copy.data_dir) == ("digits", "test[:5]",
                                                        str(prepared_data_dir))
    np.testing.assert_array_equal(copy[:][1], source[:][1])


def _labels_in_child(source: Source) -> list[int]:
    return [source[index][1] for index in range(len(source))] + source[:][1].tolist()


def test_forked_workers_open_their_own_maps(prepared_data_dir: Path) -> None:
    source = Source("digits", "train", data_dir=prepared_data_dir)
    parents = [source[index][1] for index in range(len(source))]  # opened in the parent
    with multiprocessing.get_context("fork").Pool(2) as pool:
        results = pool.map(_labels_in_child, [source, source])
    assert results == [parents * 2] * 2


def test_reads_a_read_only_folder_and_writes_nothing(prepared_data_dir: Path, tmp_path: Path
                                                     ) -> None:
    root = copy_prepared(prepared_data_dir, "digits", tmp_path)
    folder = root / "emnist_idx" / "digits"
    before = {path: path.stat().st_mtime_ns for path in folder.rglob("*")}
    for path in [*before, folder]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        source = Source("digits", "train", data_dir=root)
        assert len(source[:][1]) == len(source) == 40 and source[39][1] == source[:][1][39]
        assert {path: path.stat().st_mtime_ns for path in folder.rglob("*")} == before
    finally:
        for path in [*before, folder]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_a_damaged_record_is_named_with_its_shard(prepared_data_dir: Path, tmp_path: Path
                                                  ) -> None:
    root = copy_prepared(prepared_data_dir, "digits", tmp_path)
    path = shard(root, "digits", "test")
    source = Source("digits", "test", data_dir=root)
    frame_size = os.path.getsize(path) // len(source)
    data = bytearray(path.read_bytes())
    data[7 * frame_size + HEADER_SIZE + 400] ^= 0x10  # a pixel of record 7
    path.write_bytes(bytes(data))
    fresh = Source("digits", "test", data_dir=root)
    assert fresh[6][1] == source[6][1]
    for read in (lambda: fresh[7], lambda: fresh[:], lambda: fresh[[0, 7]]):
        with pytest.raises(PreparedDataError, match=f"{path}: record 7 fails its CRC32C check"):
            read()


def test_a_cut_shard_is_refused_before_reading(prepared_data_dir: Path, tmp_path: Path) -> None:
    root = copy_prepared(prepared_data_dir, "digits", tmp_path)
    path = shard(root, "digits", "train")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(PreparedDataError, match=f"{path}: holds .* and .* bytes of a cut record"):
        Source("digits", "train", data_dir=root)
    assert len(Source("digits", "test", data_dir=root)[:][1]) == 20  # the other split reads


def test_slices_across_shards(tmp_path: Path, manual_dir: Path) -> None:
    from tests.multi_shard import prepare_in_shards

    data_dir = prepare_in_shards(tmp_path, manual_dir, "digits", 4)  # train: 4 shards of 10
    split = "train[5:35]+test[:3]"
    x, y = emnist_idx.load_numpy("digits", split, data_dir=data_dir)
    source = Source("digits", split, data_dir=data_dir)
    assert [source[index][1] for index in range(len(source))] == y.tolist()
    np.testing.assert_array_equal(source[:][0], x[..., 0])
    np.testing.assert_array_equal(source[::-1][1], y[::-1])
    chosen = [32, 4, 15, 25, 5]
    np.testing.assert_array_equal(source[chosen][0], x[chosen, ..., 0])


def test_a_record_of_other_features_is_refused_even_with_a_good_crc(prepared_data_dir: Path,
                                                                    tmp_path: Path) -> None:
    import google_crc32c

    from emnist_idx._prepare.tfrecord_frames import masked_crc

    root = copy_prepared(prepared_data_dir, "digits", tmp_path)
    path = shard(root, "digits", "test")
    frame_size = os.path.getsize(path) // 20
    data = bytearray(path.read_bytes())
    start = 3 * frame_size
    data[start + HEADER_SIZE + 2] ^= 0x01  # a byte of the record's framing, not of the image
    record = bytes(data[start + HEADER_SIZE:start + frame_size - 4])
    stored = masked_crc(np.array([google_crc32c.value(record)], dtype=np.uint32))
    data[start + frame_size - 4:start + frame_size] = stored.astype("<u4").tobytes()
    path.write_bytes(bytes(data))
    source = Source("digits", "test", data_dir=root)
    for read in (lambda: source[3], lambda: source[2:5]):
        with pytest.raises(PreparedDataError, match=f"{path}: record 3 .*its CRC matches"):
            read()
