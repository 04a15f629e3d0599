"""Opening input files safely: regular files only, zip members bounded by what they declare.

A FIFO or device named like an IDX file would block a reader forever (or stream without end), and
a zip member's declared sizes are what bound every later size check: both are settled here, before
a byte of payload is read. Files given as URLs (``gs://...``) are objects, never FIFOs or devices:
they are opened through ``storage`` (etils.epath), seekable, so zip members stream from them too.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
import zlib
from typing import BinaryIO, cast

from emnist_idx._format import storage
from emnist_idx.errors import IdxFormatError

# Deflate cannot expand data by more than ~1032:1: a member declaring more is lying.
MAX_DEFLATE_RATIO = 1032
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_METHOD_NAMES = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA", 9: "Deflate64", 6: "implode"}
_MEMBER_ERRORS = (zipfile.BadZipFile, EOFError, OSError, zlib.error)


def file_kind(mode: int) -> str:
    """What a non-regular file is, for messages: "a directory", "a FIFO", ..."""
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def check_regular(path: str | os.PathLike[str]) -> None:
    """Raises IdxFormatError unless ``path`` is a regular file (symlinks to one are fine).

    Raises FileNotFoundError (naming the path) when nothing is there.
    """
    if not storage.is_local(path):
        _check_object(path)
        return
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise IdxFormatError(path, f"is {file_kind(mode)}, expected a regular file")


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Opens a regular file for binary reads; anything else gets IdxFormatError at once, never a hang."""
    check_regular(path)
    if not storage.is_local(path):
        return storage.open_for_reading(path)
    # O_NONBLOCK: if the path became a FIFO since the stat, open returns instead of waiting.
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            raise IdxFormatError(path, f"is {file_kind(mode)}, expected a regular file")
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def _check_object(url: str | os.PathLike[str]) -> None:
    location = storage.path(url)
    if location.is_dir():
        raise IdxFormatError(url, "is a folder, expected a file")
    if not location.exists():
        raise FileNotFoundError(f"{os.fspath(url)}: no such file")


def check_member(info: zipfile.ZipInfo, name: str) -> None:
    """A member must be unencrypted, stored or deflated, and declare sizes deflate can produce."""
    if info.flag_bits & 0x1:
        raise IdxFormatError(name, "zip member is encrypted: extract it with its password first")
    if info.compress_type not in _METHODS:
        method = _METHOD_NAMES.get(info.compress_type, "unknown")
        raise IdxFormatError(
            name, f"zip member uses compression method {info.compress_type} ({method}): expected "
                  "stored (0) or deflated (8); re-zip the files or extract them")
    bound = info.compress_size * (MAX_DEFLATE_RATIO if info.compress_type == zipfile.ZIP_DEFLATED
                                  else 1)
    if info.file_size > bound:
        raise IdxFormatError(
            name, f"zip member declares {info.file_size:,} bytes from {info.compress_size:,} "
                  f"{_METHODS[info.compress_type]} bytes, more than that can hold")


class MemberStream(io.RawIOBase):
    """A zip member read as a stream of exactly its declared size, with zip errors named as ours."""

    def __init__(self, stream: io.BufferedIOBase, size: int, name: str) -> None:
        super().__init__()
        self._stream = stream
        self.size = size  # bytes this stream yields, declared by the zip and enforced here
        self.name = name
        self._left = size

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size - self._left

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        try:
            got = self._stream.readinto(view[: max(0, min(len(view), self._left + 1))])
        except _MEMBER_ERRORS as exc:
            raise IdxFormatError(self.name, f"corrupt zip member ({type(exc).__name__}: {exc})") from exc
        self._left -= got
        if self._left < 0:
            raise IdxFormatError(self.name, f"zip member holds more than the {self.size:,} bytes "
                                            "it declares")
        return got

    def close(self) -> None:
        self._stream.close()
        super().close()


def open_member(bundle: zipfile.ZipFile, member: str, name: str) -> BinaryIO:
    """Opens a checked zip member as a buffered stream (with ``peek``) whose ``raw.size`` is known."""
    try:
        info = bundle.getinfo(member)
    except KeyError as exc:
        raise FileNotFoundError(f"{name}: no such member in the zip") from exc
    check_member(info, name)
    try:
        stream = cast(io.BufferedIOBase, bundle.open(info))  # a ZipExtFile, typed as IO[bytes]
    except (NotImplementedError, RuntimeError, *_MEMBER_ERRORS) as exc:
        raise IdxFormatError(name, f"cannot open zip member ({type(exc).__name__}: {exc})") from exc
    return io.BufferedReader(MemberStream(stream, info.file_size, name), 1 << 20)


def stream_size(stream: BinaryIO) -> int | None:
    """Bytes left in a regular file, an in-memory stream, a zip member or an object opened through
    epath (fsspec's ``size``, TensorFlow's ``size()``); None for other streams."""
    raw = getattr(stream, "raw", None)
    if isinstance(raw, MemberStream):
        return raw.size - stream.tell()
    try:
        if isinstance(stream, io.BytesIO):
            return len(stream.getbuffer()) - stream.tell()
        return os.fstat(stream.fileno()).st_size - stream.tell()
    except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
        size = getattr(stream, "size", None)
        size = size() if callable(size) else size
        return size - stream.tell() if isinstance(size, int) else None
