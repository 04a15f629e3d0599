"""The in-memory cache: its background fill, its epochs cut from blocks, and the pipeline ceiling
benchmarks/run.py times."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from emnist_idx._pipeline import memory_cache, reading, split_fill
from emnist_idx._pipeline.loading import load
from emnist_idx.errors import PreparedDataError


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


def _file_order(data_dir: Path, config: str = "balanced", split: str = "train"
                ) -> tuple[np.ndarray, np.ndarray]:
    return reading.read_split(reading.split_source(
        tfds.builder(f"emnist_idx/{config}", data_dir=str(data_dir)), split))


def _epoch(dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    images, labels = zip(*dataset.as_numpy_iterator())
    return np.concatenate(images), np.concatenate(labels)


def test_load_starts_reading_the_split_before_iteration(prepared_data_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache's split is read in background threads from load() on, and read only once."""
    monkeypatch.setattr(split_fill, "PIECE_RECORDS", 100)  # 12 or more pieces of 1,128 records
    for thread in threading.enumerate():  # earlier tests' background reads: let them end
        if thread.name.startswith("emnist_idx-read-split"):
            thread.join()
    expected_images, expected_labels = _file_order(prepared_data_dir)
    calls: list[str] = []
    read_piece_into = reading.read_piece_into

    def recorded(*args, **kwargs) -> None:
        calls.append(threading.current_thread().name)
        read_piece_into(*args, **kwargs)

    monkeypatch.setattr(reading, "read_piece_into", recorded)
    source = reading.split_source(tfds.builder("emnist_idx/balanced",
                                               data_dir=str(prepared_data_dir)), "train")
    count = len(reading.pieces(source.instructions, 100))
    dataset = load("balanced", batch_size=128, cache=True, shuffle=False, normalize="none",
                   data_dir=str(prepared_data_dir), device=None)
    deadline = time.monotonic() + 60
    while len(calls) < count and time.monotonic() < deadline:
        time.sleep(0.01)  # not iterated: only the background threads can read
    assert len(calls) == count >= 12
    assert all(name.startswith("emnist_idx-read-split") for name in calls)
    for _ in range(2):  # the second epoch reads nothing
        images, labels = _epoch(dataset)
        assert np.array_equal(images, expected_images) and np.array_equal(labels, expected_labels)
    assert len(calls) == count


@pytest.mark.parametrize("shuffle", [False, True])
def test_the_first_epoch_gathers_only_pieces_already_read(prepared_data_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          shuffle: bool) -> None:
    """Epoch 1 runs while the split is read; a block whose pieces are late waits for them (or
    reads them itself): no batch ever holds memory not yet read."""
    monkeypatch.setattr(split_fill, "PIECE_RECORDS", 100)
    read_piece_into = reading.read_piece_into

    def slow(piece: tuple, *args, **kwargs) -> None:
        if threading.current_thread().name.startswith("emnist_idx-read-split"):
            time.sleep(0.3)  # the background threads fall far behind the epoch
        read_piece_into(piece, *args, **kwargs)

    monkeypatch.setattr(reading, "read_piece_into", slow)
    expected_images, expected_labels = _file_order(prepared_data_dir)
    dataset = load("balanced", batch_size=50, cache=True, shuffle=shuffle, seed=3,
                   normalize="none", data_dir=str(prepared_data_dir), device=None)
    images, labels = _epoch(dataset)
    if not shuffle:
        assert np.array_equal(images, expected_images) and np.array_equal(labels, expected_labels)
    else:  # every example exactly once, each image still with its own label
        expected = sorted(zip(map(bytes, expected_images), expected_labels.tolist()))
        assert sorted(zip(map(bytes, images), labels.tolist())) == expected


def test_epoch_orders_first_windowed_then_whole(prepared_data_dir: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Shuffled, epoch 1 permutes windows of FIRST_EPOCH_WINDOW pieces in the read order (so it
    can start before the read ends); later epochs permute the whole split; a seed fixes both."""
    monkeypatch.setattr(split_fill, "PIECE_RECORDS", 100)
    source = reading.split_source(tfds.builder("emnist_idx/balanced",
                                               data_dir=str(prepared_data_dir)), "train")

    def orders(seed: int) -> tuple[memory_cache.EpochPlans, list[np.ndarray]]:
        plans = memory_cache.EpochPlans(source, 64, shuffle=True, seed=seed,
                                        drop_remainder=False)
        plans.fill.ensure(plans.fill.num_pieces)
        return plans, [plans.next_epoch()[0] for _ in range(3)]

    plans, epochs = orders(5)
    fill, per_window = plans.fill, memory_cache.FIRST_EPOCH_WINDOW
    count = fill.num_pieces
    assert count >= 12 and sorted(fill.read_order.tolist()) == list(range(count))
    assert not np.array_equal(fill.read_order, np.arange(count))
    piece_of = np.searchsorted(fill.starts, np.arange(1128), side="right") - 1
    window_of = np.argsort(fill.read_order)[piece_of] // per_window  # per example, in file order
    for order in epochs:
        assert sorted(order.tolist()) == list(range(1128))
    # epoch 1: first every example of the first 4 pieces read, then of the next 4, and so on
    sizes = np.diff(fill.starts)[fill.read_order]
    window_sizes = np.add.reduceat(sizes, np.arange(0, count, per_window))
    expected = np.repeat(np.arange(len(window_sizes)), window_sizes)
    assert np.array_equal(window_of[epochs[0]], expected)
    for order in epochs[1:]:  # whole permutations: the first window's worth draws on all windows
        assert set(window_of[order[:window_sizes[0]]]) == set(range(len(window_sizes)))
    assert not np.array_equal(epochs[1], epochs[2])
    again = orders(5)[1]
    assert all(np.array_equal(a, b) for a, b in zip(epochs, again))
    assert not np.array_equal(orders(6)[1][0], epochs[0])


def test_a_piece_that_fails_in_the_background_is_read_again_by_its_consumer(
        prepared_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A background read that fails raises nothing there; the block that needs the piece reads
    it again: from a damaged shard it raises PreparedDataError naming it, from a mended one it
    gets the records."""
    data_dir = tmp_path / "data"
    shutil.copytree(prepared_data_dir / "emnist_idx" / "digits",
                    data_dir / "emnist_idx" / "digits")
    source = reading.split_source(tfds.builder("emnist_idx/digits", data_dir=str(data_dir)),
                                  "test")
    shard = Path(os.fspath(source.instructions[0].filename))
    intact = shard.read_bytes()
    shard.write_bytes(intact[:-1] + bytes([intact[-1] ^ 1]))  # the last record's stored CRC
    fill = split_fill.SplitFill(source)
    deadline = time.monotonic() + 60
    while not fill._finished[0].is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fill.done() == 0  # the background read failed, quietly
    with pytest.raises(PreparedDataError, match=f"{shard.name}.*fails its CRC32C check"):
        fill.ensure(1)
    shard.write_bytes(intact)
    assert fill.ensure(1) == 1 and fill.done() == 1
    images, labels = reading.read_split(source)
    assert np.array_equal(fill.images, images) and np.array_equal(fill.labels, labels)
