"""A config prepared in several shards per split (dummy_data's splits fit in one otherwise)."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import shard_utils


def prepare_in_shards(data_dir: Path, manual_dir: Path, config: str, shards: int) -> Path:
    """Prepares ``config`` into ``data_dir`` with ``shards`` shards per split; returns data_dir."""
    with mock.patch.object(shard_utils.ShardConfig, "calculate_number_shards",
                           staticmethod(lambda **_: shards)):
        builder = tfds.builder(f"emnist_idx/{config}", data_dir=str(data_dir))
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    assert len(builder.info.splits["train"].shard_lengths) == shards
    return data_dir
