"""Issue #21 items 4-7 on real files: pixel statistics, zips, leftovers of kills, edge errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from emnist_idx import PreparedDataError
from emnist_idx._pipeline.loading import load
from emnist_idx._prepare.preparing import prepared_builder
from tests.bundle_factory import DUMMY_GZIP


@pytest.fixture(scope="module")
def digits_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data_dir with digits prepared from dummy_data."""
    data_dir = tmp_path_factory.mktemp("edges")
    prepared_builder("digits", data_dir=data_dir, manual_dir=DUMMY_GZIP)
    return data_dir


def _copy_digits(digits_data_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A fresh data_dir with a copy of the prepared digits; returns it and its version dir."""
    target = tmp_path / "data" / "emnist_idx" / "digits"
    shutil.copytree(digits_data_dir / "emnist_idx" / "digits", target)
    return tmp_path / "data", target / "1.0.0"


# --- item 4: statistics that are not numbers ---

@pytest.mark.parametrize(("mean", "std"), [
    ("NaN", "0.3"), ("-Infinity", "0.3"), ("1e300", "0.3"), ('"nan"', "0.3"),
    ("0.15", "Infinity"), ("0.15", "1e-300"), ("0.15", "true"), ("true", "0.3"),
    ("-0.01", "0.3"), ("0.15", "0.36"), ("0.15", "0.001"), ("0", "0.3"),
])
def test_metadata_pixel_statistics_that_are_not_real_pixel_moments_are_refused(
        digits_data_dir: Path, tmp_path: Path, mean: str, std: str) -> None:
    data_dir, version_dir = _copy_digits(digits_data_dir, tmp_path)
    metadata = json.loads((version_dir / "metadata.json").read_text())
    del metadata["pixels"]
    text = json.dumps(metadata)[:-1] + f', "pixels": {{"mean": {mean}, "std": {std}}}}}'
    (version_dir / "metadata.json").write_text(text)
    with pytest.raises(PreparedDataError, match=r"metadata\.json: the train split's pixel (mean|std)"):
        load("digits", normalize="standardize", data_dir=str(data_dir), download=False)


def test_metadata_pixel_statistics_at_their_limits_are_accepted(digits_data_dir: Path,
                                                                tmp_path: Path) -> None:
    data_dir, version_dir = _copy_digits(digits_data_dir, tmp_path)
    metadata = json.loads((version_dir / "metadata.json").read_text())
    metadata["pixels"] = {"mean": 0.5, "std": 0.5}  # pixels all 0 or 1, half each: the largest std
    (version_dir / "metadata.json").write_text(json.dumps(metadata))
    images, _ = next(iter(load("digits", normalize="standardize", batch_size=4,
                               data_dir=str(data_dir), download=False)))
    assert images.shape == (4, 28, 28, 1)
