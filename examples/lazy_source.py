"""A fork-safe ``tfds.data_source`` for EMNIST: opened in the process that reads it.

Shared by ``grain_emnist.py`` and ``torch_emnist.py``. ``tfds.data_source("emnist_idx/<config>")``
gives random access to the prepared examples (dicts of numpy arrays: "image" uint8 (28, 28, 1),
"label" int64). With emnist_idx imported, the first call on a dataset prepared as TFRecord copies
its records into array_record shards once.

The fork caveat: a data source holds open array_record readers (and their threads), which are not
safe to copy into worker processes (a forked copy has the readers but not their threads).
``LazySource`` therefore opens it in each process on first use and never pickles it. It has the
``__len__`` and ``__getitem__`` that Grain's ``MapDataset.source`` and a PyTorch map-style
``Dataset`` need. ``parse_and_prepare`` is both examples' command line.
"""

from __future__ import annotations

import argparse
import threading
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

import emnist_idx  # noqa: F401 - registers the emnist_idx builder


class LazySource:
    """``tfds.data_source(f"emnist_idx/{config}", split)``, opened in the process that reads it."""

    def __init__(self, config: str, split: str, data_dir: str | None = None) -> None:
        self.config, self.split, self.data_dir = config, split, data_dir
        self._source: Any = None
        self._lock = threading.Lock()
        builder = tfds.builder(f"emnist_idx/{config}", data_dir=data_dir)
        self._length = builder.info.splits[split].num_examples

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        with self._lock:  # Grain reads with several threads
            if self._source is None:
                import emnist_idx  # noqa: F401 - the builder, in a spawned worker too
                self._source = tfds.data_source(f"emnist_idx/{self.config}", split=self.split,
                                                data_dir=self.data_dir, download=False)
        return self._source[index]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_source": None, "_lock": None}  # workers open their own

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.Lock())


def prepare(config: str, data_dir: str | None, manual_dir: str | None) -> None:
    """Prepares the config (if needed) and its array_record shards, in this process only."""
    builder = tfds.builder(f"emnist_idx/{config}", data_dir=data_dir)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    builder.as_data_source()  # writes the array_record shards once; dropped before any worker starts


def parse_and_prepare(doc: str) -> argparse.Namespace:
    """An example's command line (its doc's first line as description), then ``prepare``."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--config", default="balanced")
    parser.add_argument("--split", default="train")
    parser.add_argument("--data_dir")
    parser.add_argument("--manual_dir")
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    prepare(args.config, args.data_dir, args.manual_dir)
    return args
