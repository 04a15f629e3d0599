"""Bulk TFRecord framing must write exactly what tf.io.TFRecordWriter writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from emnist_idx._prepare.tfrecord_frames import crc32c_rows, frame_records


def test_crc32c_check_value() -> None:
    # The standard check value of CRC-32C (Castagnoli) is crc("123456789") = 0xE3069283.
    rows = np.frombuffer(b"123456789", dtype=np.uint8)[None, :]
    assert int(crc32c_rows(rows)[0]) == 0xE3069283
    assert int(crc32c_rows(np.zeros((1, 32), np.uint8))[0]) == 0x8A9136AA  # RFC 3720, 32 zeros


@pytest.mark.parametrize("length", [1, 4, 7, 822, 1001])
def test_frames_equal_tfrecordwriter_output(tmp_path: Path, length: int) -> None:
    rows = np.random.default_rng(length).integers(0, 256, size=(37, length), dtype=np.uint8)
    rows[::5, -1] = 0  # records ending in zero bytes, like label 0
    reference = tmp_path / "reference.tfrecord"
    with tf.io.TFRecordWriter(str(reference)) as writer:
        for row in rows:
            writer.write(row.tobytes())
    assert frame_records(rows) == reference.read_bytes()
    ours = tmp_path / "ours.tfrecord"
    ours.write_bytes(frame_records(rows))
    read_back = [record.numpy() for record in tf.data.TFRecordDataset(str(ours))]
    assert read_back == [row.tobytes() for row in rows]
