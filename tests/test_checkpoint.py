"""``tf.train.Checkpoint(iterator=iter(load(...)))``: saved mid-epoch and restored into a fresh
``load()`` with the same arguments, the iterator yields exactly the batches the saved one would
have yielded next, on every read path, in a later epoch and across epoch boundaries; the checkpoint
holds a position (a few bytes), never the split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from emnist_idx._pipeline import reading
from emnist_idx._pipeline.loading import load
from emnist_idx.errors import NotCheckpointableError

BATCH = 64  # dummy balanced's 1,128 train examples: 18 batches an epoch, the last one of 40
STEPS = 18
MAX_CHECKPOINT_BYTES = 1_000_000


@pytest.fixture(params=[True, pytest.param("auto", marks=pytest.mark.slow), False],
                ids=["cached", "auto", "streamed"])
def cache(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool | str:
    """Each read path; streamed with pieces of 100 records, so 12 pieces whose order matters.
    ("auto" caches the dummy split: the cached path again, through the memory check.)"""
    if request.param is False:
        monkeypatch.setattr(reading, "PIECE_RECORDS", 100)
        monkeypatch.setattr(reading, "CHUNK_RECORDS", 100)
    return request.param


@pytest.fixture(params=[{"seed": 7}, {"shuffle": False}], ids=["shuffled", "file-order"])
def order(request: pytest.FixtureRequest) -> dict:
    return request.param


def _labels(iterator, count: int) -> list[list[int]]:
    return [next(iterator)[1].numpy().tolist() for _ in range(count)]


def _save(iterator, tmp_path: Path) -> str:
    path = tf.train.Checkpoint(iterator=iterator).save(str(tmp_path / "ckpt" / "it"))
    size = sum(f.stat().st_size for f in (tmp_path / "ckpt").iterdir())
    assert size < MAX_CHECKPOINT_BYTES, f"a checkpoint of {size} bytes: the split was saved"
    return path


def _restored(arguments: dict, path: str) -> tuple[tf.data.Dataset, object]:
    """A fresh ``load(**arguments)`` and an iterator of it, restored from ``path`` after three
    iterators have each begun an epoch (an epoch counter and a position to overwrite)."""
    dataset = load(**arguments)
    for _ in range(3):
        iterator = iter(dataset)
        next(iterator)
    tf.train.Checkpoint(iterator=iterator).restore(path).assert_consumed()
    return dataset, iterator


def test_restores_mid_epoch_of_a_later_epoch(data_dir: str, tmp_path: Path, cache: bool | str,
                                             order: dict) -> None:
    """Saved 5 batches into the second epoch: the restored iterator finishes that epoch as the
    saved one does, and the next ``iter()`` of the restored dataset gives the third epoch."""
    arguments = dict(config="balanced", batch_size=BATCH, normalize="none", cache=cache,
                     data_dir=data_dir, **order)
    dataset = load(**arguments)
    first_epoch = [y.numpy().tolist() for _, y in dataset]
    iterator = iter(dataset)
    _labels(iterator, 5)
    path = _save(iterator, tmp_path)
    rest = _labels(iterator, STEPS - 5)
    third_epoch = [y.numpy().tolist() for _, y in dataset]

    restored_dataset, restored = _restored(arguments, path)
    assert _labels(restored, STEPS - 5) == rest
    with pytest.raises(StopIteration):
        next(restored)
    assert [y.numpy().tolist() for _, y in restored_dataset] == third_epoch
    if "seed" in order:  # each epoch has its own order
        assert rest != first_epoch[5:] and third_epoch != first_epoch
    else:
        assert rest == first_epoch[5:] and third_epoch == first_epoch


def test_restores_across_epoch_boundaries_with_repeat(data_dir: str, tmp_path: Path,
                                                      cache: bool | str, order: dict) -> None:
    """``repeat=True``: saved 1.5 epochs in, the restored iterator yields the next 1.5 epochs
    exactly as the saved one does (two epoch boundaries crossed)."""
    arguments = dict(config="balanced", batch_size=BATCH, normalize="none", cache=cache,
                     repeat=True, data_dir=data_dir, **order)
    iterator = iter(load(**arguments))
    _labels(iterator, STEPS + 9)
    path = _save(iterator, tmp_path)
    expected = _labels(iterator, STEPS + 9)
    assert _labels(_restored(arguments, path)[1], STEPS + 9) == expected


def test_seedless_cached_order_travels_in_the_checkpoint(data_dir: str, tmp_path: Path) -> None:
    """``seed=None`` draws a random base seed per ``load()``; the checkpoint carries it, so the
    restored cached iterator still replays the saved epoch's order."""
    arguments = dict(config="balanced", batch_size=BATCH, cache=True, shuffle=True,
                     data_dir=data_dir)
    iterator = iter(load(**arguments))
    _labels(iterator, 3)
    path = _save(iterator, tmp_path)
    assert _labels(_restored(arguments, path)[1], 8) == _labels(iterator, 8)


def test_single_examples_restore(data_dir: str, tmp_path: Path) -> None:
    """``batch_size=None``: the position is counted in examples."""
    arguments = dict(config="digits", batch_size=None, seed=1, data_dir=data_dir)
    iterator = iter(load(**arguments))
    for _ in range(13):
        next(iterator)
    path = _save(iterator, tmp_path)
    expected = [int(y) for _, y in iterator]
    _, restored = _restored(arguments, path)
    assert [int(y) for _, y in restored] == expected and expected


@pytest.mark.slow
def test_training_loop_resumes_model_and_data_together(data_dir: str, tmp_path: Path) -> None:
    """A custom loop checkpointing a Keras model and the iterator together resumes with the
    weights and the batches of the uninterrupted run."""
    import keras  # noqa: PLC0415 - only this test trains

    def model() -> keras.Model:
        keras.utils.set_random_seed(0)
        net = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                keras.layers.Dense(47, activation="softmax")])
        net.compile("sgd", "sparse_categorical_crossentropy")
        return net

    arguments = dict(config="balanced", batch_size=BATCH, seed=3, repeat=True, data_dir=data_dir)
    net, iterator = model(), iter(load(**arguments))
    for _ in range(STEPS + 2):
        net.train_on_batch(*next(iterator))
    path = tf.train.Checkpoint(model=net, iterator=iterator).save(str(tmp_path / "run"))
    for _ in range(4):
        net.train_on_batch(*next(iterator))

    resumed, restored = model(), iter(load(**arguments))
    tf.train.Checkpoint(model=resumed, iterator=restored).restore(path)
    for _ in range(4):
        resumed.train_on_batch(*next(restored))
    for trained, retrained in zip(net.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(retrained, trained, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_service_iterators_refuse_to_save(data_dir: str, tmp_path: Path) -> None:
    service = tf.data.experimental.service
    dispatcher = service.DispatchServer()
    worker = service.WorkerServer(service.WorkerConfig(
        dispatcher_address=dispatcher.target.split("://")[1]))
    try:
        iterator = iter(load("digits", seed=0, data_dir=data_dir, service=dispatcher.target))
        next(iterator)
        with pytest.raises(NotCheckpointableError, match="service.*cannot be checkpointed"):
            tf.train.Checkpoint(iterator=iterator).save(str(tmp_path / "ckpt"))
    finally:
        worker._stop()  # noqa: SLF001 - in-process servers have no public stop
        dispatcher._stop()  # noqa: SLF001


@pytest.mark.usefixtures("two_cpus")
def test_batches_copied_to_a_device_refuse_to_save(data_dir: str, tmp_path: Path) -> None:
    iterator = iter(load("digits", seed=0, data_dir=data_dir, device="/cpu:1"))
    next(iterator)
    with pytest.raises(NotCheckpointableError, match="copied to a device.*device=None"):
        tf.train.Checkpoint(iterator=iterator).save(str(tmp_path / "ckpt"))


def test_chained_datasets_keep_tensorflows_checkpoint_which_refuses(data_dir: str,
                                                                   tmp_path: Path) -> None:
    """What the docstring says: ``ds.map(...)``'s iterator is TensorFlow's own, and its checkpoint
    fails on the epoch counter's state instead of saving the split."""
    iterator = iter(load("digits", seed=0, data_dir=data_dir).map(lambda x, y: (x, y)))
    next(iterator)
    with pytest.raises(tf.errors.FailedPreconditionError, match="stateful"):
        tf.train.Checkpoint(iterator=iterator).save(str(tmp_path / "ckpt"))
