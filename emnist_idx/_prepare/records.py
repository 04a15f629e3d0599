"""Serializing whole batches of examples into the exact records TFDS writes.

TFDS turns each example into a ``tf.train.Example`` one at a time in Python (~25 us each). For
fixed-size uint8 images and small class ids every record has the same length and layout, so we ask
TFDS's own serializer for one record per class and fill in the image bytes for a whole batch with
numpy.

Field order: a ``tf.train.Example`` keeps its features in a protobuf map, and TFDS serializes it
without ``deterministic=True``, so TFDS's own writer puts "image" or "label" first depending on the
writing process's string hash seed. Our records always have the map's keys sorted (protobuf's
deterministic serialization: "image" before "label"), so every writer of ours (bulk, Beam, any
process, any machine) writes the same bytes; they equal TFDS's record whenever TFDS happens to pick
that order. Readers accept both orders (``_pipeline/frames.py``).
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds


class RecordEncoder:
    """Encodes (images, labels) batches into serialized ``tf.train.Example`` rows."""

    def __init__(self, features: tfds.features.FeaturesDict, image_key: str = "image",
                 label_key: str = "label") -> None:
        self._features = features
        self._image_key = image_key
        self._label_key = label_key
        self._serializer = tfds.core.ExampleSerializer(features.get_serialized_info())
        image_feature = features[image_key]
        self.image_shape = tuple(image_feature.shape)
        num_classes = features[label_key].num_classes
        # A probe image whose bytes cannot be confused with the rest of the record.
        image_size = int(np.prod(self.image_shape))
        probe = (np.arange(image_size) % 251 + 1).astype(np.uint8).reshape(self.image_shape)
        records = [self.encode_one(probe, label) for label in range(num_classes)]
        offsets = {record.find(probe.tobytes()) for record in records}
        lengths = {len(record) for record in records}
        if len(offsets) != 1 or len(lengths) != 1 or -1 in offsets:
            raise RuntimeError("records of this feature spec have no fixed layout; cannot bulk-encode")
        self.record_size = lengths.pop()
        image_offset = offsets.pop()
        self._image_slice = slice(image_offset, image_offset + image_size)
        self._templates = np.frombuffer(b"".join(records), dtype=np.uint8).reshape(
            num_classes, self.record_size
        )
        self._prefixes = self._templates[:, : self._image_slice.start].copy()
        self._suffixes = self._templates[:, self._image_slice.stop :].copy()

    def encode_one(self, image: np.ndarray, label: int) -> bytes:
        """One record through TFDS's own encode and serialize path (the reference), its fields in
        the one fixed order (sorted keys) whatever the process's hash seed."""
        return fixed_order(self.encode_one_as_tfds(image, label))

    def encode_one_as_tfds(self, image: np.ndarray, label: int) -> bytes:
        """One record exactly as TFDS's own writer serializes it in this process (field order
        following the hash seed)."""
        example = {self._image_key: image, self._label_key: label}
        return self._serializer.serialize_example(self._features.encode_example(example))

    def encode(self, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Returns a (N, record_size) uint8 array, row i the record of (images[i], labels[i]).

        ``images`` may be any (N, ...) uint8 array or view (a transposed view is copied once).
        """
        rows = np.empty((len(labels), self.record_size), dtype=np.uint8)
        return self.encode_into(rows, images, labels)

    def encode_into(self, rows: np.ndarray, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Fills ``rows`` (a (N, record_size) uint8 array or strided view, e.g. the records inside
        TFRecord frames) with the records of ``images`` and ``labels``; returns ``rows``.

        Each byte is written once: the bytes around the image come from the label's template, the
        image bytes straight from ``images`` (a transposed view is transposed during the copy).
        """
        count = len(labels)
        if rows.shape != (count, self.record_size):
            raise ValueError(f"rows of shape {rows.shape} cannot hold {count} records of "
                             f"{self.record_size} bytes")
        start, stop = self._image_slice.start, self._image_slice.stop
        rows[:, :start] = self._prefixes[labels]
        rows[:, stop:] = self._suffixes[labels]
        # A view into rows: the image bytes are contiguous within each row, so this needs no copy.
        pixels = rows[:, start:stop].reshape((count, *self.image_shape))
        if not np.shares_memory(pixels, rows):  # pragma: no cover - numpy guarantees the view
            raise RuntimeError("image slice is not a view of the record rows")
        pixels[...] = images.reshape(pixels.shape)
        return rows


def fixed_order(record: bytes) -> bytes:
    """A serialized ``tf.train.Example`` with its feature map's entries sorted by key, as
    protobuf's deterministic serialization writes them (no TensorFlow needed)."""
    start, spans = feature_entries(record)
    entries = sorted((_entry_key(record, span), record[span[0]:span[1]]) for span in spans)
    return record[:start] + b"".join(entry for _, entry in entries)


def feature_entries(record: bytes) -> tuple[int, list[tuple[int, int]]]:
    """Where a serialized Example's feature map entries start, and each entry's (start, stop)."""
    start = _varint_end(record, 1)  # field 1 (features), then its length
    spans = []
    position = start
    while position < len(record):
        length_end = _varint_end(record, position + 1)  # each map entry: field 1, length
        stop = length_end + _varint(record[position + 1:length_end])
        spans.append((position, stop))
        position = stop
    return start, spans


def _entry_key(record: bytes, span: tuple[int, int]) -> bytes:
    """The key of the map entry at ``span``: its field 1 (tag, length, bytes)."""
    body = _varint_end(record, span[0] + 1)
    key_start = _varint_end(record, body + 1)
    return record[key_start:key_start + _varint(record[body + 1:key_start])]


def _varint_end(data: bytes, position: int) -> int:
    while data[position] & 0x80:
        position += 1
    return position + 1


def _varint(data: bytes) -> int:
    return sum((byte & 0x7F) << (7 * index) for index, byte in enumerate(data))
