"""EMNIST for PyTorch: ``emnist_idx.torch.EMNIST`` in a ``DataLoader``; no tf.data.

    python examples/torch_emnist.py --manual_dir dummy_data --config digits --workers 2

``EMNIST`` takes torchvision's arguments and gives upright images. Its reads need no TensorFlow and
open the shards in each worker, so workers may be forked (the default on Linux) even after
TensorFlow prepared the data in this process. Batches are channels-first float32 images in
[0, 1], as torch's convolutions expect, and int64 labels.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from emnist_idx.torch import EMNIST


def to_tensor(image) -> torch.Tensor:
    """A PIL image -> float32 (1, 28, 28) in [0, 1] (what torchvision's ToTensor gives)."""
    return torch.from_numpy(np.array(image)).unsqueeze(0).float().div_(255.0)


def torch_loader(config: str, split: str = "train", *, data_dir: str | None = None,
                 batch_size: int = 128, seed: int = 0, workers: int = 0
                 ) -> torch.utils.data.DataLoader:
    """A DataLoader giving one shuffled epoch per iteration."""
    dataset = EMNIST(root=data_dir, split=config, train=split == "train", transform=to_tensor)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
        generator=torch.Generator().manual_seed(seed), persistent_workers=workers > 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="balanced")
    parser.add_argument("--split", default="train", choices=["train", "test"])
    parser.add_argument("--data_dir", help="TFDS data dir (default: ~/tensorflow_datasets)")
    parser.add_argument("--manual_dir", help="NIST's files, to prepare the config if needed")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    # torchvision's download=True: prepares the config once, before any worker starts.
    EMNIST(root=args.data_dir, split=args.config, train=args.split == "train", download=True,
           manual_dir=args.manual_dir)
    count = 0
    for images, labels in torch_loader(args.config, args.split, data_dir=args.data_dir,
                                       batch_size=args.batch_size, workers=args.workers):
        count += len(labels)
    print(f"Read {count:,} {args.config} {args.split} examples with a torch DataLoader, "
          f"{args.workers} workers; last batch: images {images.dtype} {tuple(images.shape)}, "
          f"labels {labels.dtype} {tuple(labels.shape)}")


if __name__ == "__main__":
    main()
