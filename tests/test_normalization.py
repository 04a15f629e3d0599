"""Each normalization on a known batch, and the errors for bad names and missing statistics."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from emnist_idx._pipeline import normalization

BATCH = np.array([[[[0], [255]], [[51], [0]]], [[[0], [0]], [[0], [0]]]], dtype=np.uint8)  # (2,2,2,1)


def _apply(name: str, metadata: dict | None = None) -> np.ndarray:
    return normalization.normalizer(name, metadata or {})(tf.constant(BATCH)).numpy()


def test_scale_maps_0_255_to_0_1() -> None:
    out = _apply("scale")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, BATCH / 255.0, rtol=1e-6)


def test_none_keeps_the_uint8_pixels() -> None:
    out = _apply("none")
    assert out.dtype == np.uint8 and np.array_equal(out, BATCH)


def test_standardize_uses_the_train_mean_and_std() -> None:
    stats = {"mean": 0.1, "std": 0.2}
    out = _apply("standardize", stats)
    np.testing.assert_allclose(out, (BATCH / 255.0 - 0.1) / 0.2, rtol=1e-5, atol=1e-6)


def test_l2_gives_unit_columns_and_leaves_zero_columns_zero() -> None:
    out = _apply("l2")
    norms = np.sqrt((out.astype(np.float64) ** 2).sum(axis=1))  # along the height axis
    np.testing.assert_allclose(norms[0], 1.0, rtol=1e-6)  # both columns of image 0 have ink
    assert not out[1].any()  # an all-zero image stays zero, no NaN


@pytest.mark.parametrize("bad", ["minmax", "", None, 1])
def test_unknown_normalization_lists_the_supported_ones(bad: object) -> None:
    with pytest.raises(ValueError, match="'scale', 'standardize', 'l2', 'none'"):
        normalization.check_normalize(bad)


def test_standardize_without_statistics_says_to_prepare_again() -> None:
    with pytest.raises(ValueError, match="prepare the dataset again"):
        normalization.normalizer("standardize", {})


def test_standardize_with_zero_std_is_refused() -> None:
    with pytest.raises(ValueError, match="std is 0.0"):
        normalization.normalizer("standardize", {"mean": 0.5, "std": 0.0})
