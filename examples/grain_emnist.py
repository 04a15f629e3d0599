"""EMNIST batches for JAX (or any numpy consumer) with Grain over ``emnist_idx.Source``; no tf.data.

    python examples/grain_emnist.py --manual_dir dummy_data --config digits --workers 2

``Source`` reads the prepared TFRecord shards directly (no TensorFlow, no array_record copy) and
opens them in each of Grain's worker processes on first use.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import grain
import numpy as np
from absl import flags

import emnist_idx


def to_model_input(batch: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """A batch of (images uint8 (B, 28, 28), labels) -> float32 (B, 28, 28, 1) in [0, 1], int64."""
    images, labels = batch
    return images[..., None].astype(np.float32) / 255.0, labels.astype(np.int64)


def grain_batches(config: str, split: str = "train", *, data_dir: str | None = None,
                  batch_size: int = 128, seed: int = 0, workers: int = 0
                  ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of shuffled (images float32 (B, 28, 28, 1), labels int64 (B,)) batches."""
    dataset = (grain.MapDataset.source(emnist_idx.Source(config, split, data_dir))
               .shuffle(seed=seed)
               .batch(batch_size)
               .map(to_model_input)
               .to_iter_dataset())
    if workers:
        if not flags.FLAGS.is_parsed():  # Grain's workers read absl flags; outside absl.app.run,
            flags.FLAGS.mark_as_parsed()  # their defaults apply
        dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    return iter(dataset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="balanced")
    parser.add_argument("--split", default="train")
    parser.add_argument("--data_dir", help="TFDS data dir (default: ~/tensorflow_datasets)")
    parser.add_argument("--manual_dir", help="NIST's files, to prepare the config if needed")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    # Prepared here, once, before any worker starts (a no-op when it is prepared already).
    emnist_idx.Source(args.config, args.split, args.data_dir, download=True,
                      manual_dir=args.manual_dir)
    count = 0
    for images, labels in grain_batches(args.config, args.split, data_dir=args.data_dir,
                                        batch_size=args.batch_size, workers=args.workers):
        count += len(labels)
    print(f"Read {count:,} {args.config} {args.split} examples with Grain, {args.workers} workers; "
          f"last batch: images {images.dtype} {images.shape}, labels {labels.dtype} {labels.shape}")


if __name__ == "__main__":
    main()
