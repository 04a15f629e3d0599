"""Pixel normalizations for ``load()``: a whole uint8 batch in, model-ready images out."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import tensorflow as tf

NORMALIZATIONS = ("scale", "standardize", "l2", "none")

Normalizer = Callable[[tf.Tensor], tf.Tensor]


def check_normalize(normalize: object) -> str:
    """Returns ``normalize`` if it names a normalization, else raises ValueError listing them."""
    if not isinstance(normalize, str) or normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize={normalize!r} is not supported: use one of "
                         f"{', '.join(repr(name) for name in NORMALIZATIONS)}")
    return normalize


def normalizer(normalize: str, metadata: Mapping[str, float]) -> Normalizer:
    """The function mapping a uint8 (B, 28, 28, 1) batch to its ``normalize`` form.

    ``metadata`` is the builder's: "standardize" takes the train split's "mean" and "std" (on the
    0..1 scale) from it, so every split is standardized with the training statistics.
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


def _train_moments(metadata: Mapping[str, float]) -> tuple[float, float]:
    try:
        mean, std = float(metadata["mean"]), float(metadata["std"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError("normalize='standardize' needs the train split's pixel 'mean' and 'std' "
                         f"in the dataset's metadata, found {dict(metadata)!r}: prepare the "
                         "dataset again with this version of emnist_idx") from exc
    if not std > 0:
        raise ValueError(f"normalize='standardize': the train split's pixel std is {std}, "
                         "so its images are all one value and cannot be standardized")
    return mean, std
