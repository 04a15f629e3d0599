"""Reading images ``start:stop`` of an images file without decompressing the images before them.

A Beam worker writes one shard. Streaming its gzip images file from the start and dropping the
images before its own makes 8 shards cost ~4.5 passes over the file; instead the driver builds a
seek index of each gzip images file once (indexed_gzip: a seek point every 16 MiB of output, ~1 MB
and ~1.8 s for full-size byclass train) and each worker seeks straight to its first image. Raw
IDX files are seeked directly. A zip member that is stored (NIST's gzip.zip stores its .gz files)
is read as a byte range of the zip; a deflated member has no random access and is streamed from its
start, as before; so is every gzip file where indexed_gzip (the ``beam`` extra) is not installed.
"""

from __future__ import annotations

import contextlib
import io
import struct
import zipfile
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np

from emnist_idx._format.files import open_regular
from emnist_idx._format.sources import SourceFile
from emnist_idx._prepare import checks
from emnist_idx.errors import IdxFormatError

SEEK_POINT_SPACING = 16 << 20  # bytes of decompressed output between two seek points
_IMAGE_BYTES = 28 * 28
_GZIP_MAGIC = b"\x1f\x8b"
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., file name length, extra field length


def gzip_index(source: SourceFile) -> bytes | None:
    """The exported seek index of a gzip file; None for a raw file (it needs none) or a deflated
    zip member (it cannot use one)."""
    try:
        import indexed_gzip
    except ImportError:
        return None
    with _seekable(source) as raw:
        if raw is None or raw.read(2) != _GZIP_MAGIC:
            return None
        raw.seek(0)
        with indexed_gzip.IndexedGzipFile(fileobj=raw, spacing=SEEK_POINT_SPACING,
                                          drop_handles=False) as stream:
            stream.build_full_index()
            exported = io.BytesIO()
            stream.export_index(fileobj=exported)
    return exported.getvalue()


def iter_upright_range(source: SourceFile, index: bytes | None, header_size: int, start: int,
                       stop: int, records_per_chunk: int) -> Iterator[np.ndarray]:
    """Upright (k, 28, 28) uint8 chunks of images ``start:stop`` of a checked images file whose
    header is ``header_size`` bytes; ``index`` is ``gzip_index(source)``."""
    with _seekable(source) as raw:
        if raw is None or (index is None and raw.read(2) == _GZIP_MAGIC):  # no random access
            yield from checks.iter_upright(source, start, stop, records_per_chunk)
            return
        with _decompressed(raw, index) as stream:  # the seek is absolute: read(2) does not matter
            stream.seek(header_size + start * _IMAGE_BYTES)
            position = start
            while position < stop:
                count = min(records_per_chunk, stop - position)
                data = stream.read(count * _IMAGE_BYTES)
                if len(data) != count * _IMAGE_BYTES:
                    found = position + len(data) // _IMAGE_BYTES
                    raise IdxFormatError(source.name, f"file ends inside image {found}: expected "
                                                      f"{stop} images after the header")
                yield np.frombuffer(data, np.uint8).reshape(count, 28, 28).transpose(0, 2, 1)
                position += count



@contextlib.contextmanager
def _decompressed(raw: BinaryIO, index: bytes | None) -> Iterator[BinaryIO]:
    if index is None:
        yield raw
        return
    import indexed_gzip

    with indexed_gzip.IndexedGzipFile(fileobj=raw, drop_handles=False) as stream:
        stream.import_index(fileobj=io.BytesIO(index))
        yield stream


@contextlib.contextmanager
def _seekable(source: SourceFile) -> Iterator[BinaryIO | None]:
    """The file's raw bytes as a seekable stream at their start; None for a deflated member."""
    with open_regular(source.path) as raw:
        if source.member is None:
            yield raw
            return
        info = zipfile.ZipFile(raw).getinfo(source.member)
        if info.compress_type != zipfile.ZIP_STORED:
            yield None
            return
        raw.seek(info.header_offset)
        signature, name_length, extra_length = _LOCAL_HEADER.unpack(raw.read(_LOCAL_HEADER.size))
        if signature != b"PK\x03\x04":
            raise IdxFormatError(source.name, f"no zip local header at byte {info.header_offset}")
        start = info.header_offset + _LOCAL_HEADER.size + name_length + extra_length
        yield io.BufferedReader(_ByteRange(raw, start, info.compress_size), 1 << 20)


class _ByteRange(io.RawIOBase):
    """Bytes ``start:start + size`` of a seekable file, as a seekable file of their own."""

    def __init__(self, file: Any, start: int, size: int) -> None:  # a binary file with readinto
        super().__init__()
        self._file, self._start, self._size, self._position = file, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")[: max(0, self._size - self._position)]
        self._file.seek(self._start + self._position)
        got = self._file.readinto(view)
        self._position += got
        return got
