"""Python loops over load()'s batches: FlatIterator yields exactly what TensorFlow's iterator does
(and what the files hold), stays TensorFlow's iterator for tf.function, and checkpoints (the
contract in full: tests/test_checkpoint.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.data.ops import iterator_ops
from tensorflow.python.eager import context

from emnist_idx._pipeline import iteration
from emnist_idx._pipeline.loading import load, load_numpy


def _arrays(batches) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(x.numpy(), y.numpy()) for x, y in batches]
    return np.concatenate([x for x, _ in pairs]), np.concatenate([y for _, y in pairs])


@pytest.mark.parametrize("cache", [True, False])
def test_a_python_loop_yields_the_files_examples_through_flat_iterator(data_dir: str,
                                                                        cache: bool) -> None:
    dataset = load("balanced", "test", batch_size=50, shuffle=False, cache=cache,
                   data_dir=data_dir, download=False)
    iterator = iter(dataset)
    assert type(iterator) is iteration.FlatIterator and isinstance(iterator, tf.data.Iterator)
    first = next(iterator)
    assert type(first) is tuple and len(first) == 2
    assert first[0].dtype == tf.float32 and first[0].shape == (50, 28, 28, 1)
    assert first[1].dtype == tf.int64 and first[1].shape == (50,)
    rest = list(iterator)
    assert len(rest) + 1 == int(dataset.cardinality())  # then StopIteration, as TensorFlow's
    images, labels = _arrays([first, *rest])
    expected_images, expected_labels = load_numpy("balanced", "test", data_dir=data_dir,
                                                  download=False)
    np.testing.assert_array_equal(labels, expected_labels)
    np.testing.assert_allclose(images, expected_images / np.float32(255), rtol=1e-6)


def test_a_loop_under_asynchronous_eager_execution_yields_the_same_and_stops(data_dir: str
                                                                           ) -> None:
    """With this thread's executor asynchronous, FlatIterator switches to a synchronous one for
    each batch, as TensorFlow's iterator does: the same batches, then StopIteration (the end of
    the data is an error status, which an asynchronous executor would report late)."""
    dataset = load("balanced", "test", batch_size=50, shuffle=False, data_dir=data_dir,
                   download=False)
    expected = _arrays(iter(dataset))
    with context.execution_mode(context.ASYNC):
        assert context.context().is_async()
        iterator = iter(dataset)
        assert type(iterator) is iteration.FlatIterator
        batches = list(iterator)
        assert context.context().is_async()  # the loop left the thread's mode as it was
    assert len(batches) == int(dataset.cardinality())
    images, labels = _arrays(batches)
    np.testing.assert_array_equal(labels, expected[1])
    np.testing.assert_array_equal(images, expected[0])


def test_a_seeded_shuffled_epoch_is_the_same_as_through_tensorflows_iterator(data_dir: str
                                                                            ) -> None:
    def first_epoch(make_iterator) -> tuple[np.ndarray, np.ndarray]:
        dataset = load("balanced", batch_size=64, seed=7, data_dir=data_dir, download=False)
        return _arrays(make_iterator(dataset))

    flat = first_epoch(iter)
    standard = first_epoch(iterator_ops.OwnedIterator)
    np.testing.assert_array_equal(flat[1], standard[1])
    np.testing.assert_array_equal(flat[0], standard[0])
    _, file_labels = load_numpy("balanced", data_dir=data_dir, download=False)
    assert not np.array_equal(flat[1], file_labels)  # shuffled ...
    np.testing.assert_array_equal(np.sort(flat[1]), np.sort(file_labels))  # ... the same examples


@pytest.mark.parametrize("cache", [True, False])
def test_a_flat_iterator_checkpoints_and_restores_in_place(data_dir: str, tmp_path: Path,
                                                           cache: bool) -> None:
    """Restored into the iterator that saved it (TensorFlow's iterator cannot be saved at all on
    the cached path: "DatasetToSingleElement is stateful")."""
    dataset = load("balanced", "test", batch_size=40, shuffle=False, cache=cache,
                   data_dir=data_dir, download=False)
    iterator = iter(dataset)
    assert type(iterator) is iteration.FlatIterator
    next(iterator), next(iterator)
    checkpoint = tf.train.Checkpoint(iterator=iterator)
    saved = checkpoint.write(str(tmp_path / "iterator"))
    expected = next(iterator)
    next(iterator)
    checkpoint.read(saved).assert_consumed()
    restored = next(iterator)
    np.testing.assert_array_equal(restored[1].numpy(), expected[1].numpy())
    np.testing.assert_array_equal(restored[0].numpy(), expected[0].numpy())
    assert not np.array_equal(restored[1].numpy(), next(iterator)[1].numpy())


def test_inside_tf_function_iteration_is_tensorflows_own(data_dir: str) -> None:
    dataset = load("balanced", "test", batch_size=50, shuffle=False, data_dir=data_dir,
                   download=False)
    _, labels = load_numpy("balanced", "test", data_dir=data_dir, download=False)

    @tf.function
    def label_sum(batches: tf.data.Dataset) -> tf.Tensor:
        total = tf.constant(0, tf.int64)
        for _, batch_labels in batches:
            total += tf.reduce_sum(batch_labels)
        return total

    assert int(label_sum(dataset)) == int(labels.sum())

    iterator = iter(dataset)
    next(iterator)  # eagerly, then in a function that takes the iterator

    @tf.function
    def second_batch_labels(batches_iterator) -> tf.Tensor:
        return next(batches_iterator)[1]

    np.testing.assert_array_equal(second_batch_labels(iterator).numpy(), labels[50:100])
    np.testing.assert_array_equal(next(iterator)[1].numpy(), labels[100:150])


def test_chained_datasets_iterate_with_tensorflows_iterator(data_dir: str) -> None:
    dataset = load("balanced", "test", batch_size=50, shuffle=False, data_dir=data_dir,
                   download=False)
    chained = dataset.map(lambda images, labels: (images, labels + 1))
    iterator = iter(chained)
    assert type(iterator) is iterator_ops.OwnedIterator
    _, labels = load_numpy("balanced", "test", data_dir=data_dir, download=False)
    np.testing.assert_array_equal(_arrays(iterator)[1], labels + 1)


def test_only_flat_tuples_of_dense_tensors_take_the_flat_iterator() -> None:
    pairs = tf.data.Dataset.range(6).map(lambda i: (i, 2 * i)).batch(4)
    assert type(iter(iteration.FlatBatches(pairs))) is iteration.FlatIterator
    assert [y.numpy().tolist() for _, y in iteration.FlatBatches(pairs)] == [[0, 2, 4, 6], [8, 10]]
    for nested in (pairs.map(lambda a, b: {"a": a, "b": b}), pairs.map(lambda a, b: ((a, b), a)),
                   pairs.map(lambda a, b: (tf.sparse.from_dense(a[None]), b))):
        assert not iteration.is_flat(nested.element_spec)
        assert type(iter(iteration.FlatBatches(nested))) is iterator_ops.OwnedIterator
    assert iteration.is_flat(pairs.element_spec)


def test_an_iterator_without_the_private_attributes_falls_back_to_tensorflows(
        monkeypatch: pytest.MonkeyPatch, data_dir: str) -> None:
    dataset = load("balanced", "test", batch_size=50, shuffle=False, data_dir=data_dir,
                   download=False)
    monkeypatch.setattr(iteration, "_PRIVATE_ATTRIBUTES",
                        (*iteration._PRIVATE_ATTRIBUTES, "_renamed_in_a_later_release"))
    iterator = iter(dataset)
    assert type(iterator) is iterator_ops.OwnedIterator
    _, labels = load_numpy("balanced", "test", data_dir=data_dir, download=False)
    np.testing.assert_array_equal(_arrays(iterator)[1], labels)
