"""Putting a prepared version folder in place on object storage, marked complete last.

TFDS writes a version folder into ``incomplete.XXXXXX_<version>`` beside it and renames that
folder into place (``tfds.core.utils.incomplete_dir``). A rename is atomic on a local disk; on
object storage it is one copy and one delete per object (gcsfs, in parallel, after trying GCS's
``moveTo``, which gcp-storage-emulator answers with 501 and gcsfs retries for about 30 s). A
prepare killed in the middle of that leaves a version folder with some of its files, and TFDS
counts a folder as prepared once it holds ``dataset_info.json`` and ``features.json``, in
whichever order they were copied. So for a URL, while :func:`ordered_publishing` is active, TFDS's
``incomplete_dir`` is replaced by :func:`incomplete_dir`, which copies every other file first and
those two marks last, one object at a time (server-side copies, no ``moveTo``); removal goes the
other way (marks first). A folder
without both marks is never read as a dataset; :func:`remove_unmarked` (under the lock) removes
one left by a killed prepare, since TFDS would otherwise take its existence for "prepared".
Local folders keep TFDS's own rename.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Iterator
from unittest import mock

from etils import epath

from emnist_idx._format import storage

INCOMPLETE_PREFIX = "incomplete."  # TFDS's tensorflow_datasets.core.constants.INCOMPLETE_PREFIX
_MARKS = ("features.json", "dataset_info.json")  # TFDS's is_valid_variant_dir needs both
_log = logging.getLogger("emnist_idx")


@contextlib.contextmanager
def ordered_publishing(version_dir: str | os.PathLike, overwrite: bool = False) -> Iterator[None]:
    """While active, TFDS publishes URLs with :func:`incomplete_dir` and writes single files on
    them (its ``.config/metadata.json``) straight to their names: an object appears only once its
    upload completed, so the temporary name and rename (another ``moveTo``) add nothing. Local
    paths still go to TFDS's own functions. ``overwrite`` (a prepare that replaces the folder):
    the folder is removed first, marks first, before TFDS's own removal in any order."""
    if storage.is_local(version_dir):
        yield
        return
    if overwrite:
        remove(storage.path(version_dir))
    from tensorflow_datasets.core import utils as tfds_utils  # noqa: PLC0415 - prepares only

    tfds_dir, tfds_file = tfds_utils.incomplete_dir, tfds_utils.incomplete_file

    def folder(dirname, permissions=None, overwrite=False):
        if storage.is_local(dirname):
            return tfds_dir(dirname, permissions=permissions, overwrite=overwrite)
        return incomplete_dir(dirname, overwrite=overwrite)

    def file(path, subfolder=None):
        if storage.is_local(path):
            return tfds_file(path, subfolder=subfolder)
        return contextlib.nullcontext(path)

    with (mock.patch.object(tfds_utils, "incomplete_dir", folder),
          mock.patch.object(tfds_utils, "incomplete_file", file)):
        yield


@contextlib.contextmanager
def incomplete_dir(dirname: str | os.PathLike, overwrite: bool = False) -> Iterator[str]:
    """A temporary folder beside ``dirname`` to write into; on success its files are copied to
    ``dirname``, the marks last (after removing ``dirname`` when ``overwrite``). The temporary
    folder is removed either way."""
    target = storage.path(dirname)
    temporary = target.parent / f"{INCOMPLETE_PREFIX}{secrets.token_hex(3).upper()}_{target.name}"
    temporary.mkdir(parents=True, exist_ok=True)
    try:
        yield os.fspath(temporary)
        if overwrite:
            remove(target)
        publish(temporary, target)
    finally:
        if temporary.exists():
            temporary.rmtree()


def publish(source: epath.Path, target: epath.Path) -> None:
    """Copies the files of folder ``source`` into ``target``, the marks last."""
    rank = {mark: order for order, mark in enumerate(_MARKS, start=1)}
    files = sorted(_files(source), key=lambda path: (rank.get(path.name, 0), str(path)))
    for file in files:
        destination = target / file.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        file.copy(destination, overwrite=True)


def remove(folder: epath.Path) -> None:
    """Removes a version folder, its marks first."""
    for mark in _MARKS:
        with contextlib.suppress(FileNotFoundError):
            (folder / mark).unlink()
    folder.rmtree(missing_ok=True)


def remove_unmarked(version_dir: str | os.PathLike) -> bool:
    """Removes the version folder (a URL) if it exists without both marks: what a prepare killed
    while publishing leaves. Call only while holding the lock. Returns whether it removed it."""
    folder = storage.path(version_dir)
    if not folder.exists() or all((folder / mark).exists() for mark in _MARKS):
        return False
    _log.warning("Removing %s: a prepare was killed while putting it in place (it lacks %s)",
                 folder, " or ".join(_MARKS))
    remove(folder)
    return True


def _files(folder: epath.Path) -> Iterator[epath.Path]:
    for entry in folder.iterdir():
        if entry.is_dir():
            yield from _files(entry)
        else:
            yield entry
