"""The IDX file format: strict, streaming reads and writes with numpy.

An IDX file is two zero bytes, a type byte, a rank byte ``n``, ``n`` big-endian uint32 sizes, then
the row-major big-endian payload. Files may be gzip-compressed (detected by their magic bytes).
This is the only module that knows the byte layout.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import math
import os
import zlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Union

import numpy as np

from emnist_idx._format.files import MAX_DEFLATE_RATIO, open_regular, stream_size
from emnist_idx.errors import IdxFormatError

try:  # python-isal's igzip decompresses about twice as fast as the standard library.
    from isal import igzip as _gzip_module
    from isal import isal_zlib as _isal_zlib

    _DECOMPRESS_ERRORS: tuple[type[BaseException], ...] = (  # type: ignore[assignment]  # isal: error typed as an instance
        OSError,
        EOFError,
        zlib.error,
        _isal_zlib.error,
    )
except ImportError:  # pragma: no cover - exercised only where isal is not installed
    _gzip_module = gzip  # type: ignore[assignment]
    _DECOMPRESS_ERRORS = (OSError, EOFError, zlib.error)

Source = Union[str, os.PathLike, BinaryIO]

DTYPE_BY_CODE: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_BY_KIND = {(dtype.kind, dtype.itemsize): code for code, dtype in DTYPE_BY_CODE.items()}
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_RANK = 8
_READ_BLOCK = 1 << 22


@dataclasses.dataclass(frozen=True)
class IdxHeader:
    """What an IDX header declares: element type (native byte order) and shape."""

    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """Bytes taken by the header itself."""
        return 4 + 4 * len(self.shape)

    @property
    def record_size(self) -> int:
        """Bytes in one record (one index along the first axis)."""
        return math.prod(self.shape[1:]) * self.dtype.itemsize

    @property
    def payload_size(self) -> int:
        """Bytes of data the header promises after itself."""
        return self.shape[0] * self.record_size

    @property
    def count(self) -> int:
        """Number of records (the first dimension)."""
        return self.shape[0]


def source_name(source: Source) -> str:
    """A printable name for a path or file object, used in every error message."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return str(getattr(source, "name", "<stream>"))


class IdxReader:
    """Reads one IDX file (raw or gzip) record by record, checking it against its header.

    Use as a context manager. ``read(n)`` returns the next ``n`` records as a native-order array;
    ``finish()`` checks that the file holds exactly the promised payload, no less and no more.
    """

    def __init__(self, source: Source, name: str | None = None) -> None:
        self.name = name or source_name(source)
        self._owned: list[BinaryIO] = []
        try:
            self._stream = self._open(source)
            self.header = self._read_header()
            self._records_left = self.header.count
            self._check_size_bound()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> IdxReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the files this reader opened (never a caller's file object)."""
        for stream in reversed(self._owned):
            stream.close()
        self._owned.clear()

    def _open(self, source: Source) -> BinaryIO:
        if isinstance(source, (str, os.PathLike)):
            raw: BinaryIO = open_regular(source)
            self._owned.append(raw)
        else:
            raw = source
        self._compressed_size = stream_size(raw)
        raw, self.is_gzip = _sniff_gzip(raw)
        if not self.is_gzip:
            return raw
        stream = _gzip_module.GzipFile(fileobj=raw, mode="rb")
        self._owned.append(stream)
        return stream

    def _read_exact(self, size: int, what: str) -> bytes:
        data = self._read(size)
        if len(data) != size:
            raise IdxFormatError(
                self.name, f"file ends inside the {what}: expected {size} bytes, found {len(data)}"
            )
        return data

    def _read(self, size: int) -> bytes:
        try:
            return self._stream.read(size)
        except _DECOMPRESS_ERRORS as exc:
            raise IdxFormatError(self.name, f"corrupt or truncated gzip data ({exc})") from exc

    def _readinto(self, view: memoryview) -> int:
        try:
            return self._stream.readinto(view)  # type: ignore[attr-defined]
        except _DECOMPRESS_ERRORS as exc:
            raise IdxFormatError(self.name, f"corrupt or truncated gzip data ({exc})") from exc

    def _read_header(self) -> IdxHeader:
        if self._compressed_size == 0:
            raise IdxFormatError(self.name, "file is empty, expected an IDX header")
        magic = self._read_exact(4, "4-byte magic number")
        if magic[:2] != b"\x00\x00":
            raise IdxFormatError(
                self.name,
                f"bad magic number 0x{magic.hex()}: expected two zero bytes, a type byte and a "
                "rank byte (is this an IDX file?)",
            )
        code, rank = magic[2], magic[3]
        if code not in DTYPE_BY_CODE:
            known = ", ".join(f"0x{c:02X}" for c in DTYPE_BY_CODE)
            raise IdxFormatError(self.name, f"unknown type byte 0x{code:02X}: expected one of {known}")
        if not 1 <= rank <= _MAX_RANK:
            raise IdxFormatError(self.name, f"rank {rank} in the header: expected 1 to {_MAX_RANK}")
        dims = np.frombuffer(self._read_exact(4 * rank, "dimension sizes"), dtype=">u4")
        return IdxHeader(DTYPE_BY_CODE[code].newbyteorder("="), tuple(int(d) for d in dims))

    def _check_size_bound(self) -> None:
        """Rejects headers that promise more than the file can hold, before any allocation."""
        header = self.header
        if self._compressed_size is None:
            return
        if not self.is_gzip:
            found = self._compressed_size - header.size
            if found != header.payload_size:
                raise self._size_error(found)
        elif header.payload_size > MAX_DEFLATE_RATIO * self._compressed_size:
            raise IdxFormatError(
                self.name,
                f"header promises {header.payload_size:,} payload bytes for shape {header.shape}, "
                f"more than a {self._compressed_size:,}-byte gzip file can hold",
            )

    def _size_error(self, found: int) -> IdxFormatError:
        return IdxFormatError(
            self.name,
            f"header promises {self.header.payload_size:,} payload bytes for shape "
            f"{self.header.shape}, file has {found:,}",
        )

    @property
    def records_left(self) -> int:
        """Records not read yet."""
        return self._records_left

    def read(self, count: int | None = None) -> np.ndarray:
        """Returns the next ``count`` records (all that are left by default) in native byte order."""
        header = self.header
        count = self._records_left if count is None else min(count, self._records_left)
        buffer = np.empty(count * header.record_size, dtype=np.uint8)
        view = buffer.data
        filled = 0
        while filled < len(buffer):
            got = self._readinto(view[filled : filled + _READ_BLOCK])
            if not got:
                done = header.payload_size - self._records_left * header.record_size
                raise self._size_error(done + filled)
            filled += got
        self._records_left -= count
        stored = header.dtype.newbyteorder(">") if header.dtype.itemsize > 1 else header.dtype
        array = buffer.view(stored).reshape((count, *header.shape[1:]))
        if stored != header.dtype:
            array = array.byteswap(inplace=True).view(header.dtype)
        return array

    def chunks(self, records_per_chunk: int) -> Iterator[np.ndarray]:
        """Yields the remaining records in chunks, then checks the file ends where promised."""
        if records_per_chunk < 1:
            raise ValueError(f"records_per_chunk must be at least 1, got {records_per_chunk}")
        while self._records_left:
            yield self.read(records_per_chunk)
        self.finish()

    def finish(self) -> None:
        """Checks that all records were read and nothing follows the promised payload."""
        if self._records_left:
            raise ValueError(f"{self.name}: {self._records_left} records were not read")
        extra = 0
        while chunk := self._read(_READ_BLOCK):
            extra += len(chunk)
        if extra:
            raise self._size_error(self.header.payload_size + extra)


def _sniff_gzip(stream: BinaryIO) -> tuple[BinaryIO, bool]:
    """Tells whether a stream starts with gzip's magic bytes, without consuming them."""
    if hasattr(stream, "peek"):
        return stream, stream.peek(2)[:2] == _GZIP_MAGIC
    if stream.seekable():
        position = stream.tell()
        head = stream.read(2)
        stream.seek(position)
        return stream, head == _GZIP_MAGIC
    buffered = io.BufferedReader(stream)  # type: ignore[arg-type,type-var]
    return buffered, buffered.peek(2)[:2] == _GZIP_MAGIC


def read_header(source: Source, name: str | None = None) -> IdxHeader:
    """Returns an IDX file's dtype and shape, checked against the file's size, without its payload."""
    with IdxReader(source, name) as reader:
        return reader.header


def read_idx(source: Source, name: str | None = None) -> np.ndarray:
    """Reads a whole IDX file (raw or gzip) into a native-byte-order array of the header's shape."""
    with IdxReader(source, name) as reader:
        array = reader.read()
        reader.finish()
    return array.reshape(reader.header.shape)


def iter_idx(
    source: Source, records_per_chunk: int = 8192, name: str | None = None
) -> Iterator[np.ndarray]:
    """Streams an IDX file in chunks of whole records; raises IdxFormatError if it is damaged."""
    with IdxReader(source, name) as reader:
        yield from reader.chunks(records_per_chunk)


def encode_header(dtype: np.dtype | type, shape: tuple[int, ...]) -> bytes:
    """The IDX header for an array of ``dtype`` and ``shape`` (also for forging damaged files in tests)."""
    dtype = np.dtype(dtype)
    code = _CODE_BY_KIND.get((dtype.kind, dtype.itemsize))
    if code is None:
        raise TypeError(f"IDX cannot store dtype {dtype}: use uint8, int8, int16, int32, "
                        "float32 or float64")
    if not 1 <= len(shape) <= _MAX_RANK:
        raise ValueError(f"IDX stores arrays of rank 1 to {_MAX_RANK}, got rank {len(shape)}")
    return bytes([0, 0, code, len(shape)]) + np.asarray(shape, dtype=">u4").tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray, compresslevel: int = 6) -> None:
    """Writes ``array`` as an IDX file, gzip-compressed (reproducibly) when ``path`` ends in .gz."""
    array = np.asarray(array)
    write_idx_chunks(path, array.dtype, array.shape, [array], compresslevel)


def write_idx_chunks(path: str | os.PathLike, dtype: np.dtype | type, shape: tuple[int, ...],
                     chunks: Iterable[np.ndarray], compresslevel: int = 6) -> None:
    """Writes an IDX file of ``shape`` from chunks of whole records, in bounded memory.

    Gzip-compressed (reproducibly: no name, no timestamp) when ``path`` ends in .gz. Raises
    ValueError if the chunks do not hold exactly ``shape[0]`` records of ``shape[1:]``.
    """
    header = encode_header(dtype, shape)
    stored = DTYPE_BY_CODE[header[2]]
    path = os.fspath(path)
    with open(path, "wb") as raw:
        if not path.endswith(".gz"):
            _write_records(raw, header, stored, shape, chunks, path)
            return
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=compresslevel, mtime=0,
                           filename="") as stream:
            _write_records(stream, header, stored, shape, chunks, path)


def _write_records(stream: BinaryIO | gzip.GzipFile, header: bytes, stored: np.dtype, shape: tuple[int, ...],
                   chunks: Iterable[np.ndarray], path: str) -> None:
    stream.write(header)
    written = 0
    for chunk in chunks:
        chunk = np.asarray(chunk)
        if chunk.shape[1:] != tuple(shape[1:]):
            raise ValueError(f"{path}: chunk of shape {chunk.shape} does not hold records of "
                             f"shape {tuple(shape[1:])}")
        flat = np.ascontiguousarray(chunk, dtype=stored).reshape(-1).view(np.uint8)
        for start in range(0, len(flat), _READ_BLOCK):
            stream.write(flat[start : start + _READ_BLOCK].data)
        written += len(chunk)
    if written != shape[0]:
        raise ValueError(f"{path}: chunks hold {written} records, the header promises {shape[0]}")
