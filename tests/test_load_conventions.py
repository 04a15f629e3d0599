"""load() takes what tfds.load takes (split lists, ReadInstruction, batch_size=None, TFDS's slice
errors), and tfds.load(..., shuffle_files=True) works on emnist_idx."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import emnist_idx
from emnist_idx._pipeline.loading import load
from tests.multi_shard import prepare_in_shards


@pytest.fixture(scope="module")
def four_shards(tmp_path_factory: pytest.TempPathFactory, manual_dir: Path) -> Path:
    """digits with its 40 train examples in 4 shards of 10."""
    return prepare_in_shards(tmp_path_factory.mktemp("shards"), manual_dir, "digits", 4)


def labels_of(dataset: tf.data.Dataset) -> list[int]:
    return [int(label) for _, labels in dataset for label in np.atleast_1d(labels.numpy())]


def test_a_list_of_splits_gives_a_list_of_datasets(prepared_data_dir: Path) -> None:
    train, test = load("digits", ["train[:50%]", "test[5:]"], batch_size=8, shuffle=False,
                       data_dir=prepared_data_dir)
    assert labels_of(train) == emnist_idx.load_numpy("digits", "train[:50%]",
                                                     data_dir=prepared_data_dir)[1].tolist()
    assert labels_of(test) == emnist_idx.load_numpy("digits", "test[5:]",
                                                    data_dir=prepared_data_dir)[1].tolist()
    assert int(train.cardinality()) == 3 and int(test.cardinality()) == 2


def test_a_read_instruction_is_a_split(prepared_data_dir: Path) -> None:
    instruction = tfds.core.ReadInstruction("test", from_=2, to=12, unit="abs")
    dataset = load("letters", instruction, batch_size=4, data_dir=prepared_data_dir)
    # "test" only: not shuffled by default, as for the string "test[2:12]"
    assert labels_of(dataset) == emnist_idx.load_numpy("letters", "test[2:12]",
                                                       data_dir=prepared_data_dir)[1].tolist()
    train = load("letters", tfds.core.ReadInstruction("train"), batch_size=64, seed=0,
                 data_dir=prepared_data_dir)
    _, y = emnist_idx.load_numpy("letters", "train", data_dir=prepared_data_dir)
    assert sorted(labels_of(train)) == sorted(y.tolist()) and labels_of(train) != y.tolist()


def test_batch_size_none_gives_normalized_examples(prepared_data_dir: Path) -> None:
    x, y = emnist_idx.load_numpy("digits", "test", data_dir=prepared_data_dir)
    examples = load("digits", "test", batch_size=None, data_dir=prepared_data_dir)
    assert int(examples.cardinality()) == len(y)
    assert examples.element_spec[0].shape == (28, 28, 1)
    assert examples.element_spec[1].shape == ()
    pairs = [(image.numpy(), int(label)) for image, label in examples]
    np.testing.assert_allclose(np.stack([image for image, _ in pairs]), x / 255, rtol=1e-6)
    assert [label for _, label in pairs] == y.tolist()
    one_hot = next(iter(load("digits", "test", batch_size=None, one_hot=True, normalize="none",
                             data_dir=prepared_data_dir)))
    assert one_hot[0].dtype == tf.uint8 and one_hot[1].shape == (10,)
    assert int(tf.argmax(one_hot[1])) == y[0]
    with pytest.raises(ValueError, match="batch_size=None gives single examples"):
        load("digits", "test", batch_size=None, drop_remainder=True, data_dir=prepared_data_dir)


@pytest.mark.parametrize(("split", "problem"), [
    ("train[:150%]", r"percent slice boundaries should be in \[-100, 100\]"),
    ("train[100:200]", r"Requested slice \[100:200\] incompatible with 40 examples"),
    ("train[:1O]", r"Unrecognized split format: 'train\[:1O\]'"),
])
def test_bad_slices_name_the_problem(prepared_data_dir: Path, split: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as raised:
        load("digits", split, data_dir=prepared_data_dir)
    assert "is not a split" not in str(raised.value)


def test_tfds_load_shuffle_files_shuffles_shards_not_records(four_shards: Path) -> None:
    _, y = emnist_idx.load_numpy("digits", "train", data_dir=four_shards)
    shards = [y[start:start + 10].tolist() for start in range(0, 40, 10)]
    ordered = tfds.load("emnist_idx/digits", split="train", data_dir=four_shards,
                        as_supervised=True)
    assert labels_of(ordered) == y.tolist()  # example i is record i
    orders = set()
    for seed in range(4):
        dataset = tfds.load("emnist_idx/digits", split="train", data_dir=four_shards,
                            as_supervised=True, shuffle_files=True,
                            read_config=tfds.ReadConfig(shuffle_seed=seed))
        labels = labels_of(dataset)
        blocks = [labels[start:start + 10] for start in range(0, 40, 10)]
        assert sorted(blocks) == sorted(shards)  # whole shards, each in file order
        orders.add(tuple(shards.index(block) for block in blocks))
    assert len(orders) > 1  # the shard order changes with the seed


def test_tfds_load_shuffle_files_on_the_tutorials_line(prepared_data_dir: Path) -> None:
    dataset = tfds.load("emnist_idx/letters", split="test", shuffle_files=True,
                        data_dir=prepared_data_dir, as_supervised=True)
    _, y = emnist_idx.load_numpy("letters", "test", data_dir=prepared_data_dir)
    assert labels_of(dataset) == y.tolist()  # one shard: its records in file order
