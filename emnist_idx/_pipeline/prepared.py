"""A prepared config's version folder, checked before and while it is read.

Before a read: the JSON files TFDS reads (dataset_info.json, features.json, metadata.json) exist and
parse, and every shard's size is exactly its record count from dataset_info.json times the frame
size (records are fixed-size TFRecord frames, so this is exact; one stat per shard). While reading:
each piece of records is read whole and every frame checked (``frames.cut``). Any problem raises
``PreparedDataError`` naming the file, with the command that rebuilds the config.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.core.utils import file_utils

from emnist_idx import configs
from emnist_idx._format import storage
from emnist_idx._pipeline import frames
from emnist_idx._pipeline.frames import RecordLayout
from emnist_idx._prepare import shard_identity, tfrecord_frames
from emnist_idx._prepare.data_dir import check_data_dir
from emnist_idx.errors import PreparedDataError

DATASET_NAME = configs.DATASET_NAME
DATASET_INFO = "dataset_info.json"
# What TFDS reads from a version folder besides the shards, and the keys our builder relies on.
METADATA = shard_identity.METADATA
_JSON_FILES = {DATASET_INFO: ("splits",), "features.json": (), METADATA: ()}


def version_dir(config: str, data_dir: str | os.PathLike | None) -> epath.Path:
    """``<data_dir>/emnist_idx/<config>/<version>``, found without reading anything in it."""
    from emnist_idx.emnist_idx_dataset_builder import Builder

    check_data_dir(data_dir)
    _, path = file_utils.get_data_dir_and_dataset_dir(
        given_data_dir=os.fspath(data_dir) if data_dir else None, builder_name=DATASET_NAME,
        config_name=config, version=Builder.VERSION)
    return storage.path(path)


def check_before_open(config: str, data_dir: str | os.PathLike | None) -> bool:
    """Checks the config's JSON files before TFDS reads them (PreparedDataError names a missing or
    invalid one); returns whether the version folder must be prepared again.

    A version folder without dataset_info.json is an interrupted or damaged prepare: TFDS would
    reuse it as it is (and find no splits), so it is rebuilt instead (``prepare_mode``).
    """
    folder = version_dir(config, data_dir)
    if not folder.is_dir():
        return False
    if not (folder / DATASET_INFO).exists():
        return True
    check_json_files(folder)
    return False


def prepare_mode(rebuild: bool) -> tfds.download.GenerateMode:
    """TFDS's download mode for a prepare: overwrite the folder when it must be rebuilt."""
    return (tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS if rebuild
            else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS)


def check_json_files(location: str | os.PathLike) -> None:
    """Raises PreparedDataError unless each JSON file TFDS reads is there, readable and valid."""
    folder = storage.path(location)
    for name, keys in _JSON_FILES.items():
        path = folder / name
        try:
            content = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise PreparedDataError(path, "is missing from the prepared dataset",
                                    configs.rebuild_command(folder)) from None
        except OSError as exc:
            raise PreparedDataError(path, f"cannot be read ({exc.strerror or exc})",
                                    configs.rebuild_command(folder)) from exc
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise PreparedDataError(path, f"is not valid JSON ({exc})",
                                    configs.rebuild_command(folder)) from exc
        if not isinstance(content, dict):
            raise PreparedDataError(path, f"holds a JSON {type(content).__name__}, not the JSON "
                                          "object TFDS wrote", configs.rebuild_command(folder))
        missing = [key for key in keys if key not in content]
        if missing:
            raise PreparedDataError(path, f"has no {' or '.join(map(repr, missing))} entry",
                                    configs.rebuild_command(folder))
        if name == METADATA:
            check_pixel_statistics(path, content)


def check_pixel_statistics(path: Path, metadata: dict) -> None:
    """Raises PreparedDataError naming ``path`` (metadata.json) unless the train split's pixel
    ``mean`` and ``std`` (0..1 scale) are real numbers that pixels in 0..1 can have:
    ``0 <= mean <= 1`` and ``1e-3 < std <= sqrt(mean * (1 - mean)) + 1e-6``.

    Datasets prepared by emnist_idx 0.x kept them at the top level; one without them is left to
    ``normalize="standardize"`` to refuse.
    """
    moments = metadata.get(configs.PIXELS, metadata if "mean" in metadata or "std" in metadata else None)
    if moments is None:
        return
    if not isinstance(moments, dict) or not {"mean", "std"} <= set(moments):
        raise PreparedDataError(path, f"{configs.PIXELS!r} must hold the train split's pixel 'mean' and "
                                      f"'std', found {moments!r}", configs.rebuild_command(path.parent))
    mean, std = moments["mean"], moments["std"]
    for key, value in (("mean", mean), ("std", std)):
        if type(value) not in (int, float) or not math.isfinite(value):
            raise PreparedDataError(path, f"the train split's pixel {key} must be a finite number, "
                                          f"found {value!r}", configs.rebuild_command(path.parent))
    if not 0 <= mean <= 1:
        raise PreparedDataError(path, f"the train split's pixel mean must lie in 0..1 (pixels "
                                      f"scaled to 0..1), found {mean!r}", configs.rebuild_command(path.parent))
    largest = math.sqrt(mean * (1 - mean)) + 1e-6  # the std of pixels all 0 or 1 in that ratio
    if not 1e-3 < std <= largest:
        raise PreparedDataError(path, f"the train split's pixel std must lie in (0.001, {largest:.6g}] "
                                      f"(the most that pixels in 0..1 with mean {mean!r} allow), "
                                      f"found {std!r}", configs.rebuild_command(path.parent))


def check_shards(builder: tfds.core.DatasetBuilder, layout: RecordLayout,
                 filenames: set[str] | None = None) -> None:
    """``check_shard`` for each shard in ``filenames`` (full paths) when given, else every shard of
    every split; metadata.json is read once for all of them."""
    folder = storage.path(builder.data_path)
    manifests = shard_identity.Manifests()
    for split_info in builder.info.splits.values():
        for name, count in zip(split_info.filenames, split_info.shard_lengths):
            path = folder / name
            if filenames is None or os.fspath(path) in filenames:
                check_shard(path, int(count), layout, split_info.name, manifests)


def check_shard(path: str | os.PathLike, count: int, layout: RecordLayout, split: str,
                manifests: shard_identity.Manifests | None = None) -> None:
    """Checks a shard before reading it: its size against its record count from
    dataset_info.json (one stat), and its fingerprint against metadata.json's (two small reads:
    ``shard_identity``). PreparedDataError names the shard."""
    check_shard_size(storage.path(path), count, layout.frame_size, split)
    shard_identity.check_tfrecord_fingerprint(path, count, layout.record_size, manifests)


def check_shard_size(path: epath.Path, count: int, frame_size: int, split: str) -> None:
    try:
        size = storage.size(path)
    except FileNotFoundError:
        raise PreparedDataError(path, f"is missing: dataset_info.json lists this {split} shard "
                                f"with {count:,} records", configs.rebuild_command(path.parent)) from None
    expected = count * frame_size
    if size == expected:
        return
    whole, rest = divmod(size, frame_size)
    found = f"{whole:,} records" + (f" and {rest} bytes of a cut record" if rest else "")
    raise PreparedDataError(
        path, f"holds {size:,} bytes ({found}), but dataset_info.json says {count:,} records of "
              f"{frame_size} bytes ({expected:,} bytes)", configs.rebuild_command(path.parent))


def read_records(path: str, skip: int, take: int, shard_records: int, layout: RecordLayout,
                 images_out: np.ndarray | None = None, frames_buffer: np.ndarray | None = None,
                 crcs_out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Records ``skip`` to ``skip + take`` of a shard of ``shard_records`` records, checked, as
    uint8 images (written into ``images_out`` when given) and int64 labels. Their CRC32Cs, once
    checked, go into ``crcs_out`` when given (for ``shard_identity``).

    The frames are read into ``frames_buffer`` (uint8, at least ``take`` rows of the frame size)
    when given: reused across calls, its pages are not faulted in and zeroed again for each one.
    """
    data = read_frames(path, skip, take, shard_records, layout.frame_size,
                       None if frames_buffer is None else frames_buffer[:take])
    try:
        images, labels = frames.cut(data, layout, images_out)
    except frames.FrameError as exc:
        raise frame_error(path, skip + exc.index, exc) from None
    if crcs_out is not None:
        crcs_out[...] = tfrecord_frames.record_crcs(data)
    return images, labels


def read_frames(path: str, skip: int, take: int, shard_records: int, frame_size: int,
                frames_out: np.ndarray | None = None, *, size_checked: bool = False
                ) -> np.ndarray:
    """Frames ``skip`` to ``skip + take`` of a shard of ``shard_records`` records, unchecked, as a
    (take, frame_size) uint8 array (``frames_out`` when given), in one ranged read.

    The shard's size is checked first unless ``size_checked`` (the caller checked it in this
    process: on object storage that is one request fewer); a read that ends early raises anyway.
    """
    data = np.empty((take, frame_size), dtype=np.uint8) if frames_out is None else frames_out
    try:
        with storage.open_for_reading(path) as stream:
            if not size_checked and storage.size(path) != shard_records * frame_size:
                # changed since load() checked it
                check_shard_size(storage.path(path), shard_records, frame_size, "split's")
            stream.seek(skip * frame_size)
            got = _read_into(stream, data.data.cast("B"))
    except OSError as exc:
        raise PreparedDataError(path, f"cannot be read ({exc.strerror or exc})",
                                configs.rebuild_command(storage.path(path).parent)) from exc
    if got != data.nbytes:
        raise PreparedDataError(
            path, f"ends after {skip + got // frame_size:,} records; expected at least "
                  f"{skip + take:,} (dataset_info.json)", configs.rebuild_command(storage.path(path).parent))
    return data


def frame_error(path: str | os.PathLike, record: int, exc: frames.FrameError
                ) -> PreparedDataError:
    """``exc``, raised for record ``record`` (its number in the shard) of ``path``, as the error
    that names the shard, the record and the command that rebuilds the config."""
    return PreparedDataError(path, f"record {record:,} {exc.problem}",
                             configs.rebuild_command(storage.path(path).parent))


def _read_into(stream, buffer: memoryview) -> int:
    total = 0
    while total < len(buffer):
        count = stream.readinto(buffer[total:])
        if not count:
            break
        total += count
    return total
