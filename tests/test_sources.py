"""Finding a config's files in every shape users hold them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emnist_idx import configs
from emnist_idx._format.idx import read_idx
from emnist_idx._format.sources import candidate_names, find_config_files

from tests.bundle_factory import default_splits, every_source_shape, write_config, zip_folder

CONFIG = "digits"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_config(tmp_path / "nist" / "gzip", CONFIG, default_splits(CONFIG))


def test_every_shape_yields_the_same_arrays(folder: Path, tmp_path: Path) -> None:
    expected = read_idx(folder / configs.image_file(CONFIG, "train"))
    for shape, root in every_source_shape(folder, tmp_path, CONFIG).items():
        files = find_config_files(CONFIG, [root])
        assert files.config == CONFIG
        with files.images["train"].open() as stream:
            np.testing.assert_array_equal(read_idx(stream), expected, err_msg=shape)
        assert len(files.all()) == 5


def test_zip_members_are_named_for_messages(folder: Path, tmp_path: Path) -> None:
    zip_folder(folder, tmp_path / "gzip.zip")
    files = find_config_files(CONFIG, [tmp_path / "gzip.zip"])
    assert files.labels["test"].name == (
        f"{tmp_path / 'gzip.zip'}:gzip/emnist-digits-test-labels-idx1-ubyte.gz"
    )


def test_loose_files_win_over_the_zip(folder: Path) -> None:
    zip_folder(folder, folder.parent / "gzip.zip")
    files = find_config_files(CONFIG, [folder.parent])
    assert files.mapping.member is None
    assert files.mapping.path == folder / configs.mapping_file(CONFIG)


def test_missing_files_error_lists_files_places_and_help(folder: Path) -> None:
    (folder / configs.label_file(CONFIG, "test")).unlink()
    with pytest.raises(FileNotFoundError) as raised:
        find_config_files(CONFIG, [folder.parent])
    message = str(raised.value)
    assert "emnist-digits-test-labels-idx1-ubyte.gz" in message
    assert "emnist-digits-train-images" not in message
    assert str(folder.parent) in message and str(folder) in message
    assert configs.BUNDLE_URL in message
    assert "--manual_dir" in message


def test_unknown_split_is_rejected(folder: Path) -> None:
    with pytest.raises(ValueError, match="config='kanji' is not an EMNIST config"):
        find_config_files("kanji", [folder])


def test_candidate_names() -> None:
    assert candidate_names("emnist-mnist-test-images-idx3-ubyte.gz") == [
        "emnist-mnist-test-images-idx3-ubyte.gz",
        "emnist-mnist-test-images-idx3-ubyte",
        "emnist-mnist-test-images.idx3-ubyte",
        "emnist-mnist-test-images.idx3-ubyte.gz",
    ]
    assert candidate_names("emnist-mnist-mapping.txt") == ["emnist-mnist-mapping.txt"]
