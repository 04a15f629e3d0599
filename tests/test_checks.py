"""Checking a config's files before anything is written: mapping, headers, labels, upright reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emnist_idx import IdxFormatError, configs
from emnist_idx._format.idx import write_idx
from emnist_idx._format.sources import SourceFile, find_config_files
from emnist_idx._prepare import checks
from tests.bundle_factory import default_splits, write_config


@pytest.fixture()
def letters(tmp_path: Path) -> Path:
    return write_config(tmp_path / "gzip", "letters", default_splits("letters", train=30, test=9))


def test_checked_splits_hold_0_based_labels_and_the_images_file(letters: Path) -> None:
    checked = checks.check_config_files(find_config_files("letters", [letters]))
    assert list(checked) == ["train", "test"]
    for split, (_, file_labels) in default_splits("letters", train=30, test=9).items():
        np.testing.assert_array_equal(checked[split].labels, file_labels.astype(np.int64) - 1)
        assert checked[split].count == len(file_labels)
        assert checked[split].images.path == letters / configs.image_file("letters", split)


def test_mapping_of_another_config_is_refused_naming_the_file(letters: Path) -> None:
    mapping = letters / configs.mapping_file("letters")
    mapping.write_text("0 48\n1 49\n")
    with pytest.raises(IdxFormatError, match=rf"{mapping}: mapping names 2 classes '01', expected "
                                             "the 26 classes of EMNIST letters"):
        checks.check_config_files(find_config_files("letters", [letters]))


def test_images_of_the_wrong_shape_are_refused(letters: Path) -> None:
    images = letters / configs.image_file("letters", "test")
    write_idx(images, np.zeros((9, 32, 32), np.uint8))
    with pytest.raises(IdxFormatError, match=rf"{images}: expected images of shape \(N, 28, 28\)"):
        checks.check_config_files(find_config_files("letters", [letters]))


def test_labels_outside_the_config_name_file_index_and_range(letters: Path) -> None:
    labels_path = letters / configs.label_file("letters", "train")
    labels = np.full(30, 3, np.uint8)
    labels[17] = 27  # letters' labels run 1..26
    write_idx(labels_path, labels)
    with pytest.raises(IdxFormatError, match=rf"{labels_path}: label 27 at index 17 is not a class of "
                                             "EMNIST letters: expected 1 to 26"):
        checks.check_config_files(find_config_files("letters", [letters]))


def test_labels_count_must_match_the_images(letters: Path) -> None:
    labels_path = letters / configs.label_file("letters", "test")
    write_idx(labels_path, np.ones(8, np.uint8))
    with pytest.raises(IdxFormatError, match=rf"{labels_path}: header says 8 labels, images file "
                                             r".*emnist-letters-test-images-idx3-ubyte.gz has 9 images"):
        checks.check_config_files(find_config_files("letters", [letters]))


@pytest.mark.parametrize("start, stop, chunk", [(0, 30, 7), (5, 17, 4), (29, 30, 64), (10, 10, 3)])
def test_iter_upright_streams_exactly_the_asked_range_upright(letters: Path, start: int, stop: int,
                                                               chunk: int) -> None:
    upright = default_splits("letters", train=30, test=9)["train"][0]
    source = SourceFile(letters / configs.image_file("letters", "train"))
    chunks = list(checks.iter_upright(source, start, stop, chunk))
    assert all(len(c) <= chunk for c in chunks)
    got = np.concatenate(chunks) if chunks else np.empty((0, 28, 28), np.uint8)
    np.testing.assert_array_equal(got, upright[start:stop])

