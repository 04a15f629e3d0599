"""``emnist-idx verify`` of prepared data: every JSON file, shard, record and shard identity."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from emnist_idx import configs
from emnist_idx._pipeline import prepared
from emnist_idx._pipeline.frames import RecordLayout
from emnist_idx._prepare import shard_identity
from emnist_idx._prepare.array_records import ARRAY_RECORD, TFRECORD
from emnist_idx.commands._common import one_line
from emnist_idx.errors import PreparedDataError

_PIECE_RECORDS = 16_384  # records read and checked per call: ~14 MB of frames


def prepared_folders(root: Path) -> list[Path]:
    """The prepared version folders ``root`` is or holds: ``root`` itself when it has
    dataset_info.json, else each ``emnist_idx/<config>/<version>`` of the data_dir ``root``."""
    if (root / prepared.DATASET_INFO).is_file():
        return [root]
    dataset = root / configs.DATASET_NAME
    return sorted(folder for folder in dataset.glob("*/*")
                  if folder.is_dir() and (folder / prepared.DATASET_INFO).is_file())


def verify_prepared(folder: Path) -> list[str]:
    """Checks one prepared version folder in full; prints its verdict, returns one line per problem.

    The JSON files TFDS reads, every shard's size, every record's framing, CRC32C and label, each
    shard's identity (``shard_identity``), and the array_record copy's identities where there is one.
    """
    from emnist_idx.emnist_idx_dataset_builder import Builder

    name = f"{folder.parent.name} {folder.name}"
    try:
        prepared.check_json_files(folder)
        builder = Builder(config=folder.parent.name, version=folder.name,
                          data_dir=os.fspath(folder.parent.parent.parent))
    except (PreparedDataError, ValueError, OSError) as exc:
        print(f"{name}: FAILED in {folder}")
        return [one_line(exc)]
    layout = RecordLayout.of(builder.info.features)
    problems, records = [], 0
    for split in builder.info.splits.values():
        for path, count in zip(split.filepaths, split.shard_lengths):
            try:
                _verify_shard(os.fspath(path), count, layout, split.name)
                records += count
            except (PreparedDataError, OSError) as exc:
                problems.append(one_line(exc))
    if problems:
        print(f"{name}: FAILED ({len(problems)} problem(s)) in {folder}")
    else:
        print(f"{name}: OK  {records:,} records in {len(builder.info.splits)} splits, every shard "
              f"the one prepared, in {folder}")
    return problems


def _verify_shard(path: str, count: int, layout: RecordLayout, split: str) -> None:
    """Reads a TFRecord shard whole, every record checked, and compares its identity; then its
    array_record copy's, if it has one."""
    prepared.check_shard_size(Path(path), count, layout.frame_size, split)
    crcs = np.empty(count, dtype=np.uint32)
    for skip in range(0, count, _PIECE_RECORDS):
        take = min(_PIECE_RECORDS, count - skip)
        prepared.read_records(path, skip, take, count, layout, crcs_out=crcs[skip:skip + take])
    shard_identity.check_records(path, crcs)
    copy = path.replace(f".{TFRECORD.file_suffix}-", f".{ARRAY_RECORD.file_suffix}-")
    if os.path.exists(copy):
        from array_record.python.array_record_module import ArrayRecordReader

        reader = ArrayRecordReader(copy)
        try:
            records = reader.read_all()
        finally:
            reader.close()
        shard_identity.check_records(copy, shard_identity.record_crcs(records))
