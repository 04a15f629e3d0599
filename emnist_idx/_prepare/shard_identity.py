"""Each prepared shard's identity: recorded at prepare, checked whenever a shard is read.

A shard's identity is its record count, the CRC32C of its first and of its last record, and the
sha256 of the little-endian uint32 array of all its records' CRC32Cs. It depends on the records
alone, so a TFRecord shard and its array_record copy share it. A prepare writes one identity per
shard into ``metadata.json`` under ``"shards"`` (``{split: [identity of shard 0, ...]}``), beside
the split's other facts that TFDS keeps there, inside the folder TFDS renames into place: the
manifest appears with the shards, on every prepare path, and TFDS's readers ignore it.

Readers check it: whole-split reads compare the full digest (from the CRCs they check anyway),
readers that open single shards the fingerprint (count, first and last CRC). A shard swapped with
another, copied from another config or left from an older prepare then raises PreparedDataError
naming it. The manifest sits beside the shards: it catches mix-ups and stale copies, not someone
who rewrites both. Datasets prepared before the manifest are read unchecked, with one note per
process and version folder.

This module imports neither TensorFlow nor TFDS.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path

import google_crc32c
import numpy as np

from emnist_idx._prepare.tfrecord_frames import FOOTER_SIZE, HEADER_SIZE
from emnist_idx import configs
from emnist_idx._format import storage
from emnist_idx.errors import PreparedDataError

METADATA = "metadata.json"
MANIFEST_KEY = "shards"
# TFDS's default shard name: <dataset>-<split>.<file format>-<index>-of-<count>
_SHARD_NAME = re.compile(r"^.+-(?P<split>[^.]+)\.[a-z_]+-(?P<index>\d{5})-of-(?P<count>\d{5})$")
_log = logging.getLogger("emnist_idx")
_noted: set[str] = set()  # version folders without a manifest, noted once per process
_noted_lock = threading.Lock()


@dataclasses.dataclass(frozen=True)
class ShardIdentity:
    """What one shard's records are: how many, the first's and last's CRC32C, and the sha256 of
    all their CRC32Cs (little-endian uint32). An empty shard has no first or last CRC."""

    count: int
    first_crc: int | None
    last_crc: int | None
    sha256: str

    @classmethod
    def of(cls, crcs: np.ndarray) -> ShardIdentity:
        """The identity of a shard whose records have these CRC32Cs, in order."""
        digest = ShardDigest()
        digest.add(crcs)
        return digest.identity()

    def as_json(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> tuple[int, int | None, int | None]:
        return self.count, self.first_crc, self.last_crc


class ShardDigest:
    """A shard's identity, built from its records' CRC32Cs as they are written, in order."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._count = 0
        self._first: int | None = None
        self._last: int | None = None

    def add(self, crcs: np.ndarray) -> None:
        if not len(crcs):
            return
        words = np.ascontiguousarray(crcs, dtype="<u4")
        self._hash.update(words.data)
        if self._first is None:
            self._first = int(words[0])
        self._last = int(words[-1])
        self._count += len(words)

    def identity(self) -> ShardIdentity:
        return ShardIdentity(self._count, self._first, self._last, self._hash.hexdigest())


def manifest(identities: dict[str, list[ShardIdentity]]) -> dict[str, list[dict[str, object]]]:
    """The ``"shards"`` entry of metadata.json: each split's identities, in shard order."""
    return {split: [identity.as_json() for identity in shards]
            for split, shards in identities.items()}


class Manifests:
    """The manifests of the version folders one check reads, each folder's metadata.json read and
    parsed once (a whole-split read or a shard loop checks many shards of one folder). Held only
    as long as that check, so a dataset prepared again is seen by the next one. Thread-safe: two
    threads may both read a folder's manifest the first time; both get the same content."""

    def __init__(self) -> None:
        self._by_folder: dict[str, dict[str, object] | None] = {}

    def expected(self, shard: str | os.PathLike[str]) -> ShardIdentity | None:
        """``expected_identity`` of ``shard``, from its folder's manifest as first read here."""
        shard_path = storage.path(shard)
        folder = shard_path.parent
        key = os.fspath(folder)
        if key not in self._by_folder:
            self._by_folder[key] = _read_manifest(folder)
        shards = self._by_folder[key]
        if shards is None:
            return None
        metadata = folder / METADATA
        match = _SHARD_NAME.match(shard_path.name)
        if match is None:
            raise PreparedDataError(shard_path, f"is not named as TFDS names shards, so {METADATA} "
                                                "cannot say what it holds", configs.rebuild_command(folder))
        split, index, count = match["split"], int(match["index"]), int(match["count"])
        entries = shards.get(split)
        if not isinstance(entries, list) or len(entries) != count:
            found = f"{len(entries)} shard(s)" if isinstance(entries, list) else "nothing"
            raise PreparedDataError(metadata, f"lists {found} for split {split!r}, but "
                                              f"{shard_path.name} is shard {index} of {count}",
                                    configs.rebuild_command(folder))
        return _identity_from_json(entries[index], metadata, f"{split}[{index}]")


def expected_identity(shard: str | os.PathLike[str], manifests: Manifests | None = None
                      ) -> ShardIdentity | None:
    """The identity the manifest beside ``shard`` records for it; None (after a note, once per
    process and folder) if the dataset was prepared before manifests.

    ``shard`` has TFDS's default name, ``<dataset>-<split>.<format>-<index>-of-<count>``.
    ``manifests``: the check's manifests read so far (default: metadata.json is read now).
    Raises PreparedDataError naming metadata.json when it is unreadable or lists no such shard.
    """
    return (manifests or Manifests()).expected(shard)


def check_records(shard: str | os.PathLike[str], crcs: np.ndarray,
                  manifests: Manifests | None = None) -> None:
    """Checks a whole shard: ``crcs`` are its records' CRC32Cs, all of them, in order.

    Raises PreparedDataError naming the shard when they are not the records the prepare wrote.
    """
    expected = expected_identity(shard, manifests)
    if expected is None:
        return
    found = ShardIdentity.of(crcs)
    if found != expected:
        _raise_mismatch(shard, expected, found)


def check_fingerprint(shard: str | os.PathLike[str], count: int, first_crc: int | None,
                      last_crc: int | None, manifests: Manifests | None = None) -> None:
    """The cheap check of a shard: its record count and its first and last record's CRC32C.

    Raises PreparedDataError naming the shard when they are not those the prepare wrote.
    """
    expected = expected_identity(shard, manifests)
    if expected is None:
        return
    if expected.fingerprint() != (count, first_crc, last_crc):
        _raise_mismatch(shard, expected, ShardIdentity(count, first_crc, last_crc, "not computed"))


def check_read(shard: str | os.PathLike[str], skip: int, crcs: np.ndarray,
               shard_records: int, manifests: Manifests | None = None) -> None:
    """Checks records ``skip`` to ``skip + len(crcs)`` of a shard of ``shard_records`` records, read
    in one go: the full digest when that is all of them, else the count and whichever of the first
    and last record is among them."""
    if skip == 0 and len(crcs) == shard_records:
        check_records(shard, crcs, manifests)
        return
    expected = expected_identity(shard, manifests)
    if expected is None:
        return
    first = int(crcs[0]) if skip == 0 and len(crcs) else expected.first_crc
    last = int(crcs[-1]) if skip + len(crcs) == shard_records and len(crcs) else expected.last_crc
    if expected.fingerprint() != (shard_records, first, last):
        _raise_mismatch(shard, expected, ShardIdentity(shard_records, first, last, "not computed"))


class ShardReads:
    """Checks shards read piece by piece, in any order and from any thread: each piece as it is
    read (``check_read``), and a shard's full digest once all its records were read. Each version
    folder's manifest is read once, when its first piece is checked."""

    def __init__(self, manifests: Manifests | None = None) -> None:
        self._manifests = manifests or Manifests()
        self._lock = threading.Lock()
        self._pieces: dict[str, dict[int, np.ndarray]] = {}  # shard -> skip -> CRCs
        self._checked: set[str] = set()  # shards whose digest matched

    def add(self, shard: str | os.PathLike[str], skip: int, crcs: np.ndarray,
            shard_records: int) -> None:
        """Records ``skip`` to ``skip + len(crcs)`` of ``shard`` were read; raises
        PreparedDataError as soon as they, or the whole shard, are not the ones prepared."""
        check_read(shard, skip, crcs, shard_records, self._manifests)
        key = os.fspath(shard)
        if len(crcs) == shard_records:
            return
        with self._lock:
            if key in self._checked:
                return
            pieces = self._pieces.setdefault(key, {})
            pieces[skip] = np.array(crcs, dtype=np.uint32)
            if sum(len(piece) for piece in pieces.values()) < shard_records:
                return
            whole = np.concatenate([pieces[start] for start in sorted(pieces)])
            del self._pieces[key]
        check_records(shard, whole, self._manifests)
        with self._lock:
            self._checked.add(key)


def check_tfrecord_fingerprint(shard: str | os.PathLike[str], count: int, record_size: int,
                               manifests: Manifests | None = None) -> None:
    """``check_fingerprint`` of a TFRecord shard of ``count`` records of ``record_size`` bytes each,
    from two small reads (its first and last record)."""
    frame_size = HEADER_SIZE + record_size + FOOTER_SIZE
    records = []
    try:
        with storage.open_for_reading(shard) as stream:
            for index in sorted({0, count - 1}) if count else ():
                stream.seek(index * frame_size + HEADER_SIZE)
                records.append(stream.read(record_size))
    except OSError as exc:
        raise PreparedDataError(shard, f"cannot be read ({exc.strerror or exc})",
                                configs.rebuild_command(storage.path(shard).parent)) from exc
    crcs = [google_crc32c.value(record) for record in records]
    if any(len(record) != record_size for record in records):
        crcs = [None, None]  # shorter than dataset_info.json says: not the shard prepared
    check_fingerprint(shard, count, crcs[0] if crcs else None, crcs[-1] if crcs else None,
                      manifests)


def _raise_mismatch(shard: str | os.PathLike[str], expected: ShardIdentity,
                    found: ShardIdentity) -> None:
    shard_path = storage.path(shard)
    raise PreparedDataError(
        shard_path, f"does not hold the records this dataset was prepared with ({METADATA} records "
               f"{_describe(expected)}; the shard has {_describe(found)}): a shard swapped with "
               "another, copied from another dataset or left from an older prepare",
        configs.rebuild_command(shard_path.parent))


def _describe(identity: ShardIdentity) -> str:
    crcs = (f"first CRC32C {identity.first_crc:#010x}, last {identity.last_crc:#010x}"
            if identity.first_crc is not None and identity.last_crc is not None else "no records")
    return f"{identity.count:,} records, {crcs}, digest {identity.sha256[:16]}"


def _read_manifest(folder: Path) -> dict[str, object] | None:
    metadata = folder / METADATA
    try:
        content = json.loads(metadata.read_bytes())
    except FileNotFoundError:  # not a prepared folder (the readers that need one check that)
        content = {}
    except (OSError, ValueError) as exc:
        raise PreparedDataError(metadata, f"cannot be read as JSON ({exc})",
                                configs.rebuild_command(folder)) from exc
    shards = content.get(MANIFEST_KEY) if isinstance(content, dict) else None
    if shards is None:
        _note_unchecked(folder)
        return None
    if not isinstance(shards, dict):
        raise PreparedDataError(metadata, f"has a {MANIFEST_KEY!r} entry that is a JSON "
                                          f"{type(shards).__name__}, not an object of splits",
                                configs.rebuild_command(folder))
    return shards


def _identity_from_json(entry: object, metadata: Path, where: str) -> ShardIdentity:
    fields = {field.name for field in dataclasses.fields(ShardIdentity)}
    crc = (lambda value: value is None or (type(value) is int and 0 <= value < 2**32))
    if (not isinstance(entry, dict) or set(entry) != fields or type(entry["count"]) is not int
            or entry["count"] < 0 or not crc(entry["first_crc"]) or not crc(entry["last_crc"])
            or not isinstance(entry["sha256"], str) or len(entry["sha256"]) != 64):
        raise PreparedDataError(metadata, f"{MANIFEST_KEY}.{where} is not a shard identity "
                                          f"({', '.join(sorted(fields))}); found {entry!r}",
                                configs.rebuild_command(metadata.parent))
    return ShardIdentity(**entry)


def _note_unchecked(folder: Path) -> None:
    key = os.fspath(folder)
    with _noted_lock:
        if key in _noted:
            return
        _noted.add(key)
    _log.warning("%s was prepared before emnist_idx recorded each shard's identity: its shards' "
                 "sizes and CRCs are checked, but not that each is the shard it should be "
                 "(prepare it again to add that check)", key)


def record_crcs(records: Iterable[bytes]) -> np.ndarray:
    """Each record's CRC32C, in order (one call per record)."""
    return np.fromiter((google_crc32c.value(record) for record in records), dtype=np.uint32)


def identity_of_records(records: Iterable[bytes]) -> ShardIdentity:
    """The identity of a shard holding ``records``, in order."""
    return ShardIdentity.of(record_crcs(records))
