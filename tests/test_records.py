"""Bulk record encoding must produce, row for row, the record TFDS's own serializer writes."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow_datasets as tfds

from emnist_idx import configs
from emnist_idx._prepare.records import RecordEncoder


def _features(num_classes: int) -> tfds.features.FeaturesDict:
    return tfds.features.FeaturesDict({
        "image": tfds.features.Tensor(shape=configs.IMAGE_SHAPE, dtype=np.uint8,
                                      encoding=tfds.features.Encoding.BYTES),
        "label": tfds.features.ClassLabel(num_classes=num_classes),
    })


@pytest.mark.parametrize("num_classes", [10, 26, 62])
def test_every_row_equals_tfds_serializer(num_classes: int) -> None:
    encoder = RecordEncoder(_features(num_classes))
    rng = np.random.default_rng(num_classes)
    images = rng.integers(0, 256, size=(50, *configs.IMAGE_SHAPE), dtype=np.uint8)
    labels = rng.integers(0, num_classes, size=50)
    labels[:2] = (0, num_classes - 1)  # the smallest and largest class ids
    rows = encoder.encode(images, labels)
    assert rows.shape == (50, encoder.record_size) and rows.dtype == np.uint8
    for row, image, label in zip(rows, images, labels):
        assert row.tobytes() == encoder.encode_one(image, int(label))


def test_transposed_views_are_encoded_as_their_values() -> None:
    """The builder hands NIST's transposed images over as views; the bytes must be the view's."""
    encoder = RecordEncoder(_features(10))
    stored = np.arange(3 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(3, 28, 28)
    upright = stored.transpose(0, 2, 1)
    rows = encoder.encode(upright, np.array([1, 2, 3]))
    for row, image, label in zip(rows, upright, (1, 2, 3)):
        assert row.tobytes() == encoder.encode_one(image[..., None], label)


def test_rows_are_independent_of_the_templates() -> None:
    """Encoding must not write image bytes into the shared per-class templates."""
    encoder = RecordEncoder(_features(10))
    first = encoder.encode(np.full((1, *configs.IMAGE_SHAPE), 7, np.uint8), np.array([4])).copy()
    encoder.encode(np.full((1, *configs.IMAGE_SHAPE), 9, np.uint8), np.array([4]))
    again = encoder.encode(np.full((1, *configs.IMAGE_SHAPE), 7, np.uint8), np.array([4]))
    assert again.tobytes() == first.tobytes()
