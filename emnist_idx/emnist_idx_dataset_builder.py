"""The ``emnist_idx`` TFDS builder: EMNIST from NIST's IDX files, upright, named and validated."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

from emnist_idx import configs
from emnist_idx._prepare import (array_records, beam_writer, checks, downloads, locking,
                                  object_publish, shard_identity, shard_writer)
from emnist_idx._prepare.data_dir import check_data_dir
from emnist_idx._prepare.pixel_stats import PixelHistogram
from emnist_idx._prepare.records import RecordEncoder
from emnist_idx._format.sources import (ConfigFiles, Location, SourceFile, find_config_files,
                                        location)

_HOMEPAGE = "https://www.nist.gov/itl/products-and-services/emnist-dataset"
_MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download NIST's bundle {configs.BUNDLE_URL} and place it in the manual dir in any of these shapes:
the zip as downloaded (gzip.zip), its extracted gzip/ folder, the loose emnist-*.gz files, or the
gunzipped IDX files, with the emnist-*-mapping.txt files. Then run
`{configs.build_command("CONFIG")}`.
"""


class _DatasetInfo(tfds.core.DatasetInfo):
    """TFDS's DatasetInfo, without the look for a copy on TFDS's GCS bucket."""

    def initialize_from_bucket(self) -> None:
        """Does nothing: emnist_idx is never on TFDS's bucket, and TFDS's look leaves an empty
        ``tmp…tfds`` folder in the temp dir per builder (TFDS's global GCS switch is left alone)."""


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

    def __init__(self, *, file_format: str | tfds.core.FileFormat | None = None, **kwargs) -> None:
        check_data_dir(kwargs.get("data_dir"))  # TFDS's own error is a bare KeyError
        super().__init__(**kwargs)  # the format of the prepared dataset, else TFRecord
        if file_format is not None:
            self._request_file_format(tfds.core.FileFormat.from_value(file_format))
        # The files checked by the prepare in progress. TFDS makes a download manager per
        # download_and_prepare: on Beam it asks for the shard generators after we checked, and is
        # answered from here; a later prepare (after the files were fixed) has a new one and checks.
        self._checked: _CheckedFiles | None = None
        self._manual_dir_given: str | None = None  # of the prepare in progress, for its first line

    def _request_file_format(self, requested: tfds.core.FileFormat) -> None:
        """Uses ``requested`` for a prepare; a dataset prepared as TFRecord also serves array_record.

        ``tfds.data_source`` without ``data_dir`` asks for array_record: ``as_data_source`` then adds
        array_record shards beside the TFRecord ones instead of failing on the format.
        """
        if requested == self.info.file_format:
            return
        prepared = self.is_prepared()
        if prepared and requested == array_records.ARRAY_RECORD:
            return
        self.info.set_file_format(requested, override=not prepared)  # TFDS's error if prepared

    def download_and_prepare(self, *, download_config: tfds.download.DownloadConfig | None = None,
                             **kwargs) -> None:
        """TFDS's download_and_prepare, one process at a time per version folder.

        A job that waited while another prepared the same folder reuses its result; the temporary
        folders of prepares that were killed are removed first (see ``_prepare/locking.py``). On
        object storage the folder is put in place with its marks of completion last
        (``_prepare/object_publish.py``).
        """
        overwrite = bool(download_config and download_config.download_mode.overwrite_dataset)
        self._manual_dir_given = download_config.manual_dir if download_config else None
        with locking.version_lock(self.data_path):
            locking.remove_dead_temporaries(self.data_path)
            if not overwrite and self.is_prepared():
                self.info.read_from_directory(self.data_dir)  # maybe prepared while we waited
            with object_publish.ordered_publishing(self.data_path, overwrite=overwrite):
                super().download_and_prepare(download_config=download_config, **kwargs)
        self._checked = None  # the labels of this prepare are not needed any more

    def _log_download_bytes(self) -> None:
        """The line starting a prepare, in place of TFDS's "Downloading and preparing dataset
        Unknown size ...": the sizes are known only once NIST's files are read."""
        source = (f"NIST's files in {self._manual_dir_given}" if self._manual_dir_given
                  else configs.BUNDLE_URL)
        print(f"Preparing {self.info.full_name} in {self.data_dir} from {source}", flush=True)

    def _info(self) -> tfds.core.DatasetInfo:
        # The description and citation are README.md and CITATIONS.bib beside this file (tfds new).
        metadata = self.get_metadata()
        return _DatasetInfo(
            builder=self,
            description=metadata.description or None,
            citation=metadata.citation or None,
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
        identities: dict[str, list[shard_identity.ShardIdentity]] = {}
        if download_config and (download_config.beam_runner or download_config.beam_options):
            # Our own single pipeline for every split (see _prepare/beam_writer.py).
            split_infos, identities, histogram = beam_writer.write_splits(
                splits=splits, encoder=RecordEncoder(self.info.features),
                templates={name: self._get_filename_template(split_name=name) for name in splits},
                file_format=self.info.file_format, beam_runner=download_config.beam_runner,
                beam_options=download_config.beam_options)
            self.info.set_splits(tfds.core.SplitDict(split_infos))
        else:
            histogram = self._write_splits_in_bulk(splits, identities)
        mean, std = histogram.moments()
        # Nested: TFDS's visualizers walk each metadata value as a dict (plain floats crash them).
        self.info.metadata.update({configs.PIXELS: {"mean": mean, "std": std},
                                   shard_identity.MANIFEST_KEY: shard_identity.manifest(identities)})

    def _as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False):
        """TFDS's reader (``tfds.load``, ``as_dataset``), once each TFRecord shard of ``split`` had
        its count and first and last record checked against those recorded at prepare.

        ``shuffle_files=True`` (``tfds.load``'s default for train) shuffles the order of the shards
        and reads each shard's records in file order, one shard at a time. The dataset stays
        ordered (``disable_shuffling``): unshuffled reads give record i as example i, which TFDS
        would no longer do (it would interleave files) without it.
        """
        if self.info.file_format == tfds.core.FileFormat.TFRECORD:
            record_size = RecordEncoder(self.info.features).record_size
            manifests = shard_identity.Manifests()  # metadata.json read once, not per shard
            for path, count in self._shards(split).items():
                shard_identity.check_tfrecord_fingerprint(path, count, record_size, manifests)
        if shuffle_files:
            read_config = read_config or tfds.ReadConfig()
            cycle = read_config.interleave_cycle_length  # unset: TFDS's MISSING, not an int
            read_config = dataclasses.replace(read_config, enable_ordering_guard=False,
                                              interleave_cycle_length=cycle
                                              if isinstance(cycle, int) else 1)
        return super()._as_dataset(split, decoders=decoders, read_config=read_config,
                                   shuffle_files=shuffle_files)

    def as_data_source(self, split: object = None, **kwargs: Any) -> Any:
        """TFDS's random-access source (``tfds.data_source``): for a dataset prepared as TFRecord
        only, array_record shards are first copied beside the TFRecord ones (once, recorded in
        dataset_info.json; about 10 s for balanced's 131,600 examples on 2 busy cores)."""
        if self.is_prepared() and self.info.file_format in (array_records.TFRECORD,
                                                            array_records.ARRAY_RECORD):
            array_records.add_array_record(self)
            array_records.check_fingerprints(self._shards(split))
        return super().as_data_source(split, **kwargs)

    def _shards(self, split: object) -> dict[str, int]:
        """The shards (full path: record count) that ``split`` reads (a split, a list or dict of
        them, or None: every split)."""
        names = (list(self.info.splits) if split is None else list(split.values())
                 if isinstance(split, dict) else list(split) if isinstance(split, (list, tuple))
                 else [split])
        return {os.fspath(instruction.filename): instruction.examples_in_shard
                for name in names for instruction in self.info.splits[name].file_instructions}

    def _write_splits_in_bulk(
        self, splits: Mapping[str, checks.CheckedSplit],
        identities: dict[str, list[shard_identity.ShardIdentity]],
    ) -> PixelHistogram:
        """Writes every split's shards, recording their identities in ``identities``; returns the
        train split's pixel histogram, counted while the images stream by."""
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
                    identities=identities.setdefault(name, []),
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


def _manual_dir(dl_manager: tfds.download.DownloadManager) -> Location | None:
    """The manual dir (a URL stays whole), also when it is missing or empty (so that errors can
    name it)."""
    try:
        return location(dl_manager.manual_dir)
    except (AssertionError, NotADirectoryError):
        # TFDS asserts the dir exists and is not empty; a zip given as the dir is fine for us.
        given = getattr(dl_manager, "_manual_dir", None)
        return location(given) if given else None


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
