"""Preparing a config when it is not prepared yet: the one path for ``load()``, the CLI and the demo."""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

from emnist_idx import configs
from emnist_idx._format.sources import location

DATASET_NAME = configs.DATASET_NAME


def prepared_builder(
    config: str,
    *,
    data_dir: str | os.PathLike | None = None,
    manual_dir: str | os.PathLike | None = None,
    download: bool = True,
) -> tfds.core.DatasetBuilder:
    """The builder of ``emnist_idx/<config>``, prepared first from ``manual_dir`` (or the download).

    The builder prints one line when a prepare starts.

    A version folder without dataset_info.json (an interrupted or damaged prepare, which TFDS would
    reuse as it is and find no splits in) is prepared again.

    Raises:
      PreparedDataError: dataset_info.json, features.json or metadata.json is missing or invalid.
      FileNotFoundError: ``manual_dir`` does not exist, or nothing is prepared and ``download`` is
        False.
    """
    from emnist_idx._pipeline import prepared
    from emnist_idx.emnist_idx_dataset_builder import Builder

    configs.check_config(config)
    manual = location(manual_dir) if manual_dir is not None else None  # a URL stays a URL
    if manual is not None and not manual.exists():
        raise FileNotFoundError(f"manual dir {manual_dir} does not exist: pass the directory (or the "
                                "gzip.zip) holding NIST's EMNIST files")
    # The JSON files TFDS reads are checked first: PreparedDataError names a missing or invalid one.
    rebuild = prepared.check_before_open(config, data_dir)
    builder = Builder(config=config, data_dir=os.fspath(data_dir) if data_dir else None)
    if builder.is_prepared():
        return builder
    if not download:
        if rebuild:
            prepared.check_json_files(builder.data_path)  # names the missing dataset_info.json
        raise FileNotFoundError(
            f"{DATASET_NAME}/{config} is not prepared in {builder.data_dir} and download=False: "
            "call load(..., download=True), with manual_dir=DIR holding NIST's files to prepare "
            f"offline, or run `{configs.build_command(config, data_dir)}`")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=os.fspath(manual) if manual else None,
        download_mode=prepared.prepare_mode(rebuild)))
    return builder
