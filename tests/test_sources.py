"""Finding a split's files in every shape users hold them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emnist_idx import configs
from emnist_idx.idx import read_idx
from emnist_idx.sources import candidate_names, find_split_files

from bundle_factory import default_parts, every_source_shape, write_split, zip_folder

SPLIT = "digits"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_split(tmp_path / "nist" / "gzip", SPLIT, default_parts(SPLIT))


def test_every_shape_yields_the_same_arrays(folder: Path, tmp_path: Path) -> None:
    expected = read_idx(folder / configs.image_file(SPLIT, "train"))
    for shape, root in every_source_shape(folder, tmp_path, SPLIT).items():
        files = find_split_files(SPLIT, [root])
        assert files.split == SPLIT
        with files.images["train"].open() as stream:
            np.testing.assert_array_equal(read_idx(stream), expected, err_msg=shape)
        assert len(files.all()) == 5


def test_zip_members_are_named_for_messages(folder: Path, tmp_path: Path) -> None:
    zip_folder(folder, tmp_path / "gzip.zip")
    files = find_split_files(SPLIT, [tmp_path / "gzip.zip"])
    assert files.labels["test"].name == (
        f"{tmp_path / 'gzip.zip'}:gzip/emnist-digits-test-labels-idx1-ubyte.gz"
    )


def test_loose_files_win_over_the_zip(folder: Path) -> None:
    zip_folder(folder, folder.parent / "gzip.zip")
    files = find_split_files(SPLIT, [folder.parent])
    assert files.mapping.member is None
    assert files.mapping.path == folder / configs.mapping_file(SPLIT)


def test_missing_files_error_lists_files_places_and_help(folder: Path) -> None:
    (folder / configs.label_file(SPLIT, "test")).unlink()
    with pytest.raises(FileNotFoundError) as raised:
        find_split_files(SPLIT, [folder.parent])
    message = str(raised.value)
    assert "emnist-digits-test-labels-idx1-ubyte.gz" in message
    assert "emnist-digits-train-images" not in message
    assert str(folder.parent) in message and str(folder) in message
    assert configs.BUNDLE_URL in message
    assert "--manual_dir" in message


def test_unknown_split_is_rejected(folder: Path) -> None:
    with pytest.raises(ValueError, match="unknown EMNIST split 'kanji'"):
        find_split_files("kanji", [folder])


def test_candidate_names() -> None:
    assert candidate_names("emnist-mnist-test-images-idx3-ubyte.gz") == [
        "emnist-mnist-test-images-idx3-ubyte.gz",
        "emnist-mnist-test-images-idx3-ubyte",
        "emnist-mnist-test-images.idx3-ubyte",
        "emnist-mnist-test-images.idx3-ubyte.gz",
    ]
    assert candidate_names("emnist-mnist-mapping.txt") == ["emnist-mnist-mapping.txt"]
