"""The in-memory cache: its epochs cut from blocks, and the pipeline ceiling benchmarks/run.py times."""

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

from emnist_idx._pipeline import memory_cache, reading
from emnist_idx._pipeline.epochs import Epochs
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
    dataset = memory_cache.cached_batches(source, batch_size, shuffle=False, epochs=Epochs(None),
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


@pytest.mark.slow
def test_load_starts_reading_the_split_before_iteration(prepared_data_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache's split is read in a background thread from load() on, and read only once."""
    calls: list[str] = []
    read_split = reading.read_split

    def recorded(source: reading.SplitSource, *args) -> tuple[np.ndarray, np.ndarray]:
        calls.append(threading.current_thread().name)
        return read_split(source, *args)

    monkeypatch.setattr(reading, "read_split", recorded)
    dataset = load("balanced", batch_size=128, cache=True, shuffle=False, normalize="none",
                   data_dir=str(prepared_data_dir), device=None)
    deadline = time.monotonic() + 60
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)  # not iterated: only the background read can make the call
    assert len(calls) == 1 and calls[0].startswith("emnist_idx-read-split")
    images, labels = (np.concatenate(parts) for parts in zip(*dataset.as_numpy_iterator()))
    expected_images, expected_labels = read_split(reading.split_source(
        tfds.builder("emnist_idx/balanced", data_dir=str(prepared_data_dir)), "train"))
    assert np.array_equal(images, expected_images) and np.array_equal(labels, expected_labels)
    list(dataset.as_numpy_iterator())  # a second epoch, from the cache
    assert len(calls) == 1


def test_the_prefetched_split_is_handed_over_once(prepared_data_dir: Path, tmp_path: Path) -> None:
    """A second take() reads the files again: here they are gone, so it raises naming the shard."""
    data_dir = tmp_path / "data"
    shutil.copytree(prepared_data_dir / "emnist_idx" / "digits",
                    data_dir / "emnist_idx" / "digits")
    builder = tfds.builder("emnist_idx/digits", data_dir=str(data_dir))
    source = reading.split_source(builder, "test")
    prefetch = memory_cache.SplitPrefetch(source)
    images, labels = prefetch.take()
    assert len(images) == len(labels) == source.num_examples
    shard = Path(os.fspath(source.instructions[0].filename))
    shard.unlink()
    with pytest.raises(PreparedDataError, match=shard.name):
        prefetch.take()
