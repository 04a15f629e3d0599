"""``EMNIST``: a drop-in for ``torchvision.datasets.EMNIST``, upright, reading prepared TFDS shards.

Only this module imports torch (``pip install torch``; the package does not depend on it). Items
come from ``emnist_idx.Source``: no TensorFlow in the reading process, shards opened on first use
in each process, so ``DataLoader`` workers may be forked even after TensorFlow has run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image

from emnist_idx import configs
from emnist_idx.source import Source


class EMNIST(torch.utils.data.Dataset):
    """torchvision's ``EMNIST``, with its argument names, meanings and defaults.

    Differences from torchvision's: images are upright (torchvision's are transposed, and users
    transpose them back: stop doing that here); letters are labelled 0..25 with 26 classes
    ("Aa", "Bb", ...), without torchvision's empty "N/A" class 0; the data lives in a TFDS data
    directory, prepared once as TFRecord shards, and every read is checked (CRC32C).

    Args:
      root: the TFDS data directory (default: TFDS's, ``~/tensorflow_datasets``).
      split: "byclass", "bymerge", "balanced" (default), "letters", "digits" or "mnist".
      train: the train split if True, else the test split.
      transform: applied to each PIL image (mode "L", 28x28), e.g. ``torchvision.transforms``.
      target_transform: applied to each label (an ``int``).
      download: prepare the split in ``root`` when it is not there yet: from ``manual_dir``, or
        from NIST's download where there is internet. Preparing imports TensorFlow (in this
        process, before any worker starts). Without it, a missing split raises
        FileNotFoundError naming the command that prepares it.
      manual_dir: where NIST's files are (``gzip.zip``, its ``gzip/`` folder or the loose files).

    Items: ``(image, target)``: a PIL image (or what ``transform`` makes of it) and an ``int``
    class id (or what ``target_transform`` makes of it).

    Example:

    ```python
    from emnist_idx.torch import EMNIST

    dataset = EMNIST(split="digits", train=True, transform=to_tensor)
    loader = torch.utils.data.DataLoader(dataset, batch_size=128, shuffle=True, num_workers=2)
    ```
    """

    splits = configs.CONFIGS

    def __init__(self, root: str | os.PathLike | None = None, split: str = configs.DEFAULT_CONFIG,
                 train: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None, download: bool = False,
                 manual_dir: str | os.PathLike | None = None) -> None:
        self.root, self.split, self.train = root, configs.check_config(split), train
        self.transform, self.target_transform = transform, target_transform
        self.source = Source(split, "train" if train else "test", data_dir=root,
                             download=download, manual_dir=manual_dir)
        self.classes: list[str] = configs.class_names(split)

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(self.classes)}

    @property
    def data(self) -> torch.Tensor:
        """Every image, uint8 (N, 28, 28), upright: read from the shards on each access."""
        return torch.from_numpy(self.source[:][0])

    @property
    def targets(self) -> torch.Tensor:
        """Every label, int64 (N,): read from the shards on each access."""
        return torch.from_numpy(self.source[:][1])

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        pixels, target = self.source[index]
        image: Any = Image.fromarray(np.asarray(pixels))
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __repr__(self) -> str:
        lines = [f"Dataset {type(self).__name__}", f"    Number of datapoints: {len(self)}",
                 f"    Root location: {self.root}", f"    Split: {self.split} "
                 f"({'train' if self.train else 'test'})"]
        if self.transform is not None:
            lines.append(f"    Transform: {self.transform!r}")
        if self.target_transform is not None:
            lines.append(f"    Target transform: {self.target_transform!r}")
        return "\n".join(lines)
