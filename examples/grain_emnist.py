"""EMNIST batches for JAX (or any numpy consumer) with Grain over ``tfds.data_source``, no tf.data.

    python examples/grain_emnist.py --manual_dir dummy_data --config digits --workers 2

Random access comes from ``tfds.data_source``, opened in each worker by ``lazy_source.LazySource``
(the fork caveat is explained there).
"""

from __future__ import annotations

from collections.abc import Iterator

import grain
import numpy as np
from absl import flags

from lazy_source import LazySource, parse_and_prepare


def to_model_input(example: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return example["image"].astype(np.float32) / 255.0, example["label"]


def grain_batches(config: str, split: str = "train", *, data_dir: str | None = None,
                  batch_size: int = 128, seed: int = 0, workers: int = 0
                  ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of shuffled (images float32 (B, 28, 28, 1), labels int64 (B,)) batches."""
    dataset = (grain.MapDataset.source(LazySource(config, split, data_dir))
               .shuffle(seed=seed)
               .map(to_model_input)
               .batch(batch_size)
               .to_iter_dataset())
    if workers:
        if not flags.FLAGS.is_parsed():  # Grain's workers read absl flags; outside absl.app.run,
            flags.FLAGS.mark_as_parsed()  # their defaults apply
        dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    return iter(dataset)


def main() -> None:
    args = parse_and_prepare(__doc__)
    count = 0
    for images, labels in grain_batches(args.config, args.split, data_dir=args.data_dir,
                                        batch_size=args.batch_size, workers=args.workers):
        count += len(labels)
    print(f"Read {count:,} {args.config} {args.split} examples with Grain, {args.workers} workers; "
          f"last batch: images {images.dtype} {images.shape}, labels {labels.dtype} {labels.shape}")


if __name__ == "__main__":
    main()
