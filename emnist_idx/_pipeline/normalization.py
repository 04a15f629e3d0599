"""Pixel normalizations for ``load()``: a whole uint8 batch in, model-ready images out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import tensorflow as tf

from emnist_idx.configs import PIXELS

NORMALIZATIONS = ("scale", "standardize", "l2", "none")

Normalizer = Callable[[tf.Tensor], tf.Tensor]


def check_normalize(normalize: object) -> str:
    """Returns ``normalize`` if it names a normalization, else raises ValueError listing them."""
    if not isinstance(normalize, str) or normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize={normalize!r} is not supported: use one of "
                         f"{', '.join(repr(name) for name in NORMALIZATIONS)}")
    return normalize


def normalizer(normalize: str, metadata: Mapping[str, Any]) -> Normalizer:
    """The function mapping a uint8 (B, 28, 28, 1) batch to its ``normalize`` form.

    ``metadata`` is the builder's: "standardize" takes the train split's pixel "mean" and "std" (on
    the 0..1 scale) from ``metadata["pixels"]``, so every split is standardized with the training
    statistics. Datasets prepared by emnist_idx 0.x before that key kept them at the top level
    (``metadata["mean"]``); those are read too.
    """
    check_normalize(normalize)
    if normalize == "none":
        return tf.identity
    if normalize == "scale":
        return lambda images: tf.cast(images, tf.float32) / 255.0
    if normalize == "l2":
        # tf.keras.utils.normalize(x, axis=1) on (N, 28, 28): unit L2 norm along axis 1 (height),
        # all-zero vectors left at zero. The norm ignores scale, so raw 0..255 values are fine.
        return lambda images: tf.math.l2_normalize(tf.cast(images, tf.float32), axis=1)
    mean, std = _train_moments(metadata)
    # (x / 255 - mean) / std folded into one multiply-add per pixel.
    scale, offset = 1.0 / (255.0 * std), -mean / std
    return lambda images: tf.cast(images, tf.float32) * scale + offset


def _train_moments(metadata: Mapping[str, Any]) -> tuple[float, float]:
    moments = metadata.get(PIXELS, metadata)  # top level: prepared before the "pixels" key
    try:
        mean, std = float(moments["mean"]), float(moments["std"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError("normalize='standardize' needs the train split's pixel 'mean' and 'std' "
                         f"in the dataset's metadata[{PIXELS!r}], found {dict(metadata)!r}: prepare the "
                         "dataset again with this version of emnist_idx") from exc
    if not std > 0:
        raise ValueError(f"normalize='standardize': the train split's pixel std is {std}, "
                         "so its images are all one value and cannot be standardized")
    return mean, std
