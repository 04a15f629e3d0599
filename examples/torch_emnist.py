"""EMNIST for PyTorch: a ``torch.utils.data.DataLoader`` over ``tfds.data_source``, no tf.data.

    python examples/torch_emnist.py --manual_dir dummy_data --config digits --workers 2

Each worker opens its own data source on first use (``lazy_source.LazySource``, which explains the
fork caveat), and workers are spawned rather than forked (see ``torch_loader``). Batches are
channels-first float32 images in [0, 1], as torch's convolutions expect, and int64 labels.
"""

from __future__ import annotations

import numpy as np
import torch

from lazy_source import LazySource, parse_and_prepare


def to_model_input(examples: list[dict[str, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Collates examples: images (B, 1, 28, 28) float32 in [0, 1], labels (B,) int64."""
    images = torch.from_numpy(np.stack([example["image"] for example in examples]))
    labels = torch.from_numpy(np.stack([example["label"] for example in examples]))
    return images.permute(0, 3, 1, 2).float().div_(255.0), labels


def torch_loader(config: str, split: str = "train", *, data_dir: str | None = None,
                 batch_size: int = 128, seed: int = 0, workers: int = 0
                 ) -> torch.utils.data.DataLoader:
    """A DataLoader giving one shuffled epoch per iteration.

    Workers are spawned, not forked: a process that has run TensorFlow (TFDS prepares with it)
    holds thread pools that a forked copy inherits without their threads, and such workers die
    with a segmentation fault at their first read, even with the source opened in the worker.
    """
    return torch.utils.data.DataLoader(
        LazySource(config, split, data_dir), batch_size=batch_size, shuffle=True,
        num_workers=workers, collate_fn=to_model_input,
        generator=torch.Generator().manual_seed(seed), persistent_workers=workers > 0,
        multiprocessing_context="spawn" if workers else None)


def main() -> None:
    args = parse_and_prepare(__doc__)  # before any worker starts
    count = 0
    for images, labels in torch_loader(args.config, args.split, data_dir=args.data_dir,
                                       batch_size=args.batch_size, workers=args.workers):
        count += len(labels)
    print(f"Read {count:,} {args.config} {args.split} examples with a torch DataLoader, "
          f"{args.workers} workers; last batch: images {images.dtype} {tuple(images.shape)}, "
          f"labels {labels.dtype} {tuple(labels.shape)}")


if __name__ == "__main__":
    main()
