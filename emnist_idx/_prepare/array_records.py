"""array_record shards beside a prepared TFRecord dataset, for ``tfds.data_source``'s random access.

A prepare writes TFRecord only (tf.data's fast path). The first ``as_data_source`` call on such a
dataset copies each shard's records, byte for byte, into an array_record shard of the same name and
records array_record in ``dataset_info.json``'s ``alternative_file_formats``: from then on any
process, with or without emnist_idx imported, gets ``tfds.data_source("emnist_idx/<config>")``.
The copy holds the version folder's lock, as prepares do (``locking``), and first removes the
temporary files of copies that were killed; a folder this process cannot write is a PermissionError
that says what the first use writes and the command that writes it once.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import struct
import threading
from collections.abc import Iterator

import google_crc32c
import tensorflow_datasets as tfds
from etils import epath

from emnist_idx._prepare import locking, shard_identity
from emnist_idx._prepare.tfrecord_frames import FOOTER_SIZE

ARRAY_RECORD = tfds.core.FileFormat.ARRAY_RECORD
TFRECORD = tfds.core.FileFormat.TFRECORD
_HEADER = struct.Struct("<QI")  # record length, masked CRC32C of the length
_LOCK = threading.Lock()  # readers' threads (Grain's, say) may all open the source at once
_log = logging.getLogger("emnist_idx")


def add_array_record(builder: tfds.core.DatasetBuilder) -> bool:
    """Writes array_record shards for a TFRecord-only prepared dataset; False if it has them.

    Shards are written under temporary names and renamed, and ``dataset_info.json`` is rewritten
    last, so an interrupted call leaves the dataset as it was.
    """
    info = builder.info
    if info.file_format != TFRECORD:
        return False
    with _LOCK:
        written = ARRAY_RECORD.value not in info.as_proto.alternative_file_formats
        if written:
            written = _write_once(builder)
    if ARRAY_RECORD not in info.alternative_file_formats:
        # TFDS 4.9.10 restores alternative_file_formats from dataset_info.json into the proto only.
        info.alternative_file_formats.append(ARRAY_RECORD)
    return written


def _write_once(builder: tfds.core.DatasetBuilder) -> bool:
    """Writes the shards under the version folder's lock (that of prepares), after removing the
    temporary files of copies that were killed; False if another process wrote them while we
    waited. A folder we cannot write is a PermissionError saying what to run once, and where."""
    info, folder = builder.info, os.fspath(builder.data_path)
    try:
        with locking.version_lock(folder):
            _remove_dead_partials(folder)
            if ARRAY_RECORD.value not in _recorded_formats(folder):
                _write_shards(info)
                info.as_proto.alternative_file_formats.append(ARRAY_RECORD.value)
                info.write_to_directory(builder.data_dir)
                return True
            info.as_proto.alternative_file_formats.append(ARRAY_RECORD.value)
            return False
    except PermissionError as exc:
        raise PermissionError(exc.errno, _read_only_message(builder, exc)) from exc
    except OSError as exc:
        if exc.errno != errno.EROFS:
            raise
        raise PermissionError(exc.errno, _read_only_message(builder, exc)) from exc


def _read_only_message(builder: tfds.core.DatasetBuilder, exc: OSError) -> str:
    size = sum(split.num_bytes for split in builder.info.splits.values())
    data_dir = os.fspath(builder.data_path.parent.parent.parent)
    command = (f"python -c \"import emnist_idx, tensorflow_datasets as tfds; "
               f"tfds.data_source('{builder.info.full_name.rsplit('/', 1)[0]}', "
               f"data_dir={data_dir!r})\"")
    return (f"{builder.data_path}: tfds.data_source reads array_record shards, which the first use "
            f"writes once into this folder beside the TFRecord shards (about {size / 2**20:.1f} MiB), "
            f"with a lock file beside it; this process cannot write there "
            f"({exc.strerror or exc}: {exc.filename}). Have a user who can write run once: {command}")


def _recorded_formats(folder: str) -> list[str]:
    """The alternative file formats dataset_info.json records now (another process may have
    added array_record since this one read it)."""
    with open(os.path.join(folder, "dataset_info.json"), "rb") as stream:
        return json.load(stream).get("alternativeFileFormats", [])


def _partial_path(target: epath.Path) -> epath.Path:
    """Where this process writes ``target`` before renaming it into place."""
    return target.parent / f".{target.name}.{os.getpid()}.partial"


_PARTIAL_NAME = re.compile(r"^\..+\.\d+\.partial$")  # _partial_path's names, any process


def _remove_dead_partials(folder: str) -> list[str]:
    """Removes the temporary shards of killed copies; call only while holding the folder's lock
    (no live process is writing any then). Returns the files removed."""
    removed = []
    for entry in os.scandir(folder):
        if _PARTIAL_NAME.match(entry.name) and entry.is_file(follow_symlinks=False):
            os.unlink(entry.path)
            removed.append(entry.path)
    if removed:
        _log.warning("Removed %d array_record file(s) left by interrupted copies: %s",
                     len(removed), ", ".join(removed))
    return removed


def _write_shards(info: tfds.core.DatasetInfo) -> None:
    """Every split's array_record shards: all written under temporary names, then renamed."""
    renames = []
    try:
        for split_info in info.splits.values():
            template = split_info.filename_template
            num_shards = len(split_info.shard_lengths)
            for index, expected in enumerate(split_info.shard_lengths):
                source = template.sharded_filepath(shard_index=index, num_shards=num_shards)
                target = template.replace(filetype_suffix=ARRAY_RECORD.file_suffix
                                          ).sharded_filepath(shard_index=index, num_shards=num_shards)
                partial = _partial_path(target)
                renames.append((partial, target))
                tfds.core.file_adapters.ADAPTER_FOR_FORMAT[ARRAY_RECORD].write_examples(
                    partial, ((None, record) for record in tfrecord_records(source, expected)))
        for partial, target in renames:
            partial.replace(target)
    finally:
        for partial, _ in renames:
            if partial.exists():
                partial.unlink()


def tfrecord_records(path: epath.Path, expected: int) -> Iterator[bytes]:
    """The records of a TFRecord shard (which a prepare wrote and TFDS checked), in order."""
    data = memoryview(path.read_bytes())
    position = count = 0
    while position + _HEADER.size <= len(data):
        length, _ = _HEADER.unpack_from(data, position)
        start = position + _HEADER.size
        if start + length + FOOTER_SIZE > len(data):
            break
        yield bytes(data[start : start + length])
        position, count = start + length + FOOTER_SIZE, count + 1
    if position != len(data) or count != expected:
        raise ValueError(f"{path}: expected {expected} TFRecord frames, found {count} whole ones "
                         f"and {len(data) - position} bytes after them: prepare the dataset again")


def check_fingerprints(tfrecord_shards: dict[str, int]) -> None:
    """Checks the array_record copy of each TFRecord shard (full path: record count): its count
    and first and last record against the identities recorded at prepare (``shard_identity``);
    PreparedDataError names a shard that differs."""
    from array_record.python.array_record_module import ArrayRecordReader

    manifests = shard_identity.Manifests()  # one metadata.json read per folder, not per shard
    for tfrecord_path, expected in tfrecord_shards.items():
        path = tfrecord_path.replace(f".{TFRECORD.file_suffix}-", f".{ARRAY_RECORD.file_suffix}-")
        reader = ArrayRecordReader(path)
        try:
            count = reader.num_records()
            ends = reader.read(sorted({0, count - 1})) if count else []
        finally:
            reader.close()
        crcs = [google_crc32c.value(record) for record in ends]
        shard_identity.check_fingerprint(path, count, crcs[0] if crcs else None,
                                         crcs[-1] if crcs else None, manifests)
