"""``show_examples()``: a grid of EMNIST examples with their class names, in TFDS's style.

``tfds.show_examples`` draws only ``tfds.features.Image`` features; emnist_idx stores its images as a
raw-bytes ``tfds.features.Tensor`` (784 bytes, no PNG to decode), which TFDS's grid does not take.
This draws the same kind of grid with Pillow, without matplotlib.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from emnist_idx import configs, grid


def show_examples(
    ds_or_config: tf.data.Dataset | str,
    info: tfds.core.DatasetInfo | None = None,
    *,
    split: str = "test",
    rows: int = 3,
    cols: int = 3,
    class_names: Sequence[str] | None = None,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    download: bool = True,
) -> Image.Image:
    """Draws the first ``rows * cols`` examples, each captioned "name (label)", like TFDS's grid.

    Args:
      ds_or_config: a config name ("balanced", ...: its ``split`` is read, prepared first if
        needed), or a ``tf.data.Dataset`` of examples: ``{"image", "label"}`` dicts or
        ``(image, label)`` pairs, as ``tfds.load`` gives them (``as_supervised`` or not, batched or
        not) or as ``load()`` gives them (any ``normalize``; one-hot labels too). Float images are
        stretched from their own minimum and maximum to 0..255.
      info: the dataset's ``DatasetInfo`` (``tfds.load(..., with_info=True)``): the class names come
        from its "label" feature. Not needed for a config name.
      split: the split (TFDS slicing allowed) drawn for a config name.
      rows: the grid's rows; fewer cells are filled when the data has fewer examples.
      cols: the grid's columns.
      class_names: names indexed by label, instead of those of ``info`` or the config.
      data_dir: TFDS data directory, as for ``load()``, for a config name.
      manual_dir: where NIST's files are, as for ``load()``, for a config name.
      download: prepare the dataset when it is not prepared yet, as for ``load()``, for a config
        name.

    Returns:
      A ``PIL.Image.Image`` (RGB): notebooks display it, ``.save("grid.png")`` writes it.

    Example:

    ```python
    ds, info = tfds.load("emnist_idx/letters", split="train", with_info=True)
    emnist_idx.show_examples(ds, info, rows=4, cols=8).save("letters.png")
    emnist_idx.show_examples("balanced", rows=2, cols=5)
    ```
    """
    for name, value in (("rows", rows), ("cols", cols)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    count = rows * cols
    if isinstance(ds_or_config, str):
        from emnist_idx._pipeline.preparing import prepared_builder

        builder = prepared_builder(ds_or_config, data_dir=data_dir, manual_dir=manual_dir,
                                   download=download)
        info = info or builder.info
        ds_or_config = builder.as_dataset(split=split, as_supervised=True)
    if not isinstance(ds_or_config, tf.data.Dataset):
        raise TypeError(f"expected a config name or a tf.data.Dataset, got {type(ds_or_config)!r}")
    images, labels = _first_examples(ds_or_config, count)
    if not len(images):
        raise ValueError("the dataset has no examples to show")
    names = list(class_names) if class_names is not None else _class_names(info)
    captions = [f"{names[label]} ({label})" if names and 0 <= label < len(names) else str(label)
                for label in labels]
    return grid.draw_grid(_as_uint8(images), captions, columns=cols)


def _first_examples(dataset: tf.data.Dataset, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``count`` (image, label) pairs from a dataset of dicts or pairs, batched or not."""
    images: list[np.ndarray] = []
    labels: list[int] = []
    for element in itertools.islice(tfds.as_numpy(dataset), count):
        image, label = (element["image"], element["label"]) if isinstance(element, dict) else element
        image, label = np.asarray(image), np.asarray(label)
        batched = image.ndim == 4 or (image.ndim == 3 and image.shape[-1] != 1)
        if not batched:
            image, label = image[None], label[None]
        if label.ndim == 2:  # one-hot rows
            label = label.argmax(axis=-1)
        images.extend(image.reshape(len(image), configs.IMAGE_SIZE, configs.IMAGE_SIZE))
        labels.extend(int(value) for value in label)
        if len(labels) >= count:
            break
    return np.asarray(images[:count]), np.asarray(labels[:count], dtype=np.int64)


def _as_uint8(images: np.ndarray) -> np.ndarray:
    if images.dtype == np.uint8:
        return images
    low, high = float(images.min()), float(images.max())
    scaled = (images.astype(np.float64) - low) / ((high - low) or 1.0)
    return np.rint(scaled * 255.0).astype(np.uint8)


def _class_names(info: tfds.core.DatasetInfo | None) -> list[str]:
    if info is None or "label" not in info.features:
        return []
    return list(info.features["label"].names)
