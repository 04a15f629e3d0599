"""The ``emnist_idx`` TFDS builder: EMNIST from NIST's IDX files, upright, named and validated."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from emnist_idx import configs
from emnist_idx._prepare import (array_records, beam_writer, checks, downloads, locking,
                                  shard_writer)
from emnist_idx._prepare.pixel_stats import PixelHistogram
from emnist_idx._prepare.records import RecordEncoder
from emnist_idx._format.sources import SourceFile, ConfigFiles, find_config_files

_HOMEPAGE = "https://www.nist.gov/itl/products-and-services/emnist-dataset"
# The metadata key of the train split's pixel statistics: {"mean": ..., "std": ...} on the 0..1 scale.
PIXELS = "pixels"
_MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download NIST's bundle {configs.BUNDLE_URL} and place it in the manual dir in any of these shapes:
the zip as downloaded (gzip.zip), its extracted gzip/ folder, the loose emnist-*.gz files, or the
gunzipped IDX files, with the emnist-*-mapping.txt files. Then run
`tfds build emnist_idx --imports emnist_idx --manual_dir DIR --config CONFIG`.
"""


@dataclasses.dataclass(frozen=True)
class _CheckedFiles:
    """The validated splits of one prepare, tied to that prepare's download manager."""

    dl_manager: tfds.download.DownloadManager
    splits: dict[str, checks.CheckedSplit]


class Builder(tfds.core.ShardBasedBuilder):
    """EMNIST, one config per split, written in bulk with exactly TFDS's records and layout."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Upright images, named labels, validated IDX, bulk-written shards."}
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name=config, description=configs.DESCRIPTIONS[config])
        for config in configs.CONFIGS
    ]
    DEFAULT_BUILDER_CONFIG_NAME = configs.DEFAULT_CONFIG
    MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The files checked by the prepare in progress. TFDS makes a download manager per
        # download_and_prepare: on Beam it asks for the shard generators after we checked, and is
        # answered from here; a later prepare (after the files were fixed) has a new one and checks.
        self._checked: _CheckedFiles | None = None

    def download_and_prepare(self, *, download_config: tfds.download.DownloadConfig | None = None,
                             **kwargs) -> None:
        """TFDS's download_and_prepare, one process at a time per version folder.

        A job that waited while another prepared the same folder reuses its result; the temporary
        folders of prepares that were killed are removed first (see ``_prepare/locking.py``).
        """
        overwrite = bool(download_config and download_config.download_mode.overwrite_dataset)
        with locking.version_lock(self.data_path):
            locking.remove_dead_temporaries(self.data_path)
            if not overwrite and self.is_prepared():
                self.info.read_from_directory(self.data_dir)  # maybe prepared while we waited
            super().download_and_prepare(download_config=download_config, **kwargs)
        self._checked = None  # the labels of this prepare are not needed any more

    def _info(self) -> tfds.core.DatasetInfo:
        # The description and citation are README.md and CITATIONS.bib beside this file (tfds new).
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(
                    shape=configs.IMAGE_SHAPE, dtype=np.uint8, encoding=tfds.features.Encoding.BYTES
                ),
                "label": tfds.features.ClassLabel(names=configs.CLASS_NAMES[self.builder_config.name]),
            }),
            supervised_keys=("image", "label"),
            homepage=_HOMEPAGE,
            metadata=tfds.core.MetadataDict(),
            disable_shuffling=True,
        )

    def _download_and_prepare(
        self,
        dl_manager: tfds.download.DownloadManager,
        download_config: tfds.download.DownloadConfig | None = None,
    ) -> None:
        splits = self._checked_splits(dl_manager)
        if download_config and (download_config.beam_runner or download_config.beam_options):
            # Our own single pipeline for every split (see _prepare/beam_writer.py).
            split_infos, histogram = beam_writer.write_splits(
                splits=splits, encoder=RecordEncoder(self.info.features),
                templates={name: self._get_filename_template(split_name=name) for name in splits},
                file_format=self.info.file_format, beam_runner=download_config.beam_runner,
                beam_options=download_config.beam_options)
            self.info.set_splits(tfds.core.SplitDict(split_infos))
        else:
            histogram = self._write_splits_in_bulk(splits)
        mean, std = histogram.moments()
        # Nested: TFDS's visualizers walk each metadata value as a dict (plain floats crash them).
        self.info.metadata.update({PIXELS: {"mean": mean, "std": std}})

    def as_data_source(self, *args, **kwargs):
        """TFDS's random-access source (``tfds.data_source``): for a dataset prepared as TFRecord
        only, array_record shards are first copied beside the TFRecord ones (once, recorded in
        dataset_info.json; about 10 s for balanced's 131,600 examples on 2 busy cores)."""
        if self.is_prepared():
            array_records.add_array_record(self)
        return super().as_data_source(*args, **kwargs)

    def _write_splits_in_bulk(self, splits: Mapping[str, checks.CheckedSplit]) -> PixelHistogram:
        """Writes every split's shards; returns the train split's pixel histogram, counted while
        the images stream by."""
        encoder = RecordEncoder(self.info.features)
        histogram = PixelHistogram()
        split_infos = []
        for name, split in splits.items():
            with tfds.core.utils.tqdm(total=split.count, desc=f"Generating {name} examples...",
                                 unit=" examples", leave=False) as progress:
                split_infos.append(shard_writer.write_split(
                    split_name=name,
                    labels=split.labels,
                    read_images=functools.partial(_read_images, split.images),
                    encoder=encoder,
                    filename_template=self._get_filename_template(split_name=name),
                    file_format=self.info.file_format,
                    on_chunk=histogram.add if name == "train" else None,
                    progress=progress.update,
                ))
        self.info.set_splits(tfds.core.SplitDict(split_infos))
        return histogram

    def _shard_iterators_per_split(
        self, dl_manager: tfds.download.DownloadManager
    ) -> dict[str, Sequence[Callable[[], Iterator[tuple[int, dict]]]]]:
        """One generator per shard, for TFDS's own per-example writer (ShardBasedBuilder's
        interface; our prepares write in bulk or with ``beam_writer``, tests compare against it)."""
        splits = self._checked_splits(dl_manager)
        record_size = RecordEncoder(self.info.features).record_size
        return {
            name: [
                functools.partial(_shard_examples, split.images, split.labels[start:stop], start, stop)
                for start, stop in shard_writer.plan_shards(split.count, record_size)
            ]
            for name, split in splits.items()
        }

    def _checked_splits(self, dl_manager: tfds.download.DownloadManager
                       ) -> dict[str, checks.CheckedSplit]:
        """The config's validated splits, checked once per prepare (``dl_manager``)."""
        if self._checked is None or self._checked.dl_manager is not dl_manager:
            self._checked = _CheckedFiles(
                dl_manager, checks.check_config_files(self._config_files(dl_manager)))
        return self._checked.splits

    def _config_files(self, dl_manager: tfds.download.DownloadManager) -> ConfigFiles:
        """The config's files from the manual dir, else from NIST's bundle through dl_manager."""
        config = self.builder_config.name
        manual_dir = _manual_dir(dl_manager)
        try:
            return find_config_files(config, [manual_dir] if manual_dir else [])
        except FileNotFoundError as not_in_manual_dir:
            unreachable = downloads.unreachable_reason(configs.BUNDLE_URL)
            if unreachable:  # fail now rather than after minutes of urllib3 retries
                raise FileNotFoundError(
                    f"{not_in_manual_dir}\nCannot download {configs.BUNDLE_URL}: {unreachable}"
                ) from None
            try:
                bundle = dl_manager.download(configs.BUNDLE_URL)
            except Exception as download_error:  # noqa: BLE001 - any failure means "not available"
                raise FileNotFoundError(
                    f"{not_in_manual_dir}\nDownloading {configs.BUNDLE_URL} failed: "
                    f"{type(download_error).__name__}: {download_error}"
                ) from download_error
            return find_config_files(config, [bundle])


def _manual_dir(dl_manager: tfds.download.DownloadManager) -> Path | None:
    """The manual dir, also when it is missing or empty (so that errors can name it)."""
    try:
        return Path(dl_manager.manual_dir)
    except (AssertionError, NotADirectoryError):
        # TFDS asserts the dir exists and is not empty; a zip given as the dir is fine for us.
        given = getattr(dl_manager, "_manual_dir", None)
        return Path(given) if given else None


def _read_images(source: SourceFile, start: int, stop: int) -> Iterator[np.ndarray]:
    return checks.iter_upright(source, start, stop, shard_writer.RECORDS_PER_CHUNK)


def _shard_examples(source: SourceFile, labels: np.ndarray, start: int, stop: int
                    ) -> Iterator[tuple[int, dict]]:
    """(key, example) pairs of one shard, for TFDS's own writer."""
    position = start
    for chunk in _read_images(source, start, stop):
        for image in chunk:
            yield position, {"image": image[..., None], "label": labels[position - start]}
            position += 1


def _pixel_histogram(split: checks.CheckedSplit) -> PixelHistogram:
    """The split's pixel histogram in one more pass over its images (TFDS's writer path)."""
    histogram = PixelHistogram()
    for chunk in _read_images(split.images, 0, split.count):
        histogram.add(chunk)
    return histogram
