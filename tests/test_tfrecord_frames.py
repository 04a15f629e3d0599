"""Bulk TFRecord framing must write exactly what tf.io.TFRecordWriter writes, with either CRC32C
implementation (google-crc32c, and the numpy fallback used where that library is missing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from emnist_idx._prepare import tfrecord_frames
from emnist_idx._prepare.tfrecord_frames import (
    crc32c_implementation,
    crc32c_rows,
    empty_frames,
    frame_records,
    library_crc32c_rows,
    numpy_crc32c_rows,
    record_view,
    seal,
)


@pytest.fixture(params=["google-crc32c", "numpy"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Runs a test once with each CRC32C implementation."""
    if request.param == "numpy":
        monkeypatch.setattr(tfrecord_frames, "_LIBRARY_VALUE", None)
    assert crc32c_implementation() == request.param
    yield request.param


def test_google_crc32c_is_the_default() -> None:
    # setup.cfg requires google-crc32c, so the library path is what a prepare uses.
    assert crc32c_implementation() == "google-crc32c"


def test_crc32c_check_value(implementation: str) -> None:
    # The standard check value of CRC-32C (Castagnoli) is crc("123456789") = 0xE3069283.
    rows = np.frombuffer(b"123456789", dtype=np.uint8)[None, :]
    assert int(crc32c_rows(rows)[0]) == 0xE3069283
    assert int(crc32c_rows(np.zeros((1, 32), np.uint8))[0]) == 0x8A9136AA  # RFC 3720, 32 zeros


@pytest.mark.parametrize("length", [1, 3, 8, 822])
def test_library_and_numpy_agree_on_strided_rows(length: int) -> None:
    block = np.random.default_rng(length).integers(0, 256, size=(50, length + 9), dtype=np.uint8)
    rows = block[:, 5 : 5 + length]  # each row contiguous, rows 9 bytes apart
    expected = numpy_crc32c_rows(np.ascontiguousarray(rows))
    np.testing.assert_array_equal(library_crc32c_rows(rows), expected)
    np.testing.assert_array_equal(numpy_crc32c_rows(rows), expected)
    np.testing.assert_array_equal(library_crc32c_rows(block[:, ::-1][:, :length]),
                                  numpy_crc32c_rows(block[:, ::-1][:, :length]))


@pytest.mark.parametrize("length", [1, 4, 7, 822, 1001])
def test_frames_equal_tfrecordwriter_output(tmp_path: Path, length: int, implementation: str) -> None:
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


def test_frames_filled_in_place_equal_frame_records(implementation: str) -> None:
    rows = np.random.default_rng(7).integers(0, 256, size=(11, 30), dtype=np.uint8)
    frames = empty_frames(11, 30)
    record_view(frames)[...] = rows
    assert seal(frames).tobytes() == frame_records(rows)
    frames[3, 20] ^= 1  # a changed record byte changes that frame's footer only
    before = frames.copy()
    seal(frames)
    changed = np.flatnonzero((frames != before).any(axis=1))
    assert changed.tolist() == [3]
