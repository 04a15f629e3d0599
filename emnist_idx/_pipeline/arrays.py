"""``load_data()``: an EMNIST config as numpy arrays, exactly in ``keras.datasets``' convention."""

from __future__ import annotations

import numpy as np

from emnist_idx import configs
from emnist_idx._pipeline.loading import load_numpy

Arrays = tuple[np.ndarray, np.ndarray]


def load_data(
    config: str = configs.DEFAULT_CONFIG,
    *,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    download: bool = True,
) -> tuple[Arrays, Arrays]:
    """Loads an EMNIST config like ``keras.datasets.mnist.load_data()`` loads MNIST.

    The dataset is prepared first when it is not yet in ``data_dir`` (see ``load()``).

    Args:
      config: "byclass", "bymerge", "balanced" (default), "letters", "digits" or "mnist".
      data_dir: TFDS data directory, as for ``load()``.
      manual_dir: where NIST's files are, as for ``load()``.
      download: prepare the dataset when it is not prepared yet, as for ``load()``.

    Returns:
      ``((x_train, y_train), (x_test, y_test))`` in file order. ``x``: uint8 (N, 28, 28), upright,
      0 (background) to 255 (ink). ``y``: uint8 (N,) class ids in ``[0, len(class_names(config)))``
      (letters too: NIST's labels 1..26 become 0..25).

    Example:

    ```python
    (x_train, y_train), (x_test, y_test) = emnist_idx.load_data("digits")
    ```

    For a slice of one split ("train[:10%]") use ``load_numpy``, which keeps TFDS's (N, 28, 28, 1)
    images and int64 labels.
    """
    configs.check_config(config)
    train, test = (_keras_arrays(*load_numpy(config, split, data_dir=data_dir,
                                             manual_dir=manual_dir, download=download))
                   for split in configs.SPLITS)
    return train, test


def _keras_arrays(images: np.ndarray, labels: np.ndarray) -> Arrays:
    """(N, 28, 28, 1) images and int64 labels as Keras has them: (N, 28, 28) and uint8."""
    return np.ascontiguousarray(images[..., 0]), labels.astype(np.uint8)
