"""A prepared config's version folder, checked before and while it is read.

Before a read: the JSON files TFDS reads (dataset_info.json, features.json, metadata.json) exist and
parse, and every shard's size is exactly its record count from dataset_info.json times the frame
size (records are fixed-size TFRecord frames, so this is exact; one stat per shard). While reading:
each piece of records is read whole and every frame checked (``frames.cut``). Any problem raises
``PreparedDataError`` naming the file, with the command that rebuilds the config.
"""

from __future__ import annotations

import json
import os
import shlex
import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.core.utils import file_utils

from emnist_idx import configs
from emnist_idx._pipeline import frames, storage
from emnist_idx._pipeline.frames import RecordLayout
from emnist_idx.errors import PreparedDataError

DATASET_NAME = configs.DATASET_NAME
DATASET_INFO = "dataset_info.json"
# What TFDS reads from a version folder besides the shards, and the keys our builder relies on.
_JSON_FILES = {DATASET_INFO: ("splits",), "features.json": (), "metadata.json": ()}


def version_dir(config: str, data_dir: str | os.PathLike | None) -> epath.Path:
    """``<data_dir>/emnist_idx/<config>/<version>``, found without reading anything in it."""
    from emnist_idx.emnist_idx_dataset_builder import Builder

    _, path = file_utils.get_data_dir_and_dataset_dir(
        given_data_dir=os.fspath(data_dir) if data_dir else None, builder_name=DATASET_NAME,
        config_name=config, version=Builder.VERSION)
    return storage.path(path)


def rebuild_command(folder: str | os.PathLike) -> str:
    """The shell command that deletes and prepares again the config in ``folder`` (a version dir)."""
    folder = storage.path(folder)
    config, root = folder.parent.name, folder.parent.parent.parent
    return (f"rebuild it with: rm -r {shlex.quote(str(folder))} && tfds build {DATASET_NAME} "
            f"--imports {DATASET_NAME} --config {config} --data_dir {shlex.quote(str(root))} "
            "--manual_dir DIR  (DIR: NIST's files; leave --manual_dir out to download them)")


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


def check_json_files(folder: str | os.PathLike) -> None:
    """Raises PreparedDataError unless each JSON file TFDS reads is there, readable and valid."""
    folder = storage.path(folder)
    for name, keys in _JSON_FILES.items():
        path = folder / name
        try:
            content = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise PreparedDataError(path, "is missing from the prepared dataset",
                                    rebuild_command(folder)) from None
        except OSError as exc:
            raise PreparedDataError(path, f"cannot be read ({exc.strerror or exc})",
                                    rebuild_command(folder)) from exc
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise PreparedDataError(path, f"is not valid JSON ({exc})",
                                    rebuild_command(folder)) from exc
        if not isinstance(content, dict):
            raise PreparedDataError(path, f"holds a JSON {type(content).__name__}, not the JSON "
                                          "object TFDS wrote", rebuild_command(folder))
        missing = [key for key in keys if key not in content]
        if missing:
            raise PreparedDataError(path, f"has no {' or '.join(map(repr, missing))} entry",
                                    rebuild_command(folder))


def check_shards(builder: tfds.core.DatasetBuilder, layout: RecordLayout,
                 filenames: set[str] | None = None) -> None:
    """Checks each shard's size against its record count from dataset_info.json (one stat each).

    Only the shards in ``filenames`` (full paths) when given, else every shard of every split.
    """
    folder = storage.path(builder.data_path)
    for split_info in builder.info.splits.values():
        for name, count in zip(split_info.filenames, split_info.shard_lengths):
            path = folder / name
            if filenames is not None and os.fspath(path) not in filenames:
                continue
            _check_shard_size(path, int(count), layout.frame_size, split_info.name)


def _check_shard_size(path: epath.Path, count: int, frame_size: int, split: str) -> None:
    try:
        size = storage.size(path)
    except FileNotFoundError:
        raise PreparedDataError(path, f"is missing: dataset_info.json lists this {split} shard "
                                f"with {count:,} records", rebuild_command(path.parent)) from None
    expected = count * frame_size
    if size == expected:
        return
    whole, rest = divmod(size, frame_size)
    found = f"{whole:,} records" + (f" and {rest} bytes of a cut record" if rest else "")
    raise PreparedDataError(
        path, f"holds {size:,} bytes ({found}), but dataset_info.json says {count:,} records of "
              f"{frame_size} bytes ({expected:,} bytes)", rebuild_command(path.parent))


def read_records(path: str, skip: int, take: int, shard_records: int, layout: RecordLayout,
                 images_out: np.ndarray | None = None, frames_buffer: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Records ``skip`` to ``skip + take`` of a shard of ``shard_records`` records, checked, as
    uint8 images (written into ``images_out`` when given) and int64 labels.

    The frames are read into ``frames_buffer`` (uint8, at least ``take`` rows of the frame size)
    when given: reused across calls, its pages are not faulted in and zeroed again for each one.
    """
    frame_size = layout.frame_size
    if frames_buffer is None:
        data = np.empty((take, frame_size), dtype=np.uint8)
    else:
        data = frames_buffer[:take]
    try:
        with storage.open_for_reading(path) as stream:
            size = storage.size(path)
            if size != shard_records * frame_size:  # changed since load() checked it
                _check_shard_size(storage.path(path), shard_records, frame_size, "split's")
            stream.seek(skip * frame_size)
            got = _read_into(stream, data.data.cast("B"))
    except OSError as exc:
        raise PreparedDataError(path, f"cannot be read ({exc.strerror or exc})",
                                rebuild_command(storage.path(path).parent)) from exc
    if got != data.nbytes:
        raise PreparedDataError(
            path, f"ends after {skip + got // frame_size:,} records; expected at least "
                  f"{skip + take:,} (dataset_info.json)", rebuild_command(storage.path(path).parent))
    try:
        return frames.cut(data, layout, images_out)
    except frames.FrameError as exc:
        raise PreparedDataError(path, f"record {skip + exc.index:,} {exc.problem}",
                                rebuild_command(storage.path(path).parent)) from None


def _read_into(stream, buffer: memoryview) -> int:
    total = 0
    while total < len(buffer):
        count = stream.readinto(buffer[total:])
        if not count:
            break
        total += count
    return total
