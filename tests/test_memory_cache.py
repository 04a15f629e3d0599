"""The in-memory cache: its epochs cut from blocks, and the pipeline ceiling benchmarks/run.py times."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from emnist_idx._pipeline import memory_cache, reading
from emnist_idx._pipeline.loading import load


@pytest.mark.parametrize(("batch_size", "one_hot"), [(100, False), (47, True)])
def test_ceiling_batches_match_an_epoch_of_load(prepared_data_dir: Path, batch_size: int,
                                                one_hot: bool) -> None:
    epoch = load("balanced", batch_size=batch_size, one_hot=one_hot, cache=True,
                 data_dir=str(prepared_data_dir))
    ceiling = memory_cache.ceiling_batches(1128, batch_size, one_hot=47 if one_hot else None)
    assert ceiling.element_spec[0].dtype == epoch.element_spec[0].dtype == tf.float32
    assert ceiling.element_spec[1].dtype == epoch.element_spec[1].dtype
    assert int(ceiling.cardinality()) == int(epoch.cardinality())
    sizes = [(tuple(x.shape), tuple(y.shape)) for x, y in ceiling.as_numpy_iterator()]
    expected = [(tuple(x.shape), tuple(y.shape)) for x, y in epoch.as_numpy_iterator()]
    assert sizes == expected  # the same batches, the smaller last one included
    assert sum(shape[0][0] for shape in sizes) == 1128
    images, _ = next(ceiling.as_numpy_iterator())
    assert not np.any(images)  # precomputed: nothing is read or normalized


@pytest.mark.parametrize("batch_size", [1, 47, 100, 128, 564, 1024, 1127, 1128, 5000])
@pytest.mark.parametrize("drop_remainder", [False, True])
def test_blocks_cut_into_exact_batches_in_order(prepared_data_dir: Path, batch_size: int,
                                                drop_remainder: bool) -> None:
    """Batches are gathered a block of several at a time and cut: the cut must give exactly the
    batches a one-batch-at-a-time epoch gives, the smaller last one (or none) included."""
    builder = tfds.builder("emnist_idx/balanced", data_dir=str(prepared_data_dir))
    source = reading.split_source(builder, "train")
    images, labels = reading.read_split(source)
    total = len(labels)
    dataset = memory_cache.cached_batches(source, batch_size, shuffle=False, seed=None,
                                          drop_remainder=drop_remainder)
    if drop_remainder and total >= batch_size:
        assert dataset.element_spec[0].shape.as_list() == [batch_size, 28, 28, 1]
    served = total // batch_size * batch_size if drop_remainder else total
    expected_sizes = [min(batch_size, served - start) for start in range(0, served, batch_size)]
    for _ in range(2):  # the second epoch comes from the filled cache
        batches = list(dataset.as_numpy_iterator())
        assert [len(y) for _, y in batches] == expected_sizes
        if batches:
            assert np.array_equal(np.concatenate([x for x, _ in batches]), images[:served])
            assert np.array_equal(np.concatenate([y for _, y in batches]), labels[:served])
    assert memory_cache.blocks_of(batch_size) * batch_size <= max(batch_size,
                                                                  memory_cache.BLOCK_EXAMPLES)
