"""TFDS's own builder checks, one declaration per config, on the committed dummy_data/."""

from __future__ import annotations


import tensorflow_datasets as tfds

from emnist_idx import emnist_idx_dataset_builder
from tests.bundle_factory import DUMMY_DATA



class _EmnistIdxTestCase(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = emnist_idx_dataset_builder.Builder
    EXAMPLE_DIR = str(DUMMY_DATA)
    SKIP_CHECKSUMS = False  # a download would have to be of the URL registered in checksums.tsv


class ByclassTest(_EmnistIdxTestCase):
    BUILDER_CONFIG_NAMES_TO_TEST = ["byclass"]
    SPLITS = {"train": 248, "test": 124}


class BymergeTest(_EmnistIdxTestCase):
    BUILDER_CONFIG_NAMES_TO_TEST = ["bymerge"]
    SPLITS = {"train": 188, "test": 94}


class BalancedTest(_EmnistIdxTestCase):
    BUILDER_CONFIG_NAMES_TO_TEST = ["balanced"]
    SPLITS = {"train": 1128, "test": 282}


class LettersTest(_EmnistIdxTestCase):
    BUILDER_CONFIG_NAMES_TO_TEST = ["letters"]
    SPLITS = {"train": 104, "test": 52}


class DigitsTest(_EmnistIdxTestCase):
    BUILDER_CONFIG_NAMES_TO_TEST = ["digits"]
    SPLITS = {"train": 40, "test": 20}


class MnistTest(_EmnistIdxTestCase):
    BUILDER_CONFIG_NAMES_TO_TEST = ["mnist"]
    SPLITS = {"train": 40, "test": 20}


del _EmnistIdxTestCase  # only the declarations above are test classes

if __name__ == "__main__":
    tfds.testing.test_main()
