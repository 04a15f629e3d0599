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
from etils.epath import backend as epath_backend


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


def _new_filesystems_in_forked_children() -> None:
    """epath keeps one fsspec filesystem per protocol (an ``lru_cache`` on its fsspec backend's
    ``_get_filesystem``); fsspec's async ones (gcsfs) refuse to run in a forked child ("This class
    is not fork-safe"), so a child must make its own. Without this, a Source that read gs://
    before a fork fails in the forked workers (a DataLoader's, a fork Pool's)."""
    method = getattr(type(getattr(epath_backend, "fsspec_backend", None)), "_get_filesystem", None)
    clear = getattr(method, "cache_clear", None)
    if clear is not None:
        clear()


os.register_at_fork(after_in_child=_new_filesystems_in_forked_children)
