"""The train pixel histogram behind the metadata's mean and std (bulk and Beam paths alike)."""

from __future__ import annotations

import numpy as np
import pytest

from emnist_idx._prepare.pixel_stats import PixelHistogram


def test_histogram_counts_equal_bincount_in_any_chunking_and_layout() -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(37, 28, 28), dtype=np.uint8)
    images[:, :9] = 0
    expected = np.bincount(images.reshape(-1), minlength=256)
    histogram = PixelHistogram()
    for start in range(0, 37, 5):
        histogram.add(images[start : start + 5].transpose(0, 2, 1))  # upright views, as prepared
    np.testing.assert_array_equal(histogram.counts, expected)
    histogram.add(np.zeros((3, 28, 28), np.uint8))  # blank images: only counted as zero words
    expected[0] += 3 * 784
    np.testing.assert_array_equal(histogram.counts, expected)

    odd = PixelHistogram()  # odd byte counts and strided views that must be copied
    odd.add(images.reshape(-1)[:1001])
    odd.add(images.reshape(-1)[1001::3])
    tail = images.reshape(-1)
    np.testing.assert_array_equal(odd.counts, np.bincount(tail[:1001], minlength=256)
                                  + np.bincount(tail[1001::3], minlength=256))


def test_histogram_moments_are_the_pixel_mean_and_std_on_the_0_1_scale() -> None:
    images = np.random.default_rng(1).integers(0, 256, size=(20, 28, 28), dtype=np.uint8)
    histogram = PixelHistogram()
    histogram.add(images)
    mean, std = histogram.moments()
    assert mean == pytest.approx((images / 255.0).mean(), rel=1e-12)
    assert std == pytest.approx((images / 255.0).std(), rel=1e-12)
    with pytest.raises(ValueError, match="no pixels were counted"):
        PixelHistogram().moments()
    with pytest.raises(TypeError, match="expects uint8 images, got int16"):
        histogram.add(images.astype(np.int16))


def test_pixel_moments_of_a_known_histogram() -> None:
    histogram = PixelHistogram()
    histogram.add(np.array([0, 0, 0, 255], np.uint8))  # pixels 0, 0, 0, 1 on the 0..1 scale
    np.testing.assert_array_equal(np.flatnonzero(histogram.counts), [0, 255])
    mean, std = histogram.moments()
    assert mean == pytest.approx(0.25) and std == pytest.approx(np.std([0, 0, 0, 1.0]))
