"""The in-memory cache's helpers: the pipeline ceiling that benchmarks/run.py times."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from emnist_idx._pipeline import memory_cache
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
