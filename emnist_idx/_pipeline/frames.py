"""Prepared records as fixed-size TFRecord frames: their layout, CRC32C checks and cutting.

Every record of a prepared split has the same length and layout (``_prepare.records``), so a run of
``n`` records read straight from a shard is a ``(n, 16 + record_size)`` uint8 array of frames:
uint64 length, masked CRC32C of the length, the record, masked CRC32C of the record. Images and
labels are cut out of it with numpy; nothing is parsed one record at a time.

Checking each record's CRC in a Python loop costs ~1 us a record, more than the rest of the read.
CRC32C is linear, so instead one ``google_crc32c`` pass over the whole run of frames is compared
with the CRC that the stored per-record CRCs imply (combined as zlib's ``crc32_combine`` does, for
all records at once with numpy table lookups). Any single damaged record, length, or stored CRC
changes that figure exactly as it changes its own record's CRC; only when it does not match are the
records checked one by one, to name the first bad one.

A split is read in background threads while ``load()`` builds its pipeline in Python. Every numpy
step on a large array releases the GIL, and taking it back from a busy thread waits
``sys.getswitchinterval()`` (5 ms), so a good piece of records is checked and cut in a fixed,
small number of whole-array steps, whatever its size: beside a busy thread, a piece of 16,384
records takes ~0.1 s, against ~0.5 s for the ~90 steps of a pairwise combination.

Every reader checks frames through this module: ``cut`` (a block: checked, then cut),
``check_frames`` (a block: checked only), ``OneFrame`` (one frame at a time, for random reads) and
``RecordLayout.record_crc`` (one record's CRC32C, for fingerprints). A ``FrameError`` says which
frame and what; the reader names the shard (``prepared.frame_error``).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import google_crc32c
import numpy as np
import tensorflow_datasets as tfds

from emnist_idx._prepare.records import RecordEncoder, feature_entries
from emnist_idx._prepare.tfrecord_frames import (
    FOOTER_SIZE, HEADER_SIZE, MASK_DELTA, crc_byte_table, frame_header, record_crcs, unmasked_crc)

FRAMING_BYTES = HEADER_SIZE + FOOTER_SIZE  # 8 length + 4 length CRC, then 4 record CRC
_HEADER_BYTES = HEADER_SIZE
_ALL_ONES = np.uint32(0xFFFFFFFF)


class FrameError(ValueError):
    """A frame that is not the record it should be; the reader adds the shard's name.

    ``index`` is the frame's position in the array checked; ``problem`` follows "record N".
    """

    def __init__(self, index: int, problem: str) -> None:
        self.index, self.problem = int(index), problem
        super().__init__(f"record {self.index} {problem}")


@dataclasses.dataclass(frozen=True)
class FieldOrder:
    """Where the image and the label are in a record whose fields come in one order."""

    image_start: int
    label_columns: np.ndarray  # the bytes in which records of different labels differ
    label_keys: np.ndarray  # sorted keys (label bytes, little-endian) ...
    label_values: np.ndarray  # ... and the label each stands for
    fixed_columns: np.ndarray  # every other byte, the same in every record
    fixed_values: np.ndarray
    label_table: np.ndarray | None  # label by label byte (-1: none), when the label is one byte

    @classmethod
    def of(cls, rows: np.ndarray, probe: np.ndarray) -> FieldOrder:
        """From one record per label (rows), each holding the image ``probe``."""
        size = probe.size
        image_start = rows[0].tobytes().find(probe.tobytes())
        label_columns = np.flatnonzero(np.any(rows != rows[0], axis=0))
        fixed = np.ones(rows.shape[1], dtype=bool)
        fixed[image_start:image_start + size] = False
        fixed[label_columns] = False
        keys = _label_keys(rows[:, label_columns])
        if image_start < 0 or len(np.unique(keys)) != len(rows):  # pragma: no cover
            raise RuntimeError("records of these features have no fixed layout")
        order = np.argsort(keys)
        table = None
        if len(label_columns) == 1:
            table = np.full(256, -1, dtype=np.int64)
            table[keys] = np.arange(len(keys))
        return cls(image_start=image_start, label_columns=label_columns, label_keys=keys[order],
                   label_values=order.astype(np.int64), fixed_columns=np.flatnonzero(fixed),
                   fixed_values=rows[0, fixed], label_table=table)

    def labels_if_all_valid(self, records: np.ndarray) -> np.ndarray | None:
        """The records' labels if every record has this order's fixed bytes and a label byte
        that is a label, else None: a few whole-array steps, for the usual case."""
        if self.label_table is None:
            return None
        if not (records[:, self.fixed_columns] == self.fixed_values).all():
            return None
        labels = self.label_table[records[:, self.label_columns[0]]]
        return labels if labels.min() >= 0 else None

    def matches(self, records: np.ndarray) -> np.ndarray:
        """Per record: whether its fixed bytes are this order's."""
        return np.all(records[:, self.fixed_columns] == self.fixed_values, axis=1)

    def labels(self, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The records' labels, and the positions of records whose label bytes are no label."""
        keys = _label_keys(records[:, self.label_columns])
        index = np.minimum(np.searchsorted(self.label_keys, keys), len(self.label_keys) - 1)
        return self.label_values[index], np.flatnonzero(self.label_keys[index] != keys)


def _label_keys(label_bytes: np.ndarray) -> np.ndarray:
    weights = np.left_shift(1, 8 * np.arange(label_bytes.shape[1]), dtype=np.int64)
    return label_bytes.astype(np.int64) @ weights


@dataclasses.dataclass(frozen=True)
class RecordLayout:
    """The fixed-size records TFDS's serializer writes for a features spec.

    A ``tf.train.Example`` keeps its features in a protobuf map, whose serialized order depends on
    the writing process (string hashing) for TFDS's writer and for datasets we wrote before fixing
    the order, so records may hold image and label in either order: ``orders`` has each, the one
    our writers use now (sorted keys, ``_prepare/records.py``) first.
    """

    record_size: int
    image_shape: tuple[int, ...]
    orders: tuple[FieldOrder, ...]

    @property
    def frame_size(self) -> int:
        return self.record_size + FRAMING_BYTES

    def record_crc(self, frame: bytes | np.ndarray) -> int:
        """The CRC32C computed over the record inside one frame (not the one stored with it)."""
        return google_crc32c.value(frame[HEADER_SIZE:HEADER_SIZE + self.record_size])

    @classmethod
    def of(cls, features: tfds.features.FeaturesDict) -> RecordLayout:
        """The layout of the records TFDS's serializer writes for ``features``."""
        encoder = RecordEncoder(features)
        num_classes = features["label"].num_classes
        size = int(np.prod(encoder.image_shape))
        probe = (np.arange(size) % 251 + 1).astype(np.uint8).reshape(encoder.image_shape)
        rows = encoder.encode(np.broadcast_to(probe, (num_classes, *encoder.image_shape)),
                              np.arange(num_classes))
        orders = tuple(FieldOrder.of(rows[:, columns], probe)
                       for columns in _field_orders(rows[0].tobytes()))
        return cls(record_size=encoder.record_size, image_shape=tuple(encoder.image_shape),
                   orders=orders)


def _field_orders(record: bytes) -> list[np.ndarray]:
    """Column permutations that rearrange a serialized Example's map entries in every order."""
    start, entries = feature_entries(record)
    spans = [np.arange(entry_start, entry_stop) for entry_start, entry_stop in entries]
    head = np.arange(start)
    return [np.concatenate([head, *ordering]) for ordering in itertools.permutations(spans)]


def cut(frames: np.ndarray, layout: RecordLayout, images_out: np.ndarray | None = None
        ) -> tuple[np.ndarray, np.ndarray]:
    """(n, frame_size) frames -> uint8 images (n, *image_shape), int64 labels (n,), once checked.

    The images are copied into ``images_out`` when it is given (and it is returned).

    Raises FrameError for a frame whose length, CRCs or fixed bytes are not what they should be.
    """
    check_frames(frames, layout.record_size)
    records = frames[:, _HEADER_BYTES:_HEADER_BYTES + layout.record_size]
    if images_out is None:
        images_out = np.empty((len(records), *layout.image_shape), dtype=np.uint8)
    size = int(np.prod(layout.image_shape))
    # Usually every record is in one order, that of the first record: tried at once, whole.
    first_records_orders = [order for order in layout.orders if order.matches(records[:1])[0]]
    for order in first_records_orders:
        labels = order.labels_if_all_valid(records)
        if labels is not None:
            images_out[...] = records[:, order.image_start:order.image_start + size].reshape(
                -1, *layout.image_shape)
            return images_out, labels
    labels = np.empty(len(records), dtype=np.int64)
    remaining = np.arange(len(records))  # records in mixed orders, or one is invalid
    for order in layout.orders:
        part = records if len(remaining) == len(records) else records[remaining]
        matched = order.matches(part)
        rows = part if matched.all() else part[matched]
        chosen = remaining if matched.all() else remaining[matched]
        part_labels, unknown = order.labels(rows)
        if len(unknown):
            raise FrameError(chosen[unknown[0]], "holds no valid label (its CRC matches)")
        images = rows[:, order.image_start:order.image_start + size].reshape(-1, *layout.image_shape)
        if len(chosen) == len(records):
            images_out[...], labels[...] = images, part_labels
            return images_out, labels
        images_out[chosen], labels[chosen] = images, part_labels
        remaining = remaining[~matched]
        if not len(remaining):
            return images_out, labels
    order = layout.orders[0]
    row = remaining[0]
    column = order.fixed_columns[np.flatnonzero(records[row, order.fixed_columns]
                                                != order.fixed_values)[0]]
    raise FrameError(row, f"is not an image-and-label record of this dataset's features: its byte "
                          f"{column} is {records[row, column]}, expected "
                          f"{order.fixed_values[order.fixed_columns == column][0]} (its CRC matches)")


class OneFrame:
    """Checks and cuts one frame at a time, in a few bytes comparisons: for random single reads,
    where ``cut``'s whole-array steps cost more than the frame.

    A record is what TFDS's serializer writes for its label with some image: the bytes around the
    image are the label's template in one of the layout's field orders. Anything else (and any
    frame whose CRC32C fails) goes to ``cut``, which names the problem.
    """

    def __init__(self, layout: RecordLayout) -> None:
        self._layout = layout
        self._shape = layout.image_shape[:2]
        self._record_end = HEADER_SIZE + layout.record_size  # the stored CRC32C follows
        image_size = int(np.prod(layout.image_shape))
        header = frame_header(layout.record_size).tobytes()
        self._orders = [_templates(order, layout.record_size, image_size, header)
                        for order in layout.orders if order.label_table is not None]

    def cut(self, frame: bytes) -> tuple[np.ndarray, int]:
        """``(image (28, 28) uint8, writable, label)`` of one frame, or FrameError."""
        crc = google_crc32c.value(frame[HEADER_SIZE:self._record_end])
        # TFRecord's masked CRC (tfrecord_frames.masked_crc) in Python ints: faster for one value.
        masked = ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + MASK_DELTA) & 0xFFFFFFFF
        if masked == int.from_bytes(frame[self._record_end:], "little"):
            for image_start, image_stop, label_byte, table, heads, tails in self._orders:
                label = table[frame[label_byte]]
                if (label >= 0 and frame.startswith(heads[label])
                        and frame.startswith(tails[label], image_stop, self._record_end)):
                    return np.ndarray(self._shape, np.uint8,
                                      bytearray(frame[image_start:image_stop])), label
        images, labels = cut(np.frombuffer(frame, np.uint8)[None], self._layout)
        return images[0, ..., 0], int(labels[0])  # not reached: cut raises FrameError


def _templates(order: FieldOrder, record_size: int, image_size: int, header: bytes
               ) -> tuple[int, int, int, list[int], list[bytes], list[bytes]]:
    """A one-byte-label field order, in frame positions: (image start and stop, label byte,
    label by that byte's value, and each label's frame bytes before the image (the frame header
    and the record's start) and after it (the record's end and the stored CRC32C))."""
    table = order.label_table
    if table is None:  # pragma: no cover - the caller passes one-byte-label orders only
        raise ValueError("a one-byte-label field order is needed")
    rows = np.zeros((len(order.label_values), record_size), dtype=np.uint8)
    rows[:, order.fixed_columns] = order.fixed_values
    rows[order.label_values, order.label_columns[0]] = order.label_keys
    start = HEADER_SIZE + order.image_start
    stop = start + image_size
    return (start, stop, HEADER_SIZE + int(order.label_columns[0]), table.tolist(),
            [header + row[:order.image_start].tobytes() for row in rows],
            [row[order.image_start + image_size:].tobytes() for row in rows])


def check_frames(frames: np.ndarray, record_size: int) -> None:
    """Checks the lengths and CRC32Cs of a contiguous (n, 16 + record_size) uint8 array of frames.

    About fifteen whole-array steps when every frame is good, whatever n (see the module doc).
    """
    count = len(frames)
    if count == 0:
        return
    header = _expected_header(record_size)
    stored_words = np.ascontiguousarray(frames[:, -4:]).view("<u4").reshape(count)
    if (not (frames[:, :_HEADER_BYTES] == header).all()
            or google_crc32c.value(np.ascontiguousarray(frames))
            != _implied_crc(stored_words, record_size)):
        _raise_first_bad_frame(frames, record_size)


def _raise_first_bad_frame(frames: np.ndarray, record_size: int) -> None:
    """Raises FrameError for the first frame whose header or CRC32C is wrong."""
    header = _expected_header(record_size)
    bad = np.flatnonzero(np.any(frames[:, :_HEADER_BYTES] != header, axis=1))
    if len(bad):
        length = int(frames[bad[0], :8].view("<u8")[0])
        raise FrameError(bad[0], f"has a frame header (length {length:,}) that is not the "
                                 f"{record_size}-byte record frame expected")
    stored = record_crcs(frames)
    for index in range(len(frames)):
        record = np.ascontiguousarray(frames[index, _HEADER_BYTES:-4])
        if google_crc32c.value(record) != stored[index]:
            raise FrameError(index, f"fails its CRC32C check (stored {int(stored[index]):#010x}, "
                                    f"computed {google_crc32c.value(record):#010x})")
    raise FrameError(0, "and the rest: their CRC32Cs do not add up")  # pragma: no cover


_expected_header = functools.lru_cache(maxsize=4)(frame_header)


def _implied_crc(stored_words: np.ndarray, record_size: int) -> int:
    """The CRC32C of n whole frames, each with the expected header, whose stored (masked) record
    CRCs are ``stored_words``, if every record's CRC is the one stored.

    CRC32C is affine. With S the map "append one frame's length of zero bytes" and s4 "append 4",
    frame i (of n) contributes S^(n-1-i) of its own CRC, which is
    ``K ^ s4(record_crc_i ^ stored_word_i)`` (K: the same for every frame, from the header and the
    CRC's initial and final inversions). So the whole is ``s4(sum_i S^(n-1-i)(record_crc_i ^
    stored_word_i)) ^ sum_i S^(n-1-i)(K)``, where sums are XORs: ``_sum_of_powers``.
    """
    linear = _sum_of_powers(unmasked_crc(stored_words) ^ stored_words, record_size + FRAMING_BYTES)
    return int(_shift(4)(linear) ^ _frames_constant(record_size, len(stored_words)))


@functools.lru_cache(maxsize=64)
def _frames_constant(record_size: int, count: int) -> np.uint32:
    """``sum_{k<count} S^k(K)`` of ``_implied_crc``: what the headers and inversions add."""
    header_crc = np.uint32(google_crc32c.value(_expected_header(record_size).tobytes()))
    # K: a frame's CRC when its record's CRC equals its stored word (their XOR adds nothing).
    frame_constant = _shift(4)(_shift(record_size)(header_crc) ^ _ALL_ONES) ^ _ALL_ONES
    return _sum_of_powers(np.full(count, frame_constant, dtype="<u4"), record_size + FRAMING_BYTES)


_POWERS_BLOCK = 128  # values combined per step of _sum_of_powers: 2 steps for up to 16,384 frames


def _sum_of_powers(values: np.ndarray, frame_length: int) -> np.uint32:
    """XOR over i of S^(n-1-i)(values[i]), S appending ``frame_length`` zero bytes.

    Blocks of ``_POWERS_BLOCK`` values are reduced at once: each byte of each value is looked up
    in the byte table of its position's power of S, and the lookups XORed; then the blocks'
    results likewise with the block's power of S, until one value is left. A few whole-array
    steps per level.
    """
    unit = 1  # frames per value at this level
    while True:
        padded = values.astype("<u4", copy=False)
        if len(values) % _POWERS_BLOCK:  # zeros first: they add nothing
            padded = np.concatenate([np.zeros(-len(values) % _POWERS_BLOCK, "<u4"), padded])
        tables, offsets = _power_tables(frame_length * unit)
        lookups = tables.take(padded.view(np.uint8).reshape(-1, _POWERS_BLOCK, 4) + offsets)
        values = np.bitwise_xor.reduce(lookups, axis=(1, 2))
        if len(values) == 1:
            return values[0]
        unit *= _POWERS_BLOCK


@functools.lru_cache(maxsize=16)
def _power_tables(num_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """Byte tables of appending ``k * num_bytes`` zero bytes, for k < ``_POWERS_BLOCK``, flat,
    and each (position in a block, byte of the value)'s offset into them.

    Entry ``(k * 4 + j) * 256 + v`` is the image of ``v << 8j``; a block's last value gets k = 0.
    """
    columns = _power_columns(num_bytes)  # (k, bit): the image of the single bit
    tables = np.zeros((_POWERS_BLOCK, 4, 1), dtype=np.uint32)
    for bit in range(8):  # entries with this bit of the byte set follow those without
        tables = np.concatenate(
            [tables, tables ^ columns[:, bit::8][:, :, None]], axis=2)
    positions = np.arange(_POWERS_BLOCK - 1, -1, -1)[:, None] * 4 + np.arange(4)
    return tables.reshape(-1), (positions * 256).astype(np.intp)


@functools.lru_cache(maxsize=16)
def _power_columns(num_bytes: int) -> np.ndarray:
    """(_POWERS_BLOCK, 32) uint32: row k holds the images of the 32 single-bit values under
    appending ``k * num_bytes`` zero bytes."""
    rows = (np.uint32(1) << _BITS)[None, :]  # k = 0: the identity
    while len(rows) < _POWERS_BLOCK:
        rows = np.concatenate([rows, _apply(_shift(num_bytes * len(rows)).columns, rows)])
    return rows


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


_BITS = np.arange(32, dtype=np.uint32)


def _apply(columns: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The GF(2)-linear map with these 32 columns applied to each of ``values``."""
    bits = (np.asarray(values, dtype=np.uint32)[..., None] >> _BITS) & 1
    return np.bitwise_xor.reduce(np.where(bits == 1, columns, np.uint32(0)), axis=-1)


@functools.lru_cache(maxsize=128)
def _shift(num_bytes: int) -> _Shift:
    if num_bytes == 1:
        table = crc_byte_table()
        basis = np.uint32(1) << np.arange(32, dtype=np.uint32)
        return _Shift(table[basis & 0xFF] ^ (basis >> 8))
    half = _shift(num_bytes // 2).columns
    columns = _apply(half, half)
    if num_bytes % 2:
        columns = _apply(_shift(1).columns, columns)
    return _Shift(columns)
