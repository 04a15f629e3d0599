"""Prepared records as fixed-size TFRecord frames: their layout, CRC32C checks and cutting.

Every record of a prepared split has the same length and layout (``_prepare.records``), so a run of
``n`` records read straight from a shard is a ``(n, 16 + record_size)`` uint8 array of frames:
uint64 length, masked CRC32C of the length, the record, masked CRC32C of the record. Images and
labels are cut out of it with numpy; nothing is parsed one record at a time.

Checking each record's CRC in a Python loop costs ~1 us a record, more than the rest of the read.
CRC32C is linear, so instead one ``google_crc32c`` pass over the whole run of frames is compared
with the CRC that the stored per-record CRCs imply (combined as zlib's ``crc32_combine`` does, for
all records at once with numpy). Any single damaged record, length, or stored CRC changes that
figure exactly as it changes its own record's CRC; only when it does not match are the records
checked one by one, to name the first bad one.
"""

from __future__ import annotations

import dataclasses
import functools

import google_crc32c
import numpy as np
import tensorflow_datasets as tfds

from emnist_idx._prepare.records import RecordEncoder

FRAMING_BYTES = 16  # 8 length + 4 length CRC before the record, 4 record CRC after it
_HEADER_BYTES = 12
_POLY = 0x82F63B78  # CRC32C, reflected
_MASK_DELTA = 0xA282EAD8
_ALL_ONES = np.uint32(0xFFFFFFFF)


class FrameError(ValueError):
    """A frame that is not the record it should be; the reader adds the shard's name.

    ``index`` is the frame's position in the array checked; ``problem`` follows "record N".
    """

    def __init__(self, index: int, problem: str) -> None:
        self.index, self.problem = int(index), problem
        super().__init__(f"record {self.index} {problem}")


@dataclasses.dataclass(frozen=True)
class RecordLayout:
    """Where the image and the label are in every record of a features spec."""

    record_size: int
    image_shape: tuple[int, ...]
    image_start: int
    label_columns: np.ndarray  # the bytes in which records of different labels differ
    label_keys: np.ndarray  # sorted keys (label bytes, little-endian) ...
    label_values: np.ndarray  # ... and the label each stands for
    fixed_columns: np.ndarray  # every other byte, the same in every record
    fixed_values: np.ndarray

    @property
    def frame_size(self) -> int:
        return self.record_size + FRAMING_BYTES

    @property
    def image_stop(self) -> int:
        return self.image_start + int(np.prod(self.image_shape))

    @classmethod
    def of(cls, features: tfds.features.FeaturesDict) -> RecordLayout:
        """The layout of the records TFDS's serializer writes for ``features``."""
        return _layout_of(features)

    def label_keys_of(self, label_bytes: np.ndarray) -> np.ndarray:
        weights = np.left_shift(1, 8 * np.arange(len(self.label_columns)), dtype=np.int64)
        return label_bytes.astype(np.int64) @ weights


def _layout_of(features: tfds.features.FeaturesDict) -> RecordLayout:
    encoder = RecordEncoder(features)
    num_classes = features["label"].num_classes
    size = int(np.prod(encoder.image_shape))
    probe = (np.arange(size) % 251 + 1).astype(np.uint8).reshape(encoder.image_shape)
    rows = encoder.encode(np.broadcast_to(probe, (num_classes, *encoder.image_shape)),
                          np.arange(num_classes))
    image_start = rows[0].tobytes().find(probe.tobytes())
    label_columns = np.flatnonzero(np.any(rows != rows[0], axis=0))
    fixed = np.ones(encoder.record_size, dtype=bool)
    fixed[image_start:image_start + size] = False
    fixed[label_columns] = False
    layout = RecordLayout(
        record_size=encoder.record_size, image_shape=tuple(encoder.image_shape),
        image_start=image_start, label_columns=label_columns,
        label_keys=np.empty(0, np.int64), label_values=np.empty(0, np.int64),
        fixed_columns=np.flatnonzero(fixed), fixed_values=rows[0, fixed])
    keys = layout.label_keys_of(rows[:, label_columns])
    order = np.argsort(keys)
    if len(np.unique(keys)) != num_classes:  # pragma: no cover - a serializer change
        raise RuntimeError("labels are not told apart by fixed record bytes")
    return dataclasses.replace(layout, label_keys=keys[order], label_values=order.astype(np.int64))


def cut(frames: np.ndarray, layout: RecordLayout, images_out: np.ndarray | None = None
        ) -> tuple[np.ndarray, np.ndarray]:
    """(n, frame_size) frames -> uint8 images (n, *image_shape), int64 labels (n,), once checked.

    The images are copied into ``images_out`` when it is given (and it is returned).

    Raises FrameError for a frame whose length, CRCs or fixed bytes are not what they should be.
    """
    check_frames(frames, layout.record_size)
    records = frames[:, _HEADER_BYTES:_HEADER_BYTES + layout.record_size]
    if not np.array_equal(records[:, layout.fixed_columns],
                          np.broadcast_to(layout.fixed_values, (len(records), len(layout.fixed_values)))):
        bad = np.flatnonzero(np.any(records[:, layout.fixed_columns] != layout.fixed_values, axis=1))
        raise FrameError(bad[0], "is not an image-and-label record of this dataset's features "
                                 "(its fixed bytes differ) although its CRC matches")
    keys = layout.label_keys_of(records[:, layout.label_columns])
    index = np.minimum(np.searchsorted(layout.label_keys, keys), len(layout.label_keys) - 1)
    unknown = np.flatnonzero(layout.label_keys[index] != keys)
    if len(unknown):
        raise FrameError(unknown[0], "holds no valid label although its CRC matches")
    images = records[:, layout.image_start:layout.image_stop].reshape(-1, *layout.image_shape)
    if images_out is None:
        return np.ascontiguousarray(images), layout.label_values[index]
    images_out[...] = images
    return images_out, layout.label_values[index]


def check_frames(frames: np.ndarray, record_size: int) -> None:
    """Checks the lengths and CRC32Cs of a contiguous (n, 16 + record_size) uint8 array of frames."""
    count = len(frames)
    if count == 0:
        return
    header = _expected_header(record_size)
    bad = np.flatnonzero(np.any(frames[:, :_HEADER_BYTES] != header, axis=1))
    if len(bad):
        length = int(frames[bad[0], :8].view("<u8")[0])
        raise FrameError(bad[0], f"has a frame header (length {length:,}) that is not the "
                                 f"{record_size}-byte record frame expected")
    stored = _unmask(np.ascontiguousarray(frames[:, -4:]).view("<u4").reshape(count))
    if google_crc32c.value(np.ascontiguousarray(frames)) != _implied_crc(frames, stored, record_size):
        for index in range(count):
            record = np.ascontiguousarray(frames[index, _HEADER_BYTES:-4])
            if google_crc32c.value(record) != stored[index]:
                raise FrameError(index, f"fails its CRC32C check (stored {int(stored[index]):#010x}, "
                                        f"computed {google_crc32c.value(record):#010x})")
        raise FrameError(0, "and the rest: their CRC32Cs do not add up")  # pragma: no cover


@functools.lru_cache(maxsize=4)
def _expected_header(record_size: int) -> np.ndarray:
    length = np.array([record_size], dtype="<u8").view(np.uint8)
    masked = _mask(np.array([google_crc32c.value(length.tobytes())], dtype=np.uint32))
    return np.concatenate([length, masked.astype("<u4").view(np.uint8)])


def _mask(crc: np.ndarray) -> np.ndarray:
    crc = crc.astype(np.uint64)
    return ((((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF).astype(np.uint32)


def _unmask(masked: np.ndarray) -> np.ndarray:
    rotated = (masked.astype(np.uint64) - _MASK_DELTA) & 0xFFFFFFFF
    return (((rotated >> 17) | (rotated << 15)) & 0xFFFFFFFF).astype(np.uint32)


def _implied_crc(frames: np.ndarray, record_crcs: np.ndarray, record_size: int) -> int:
    """The CRC32C of all the frames' bytes if every record's CRC is ``record_crcs``.

    Per frame: crc(header + record + stored) = combine(combine(crc(header), crc(record)),
    crc(stored)); then all frames are combined pairwise, level by level.
    """
    header_crc = np.uint32(google_crc32c.value(frames[0, :_HEADER_BYTES].tobytes()))
    stored_words = np.ascontiguousarray(frames[:, -4:]).view("<u4").reshape(len(frames))
    # The CRC of 4 bytes w: the register ~0 ^ w pushed through 4 zero bytes, then inverted.
    stored_crcs = _shift(4)(stored_words ^ _ALL_ONES) ^ _ALL_ONES
    crcs = _shift(4)(_shift(record_size)(header_crc) ^ record_crcs) ^ stored_crcs
    length = record_size + FRAMING_BYTES
    tails = []  # (crc, length) of the odd last pieces, rightmost first
    while len(crcs) > 1:
        if len(crcs) % 2:
            tails.append((crcs[-1], length))
            crcs = crcs[:-1]
        crcs = _shift(length)(crcs[0::2]) ^ crcs[1::2]
        length *= 2
    crc = crcs[0]
    for tail, tail_length in reversed(tails):
        crc = _shift(tail_length)(crc) ^ tail
    return int(crc)


class _Shift:
    """Multiplication of CRC32C values by x^(8n): appends n bytes in zlib's crc32_combine."""

    def __init__(self, columns: np.ndarray) -> None:
        self.columns = columns  # the images of the 32 single-bit values
        self._tables = np.stack([_apply(columns, np.arange(256, dtype=np.uint32) << np.uint32(8 * j))
                                 for j in range(4)])

    def __call__(self, values: np.ndarray | np.uint32) -> np.ndarray:
        values = np.asarray(values, dtype=np.uint32)
        tables = self._tables
        return (tables[0][values & 0xFF] ^ tables[1][(values >> 8) & 0xFF]
                ^ tables[2][(values >> 16) & 0xFF] ^ tables[3][values >> 24])


def _apply(columns: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The GF(2)-linear map with these 32 columns applied to each of ``values``."""
    out = np.zeros_like(values, dtype=np.uint32)
    for bit in range(32):
        out ^= np.where((values >> np.uint32(bit)) & 1, columns[bit], np.uint32(0))
    return out


@functools.lru_cache(maxsize=128)
def _shift(num_bytes: int) -> _Shift:
    if num_bytes == 1:
        table = np.arange(256, dtype=np.uint32)
        for _ in range(8):
            table = np.where(table & 1, (table >> 1) ^ np.uint32(_POLY), table >> 1).astype(np.uint32)
        basis = np.uint32(1) << np.arange(32, dtype=np.uint32)
        return _Shift(table[basis & 0xFF] ^ (basis >> 8))
    half = _shift(num_bytes // 2).columns
    columns = _apply(half, half)
    if num_bytes % 2:
        columns = _apply(_shift(1).columns, columns)
    return _Shift(columns)
