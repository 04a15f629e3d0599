"""Grain over emnist_idx.Source (0 and 2 workers) feeding a JAX training step; the Grain example
with TFDS's default data dir."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest

import emnist_idx
from tests.example_runs import run_example

grain = pytest.importorskip("grain")


def grain_batches(data_dir: Path, workers: int, seed: int = 1):
    """The documented recipe: source, shuffle, batch, and with workers, mp_prefetch."""
    dataset = (grain.MapDataset.source(emnist_idx.Source("digits", "train", data_dir))
               .shuffle(seed=seed)
               .batch(16)
               .to_iter_dataset())
    if workers:
        from absl import flags

        if not flags.FLAGS.is_parsed():  # Grain's workers read absl flags
            flags.FLAGS.mark_as_parsed()
        dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    return list(dataset)


def assert_every_example_once(batches: list, data_dir: Path) -> None:
    x, y = emnist_idx.load_numpy("digits", "train", data_dir=data_dir)
    assert [len(labels) for _, labels in batches] == [16, 16, 8]
    images = np.concatenate([images for images, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    assert images.dtype == np.uint8 and images.shape == (40, 28, 28)
    assert not np.array_equal(labels, y)  # shuffled
    seen = collections.Counter(zip((image.tobytes() for image in images), labels.tolist()))
    assert seen == collections.Counter(zip((image.tobytes() for image in x[..., 0]), y.tolist()))


def test_grain_in_process_reads_every_example_once(prepared_data_dir: Path) -> None:
    batches = grain_batches(prepared_data_dir, workers=0)
    assert_every_example_once(batches, prepared_data_dir)
    assert [labels.tolist() for _, labels in grain_batches(prepared_data_dir, workers=0)] == [
        labels.tolist() for _, labels in batches]  # the seed fixes the order


@pytest.mark.slow  # importing JAX and compiling the step: ~5 s
def test_grain_batches_feed_a_jax_training_step(prepared_data_dir: Path) -> None:
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    batches = grain_batches(prepared_data_dir, workers=0)

    def loss(params: dict, images, labels):
        logits = images.reshape(len(images), -1) @ params["w"] + params["b"]
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(len(labels)), labels])

    @jax.jit
    def train_step(params: dict, images, labels):
        value, grads = jax.value_and_grad(loss)(params, images, labels)
        return jax.tree.map(lambda p, g: p - 0.1 * g, params, grads), value

    params = {"w": jnp.zeros((784, 10)), "b": jnp.zeros(10)}
    losses = []
    for _ in range(5):  # epochs over the same batches: full-batch-like descent on a convex loss
        for images, labels in batches:
            params, value = train_step(params, jnp.asarray(images, jnp.float32) / 255,
                                       jnp.asarray(labels))
            losses.append(float(value))
    assert losses[0] == pytest.approx(np.log(10), rel=1e-5)  # zero weights: uniform guesses
    assert np.mean(losses[-3:]) < 0.5 * losses[0]


@pytest.mark.slow
def test_grain_mp_prefetch_two_workers(prepared_data_dir: Path) -> None:
    batches = grain_batches(prepared_data_dir, workers=2)
    assert_every_example_once(batches, prepared_data_dir)
    assert [labels.tolist() for _, labels in batches] == [
        labels.tolist() for _, labels in grain_batches(prepared_data_dir, workers=0)]


@pytest.mark.slow
def test_grain_example_prepares_into_tfds_default_data_dir(tmp_path: Path) -> None:
    done = run_example("grain_emnist.py", tmp_path, "--config", "digits", "--workers", "0",
                       "--batch_size", "16")
    assert "Read 40 digits train examples with Grain, 0 workers" in done.stdout
    assert "images float32 (8, 28, 28, 1), labels int64 (8,)" in done.stdout
    assert (tmp_path / "tensorflow_datasets" / "emnist_idx" / "digits").is_dir()
