"""What docs/distribution.md says about tf.distribute and load(), on two logical CPU devices."""

from __future__ import annotations

from pathlib import Path

import keras
import pytest
import tensorflow as tf

import emnist_idx
from tests.bundle_factory import DUMMY_GZIP


def _two_cpu_strategy() -> tf.distribute.MirroredStrategy:
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs two logical CPU devices (tests/conftest.py makes them)")
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.mark.slow
def test_per_replica_datasets_of_unequal_batches_make_model_fit_fail_with_addn(
        tmp_path: Path) -> None:
    """Issue #22: distribute_datasets_from_function(load(..., input_context=ctx)) handed to
    model.fit on digits' 40 examples with batch 64: replicas get 32 and 8, Keras's fit fails."""
    strategy = _two_cpu_strategy()
    with strategy.scope():
        model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                  keras.layers.Dense(10, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy")
    distributed = strategy.distribute_datasets_from_function(
        lambda ctx: emnist_idx.load("digits", batch_size=64, manual_dir=str(DUMMY_GZIP),
                                    data_dir=str(tmp_path), input_context=ctx))
    shares = [[int(tf.shape(images)[0]) for images in strategy.experimental_local_results(x)]
              for x, _ in distributed]
    assert shares == [[32, 8]]
    with pytest.raises(tf.errors.InvalidArgumentError, match="AddN"):
        model.fit(distributed, epochs=1, verbose=0)
