"""Checking a config's files against each other and against the config before anything is written."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from emnist_idx import configs
from emnist_idx.errors import IdxFormatError
from emnist_idx._format.idx import IdxHeader, IdxReader
from emnist_idx._format.mapping import read_label_mapping
from emnist_idx._format.sources import SourceFile, ConfigFiles

_LABELS_PER_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class CheckedSplit:
    """One of a config's splits (train or test): its images file and its labels, already 0-based."""

    images: SourceFile
    labels: np.ndarray  # uint8 class ids 0..num_classes-1
    header_size: int  # bytes before the images file's first pixel

    @property
    def count(self) -> int:
        return len(self.labels)


def check_mapping(source: SourceFile, config: str) -> None:
    """The mapping file must name exactly the classes the config declares."""
    with source.open() as stream:
        mapping = read_label_mapping(stream, source.name)
    expected = configs.CLASS_NAMES[config]
    if mapping.names != expected:
        raise IdxFormatError(
            source.name,
            f"mapping names {len(mapping.names)} classes {''.join(mapping.names)!r}, expected the "
            f"{len(expected)} classes of EMNIST {config} {''.join(expected)!r}",
        )
    if mapping.first_label != configs.FIRST_LABEL[config]:
        raise IdxFormatError(
            source.name,
            f"labels start at {mapping.first_label}, expected {configs.FIRST_LABEL[config]} for {config}",
        )


def check_image_header(source: SourceFile) -> IdxHeader:
    """Images must be an (N, 28, 28) uint8 IDX file whose size matches its header."""
    with source.open() as stream, IdxReader(stream, source.name) as reader:
        header = reader.header
    if header.dtype != np.uint8 or header.shape[1:] != configs.IMAGE_SHAPE[:2]:
        raise IdxFormatError(
            source.name,
            f"expected images of shape (N, 28, 28) and dtype uint8, found shape {header.shape} "
            f"and dtype {header.dtype}",
        )
    return header


def read_labels(source: SourceFile, config: str, image_count: int, images_name: str) -> np.ndarray:
    """Returns a labels file's 0-based class ids (uint8), checked against the images and the config.

    The header (dtype, shape, count, size bound) is checked before any payload is read; labels are
    then range-checked chunk by chunk into one uint8 array, so memory stays at one byte per label.
    """
    first = configs.FIRST_LABEL[config]
    num_classes = len(configs.CLASS_NAMES[config])
    with source.open() as stream, IdxReader(stream, source.name) as reader:
        header = reader.header
        if header.dtype != np.uint8 or len(header.shape) != 1:
            raise IdxFormatError(
                source.name,
                f"expected labels of shape (N,) and dtype uint8, found shape {header.shape} and "
                f"dtype {header.dtype}",
            )
        if header.count != image_count:
            raise IdxFormatError(
                source.name,
                f"header says {header.count:,} labels, images file {images_name} has "
                f"{image_count:,} images",
            )
        labels = np.empty(header.count, dtype=np.uint8)
        position = 0
        for chunk in reader.chunks(_LABELS_PER_CHUNK):
            bad = np.flatnonzero((chunk < first) | (chunk >= first + num_classes))
            if bad.size:
                raise IdxFormatError(
                    source.name,
                    f"label {int(chunk[bad[0]])} at index {position + int(bad[0])} is not a class of "
                    f"EMNIST {config}: expected {first} to {first + num_classes - 1}",
                )
            labels[position : position + len(chunk)] = chunk
            position += len(chunk)
    labels -= np.uint8(first)
    return labels


def check_config_files(files: ConfigFiles) -> dict[str, CheckedSplit]:
    """Validates every file of a config; returns each split's images source and 0-based labels."""
    check_mapping(files.mapping, files.config)
    splits = {}
    for split in configs.SPLITS:
        header = check_image_header(files.images[split])
        labels = read_labels(files.labels[split], files.config, header.count, files.images[split].name)
        splits[split] = CheckedSplit(images=files.images[split], labels=labels,
                                     header_size=header.size)
    return splits


def iter_upright(source: SourceFile, start: int, stop: int, records_per_chunk: int
                 ) -> Iterator[np.ndarray]:
    """Streams images ``start:stop`` of an images file as upright (k, 28, 28) uint8 arrays.

    NIST stores each image transposed; the arrays yielded are transposed views (no copy). The file
    is checked to end exactly where its header says when ``stop`` is its last image.
    """
    with source.open() as stream, IdxReader(stream, source.name) as reader:
        position = 0
        while position < start:
            position += len(reader.read(min(records_per_chunk, start - position)))
        while position < stop:
            chunk = reader.read(min(records_per_chunk, stop - position))
            position += len(chunk)
            yield chunk.transpose(0, 2, 1)
        if not reader.records_left:
            reader.finish()

