"""TFDS's own builder checks, one declaration per config, on the committed dummy_data/."""

from __future__ import annotations


import pytest
import tensorflow_datasets as tfds

from emnist_idx import emnist_idx_dataset_builder
from tests.bundle_factory import DUMMY_DATA



class _EmnistIdxTestCase(tfds.testing.DatasetBuilderTestCase):
    DATASET_CLASS = emnist_idx_dataset_builder.Builder
    EXAMPLE_DIR = str(DUMMY_DATA)
    SKIP_CHECKSUMS = False  # a download would have to be of the URL registered in checksums.tsv


@pytest.mark.slow  # the two largest dummy configs (~10 s each)
class ByclassTest(_EmnistIdxTestCase):
    BUILDER_CONFIG_NAMES_TO_TEST = ["byclass"]
    SPLITS = {"train": 248, "test": 124}


class BymergeTest(_EmnistIdxTestCase):
    BUILDER_CONFIG_NAMES_TO_TEST = ["bymerge"]
    SPLITS = {"train": 188, "test": 94}


@pytest.mark.slow  # the two largest dummy configs (~10 s each)
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


# --- the files checked by one prepare: checked once, re-checked by the next prepare ---

def _counting_checks(monkeypatch) -> list[str]:
    from emnist_idx._prepare import checks

    calls: list[str] = []
    check = checks.check_config_files

    def counting(files):
        calls.append(files.config)
        return check(files)
    monkeypatch.setattr(checks, "check_config_files", counting)
    return calls


def test_beam_prepare_checks_the_files_once(tmp_path, monkeypatch):
    from apache_beam.options.pipeline_options import PipelineOptions

    calls = _counting_checks(monkeypatch)
    builder = tfds.builder("emnist_idx/digits", data_dir=str(tmp_path))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(DUMMY_DATA / "gzip"), beam_options=PipelineOptions(["--runner=DirectRunner"])))
    assert builder.info.splits["train"].num_examples == 40
    assert calls == ["digits"]  # TFDS asked for the shard generators after we checked: not again


def test_a_later_prepare_of_the_same_builder_checks_the_fixed_files(tmp_path, monkeypatch):
    import shutil

    import pytest

    from emnist_idx import IdxFormatError, configs

    calls = _counting_checks(monkeypatch)
    manual_dir = tmp_path / "nist"
    shutil.copytree(DUMMY_DATA / "gzip", manual_dir)
    labels = manual_dir / configs.label_file("digits", "train")
    good = labels.read_bytes()
    labels.write_bytes(good[: len(good) // 2])
    builder = tfds.builder("emnist_idx/digits", data_dir=str(tmp_path / "data"))
    download_config = tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    with pytest.raises(IdxFormatError, match=f"^{labels}: "):
        builder.download_and_prepare(download_config=download_config)
    labels.write_bytes(good)  # the user fixes the file; the same builder prepares again
    builder.download_and_prepare(download_config=download_config)
    assert calls == ["digits", "digits"]
    assert builder.is_prepared() and builder.info.splits["train"].num_examples == 40
