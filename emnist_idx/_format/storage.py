"""The prepared files' one way in: local paths and every URL etils.epath reaches (gs://, ...).

The read path names, sizes, opens and reads shards and JSON files only through here, so that a
data_dir on object storage reads like a local one and messages keep the full URL (``pathlib``
turns ``gs://bucket`` into ``gs:/bucket``). Local files are opened unbuffered with the built-in
``open`` (each read lands straight in the caller's buffer); others through epath (with TensorFlow
importable and ``EPATH_USE_TF`` unset, TensorFlow's file system; else fsspec, e.g. gcsfs).
"""

from __future__ import annotations

import os
from typing import BinaryIO

from etils import epath


def path(location: str | os.PathLike) -> epath.Path:
    """``location`` as an epath path (a URL stays a URL)."""
    return epath.Path(os.fspath(location))


def is_local(location: str | os.PathLike) -> bool:
    return "://" not in os.fspath(location)


def size(location: str | os.PathLike) -> int:
    """The file's size in bytes (FileNotFoundError when there is none)."""
    if is_local(location):
        return os.stat(location).st_size
    return path(location).stat().length


def open_for_reading(location: str | os.PathLike) -> BinaryIO:
    """The file opened for binary reads: ``seek`` and ``readinto`` work on it."""
    if is_local(location):
        return open(location, "rb", buffering=0)  # noqa: SIM115 - the caller closes it
    return path(location).open("rb")
