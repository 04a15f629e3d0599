"""TFRecord framing for whole batches of equal-length records, vectorized with numpy.

A TFRecord file is a sequence of frames: uint64 length, masked CRC32C of the length, the record,
masked CRC32C of the record (all little-endian). ``tf.io.TFRecordWriter`` frames one record per
Python call (~6 us each here, the largest cost of a prepare); this module frames a whole chunk in a
few numpy passes. The bytes are identical to TFRecordWriter's (tests compare the two).
"""

from __future__ import annotations

import numpy as np

_CASTAGNOLI = 0x82F63B78  # CRC32C polynomial, reflected
_MASK_DELTA = 0xA282EAD8


def _crc_tables() -> np.ndarray:
    """Slicing-by-4 tables: row k maps a byte to its CRC after k more zero bytes."""
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_CASTAGNOLI), table >> 1).astype(np.uint32)
    tables = [table]
    for _ in range(3):
        previous = tables[-1]
        tables.append((previous >> 8) ^ table[previous & 0xFF])
    return np.stack(tables)


_TABLES = _crc_tables()


def crc32c_rows(rows: np.ndarray) -> np.ndarray:
    """CRC32C of each row of a (N, L) uint8 array, all rows at once."""
    count, length = rows.shape
    crc = np.full(count, 0xFFFFFFFF, dtype=np.uint32)
    whole = length // 4 * 4
    # One contiguous column of little-endian words per step keeps the table lookups cache-friendly.
    words = np.ascontiguousarray(rows[:, :whole]).view("<u4").T.copy()
    mixed = np.empty(count, dtype=np.uint32)
    index = np.empty(count, dtype=np.uint32)
    for word in words:
        np.bitwise_xor(crc, word, out=mixed)
        np.bitwise_and(mixed, 0xFF, out=index)
        crc = _TABLES[3].take(index)
        for shift, table in ((8, _TABLES[2]), (16, _TABLES[1])):
            np.right_shift(mixed, shift, out=index)
            np.bitwise_and(index, 0xFF, out=index)
            crc ^= table.take(index)
        np.right_shift(mixed, 24, out=index)
        crc ^= _TABLES[0].take(index)
    for column in range(whole, length):
        crc = _TABLES[0].take((crc ^ rows[:, column]) & 0xFF) ^ (crc >> 8)
    return crc ^ np.uint32(0xFFFFFFFF)


def _masked(crc: np.ndarray) -> np.ndarray:
    crc = crc.astype(np.uint64)
    return ((((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF).astype("<u4")


def frame_records(rows: np.ndarray) -> bytes:
    """The TFRecord file bytes for the records in the rows of a (N, L) uint8 array."""
    count, length = rows.shape
    frames = np.empty((count, 8 + 4 + length + 4), dtype=np.uint8)
    length_bytes = np.array([length], dtype="<u8").view(np.uint8)
    frames[:, :8] = length_bytes
    frames[:, 8:12] = _masked(crc32c_rows(length_bytes[None, :])).view(np.uint8)
    frames[:, 12 : 12 + length] = rows
    frames[:, 12 + length :] = _masked(crc32c_rows(rows)).view(np.uint8).reshape(count, 4)
    return frames.tobytes()
