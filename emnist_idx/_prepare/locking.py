"""One prepare at a time per dataset version folder, and no leftovers of dead prepares.

TFDS writes a version folder ``<data_dir>/emnist_idx/<config>/<version>`` into a temporary
``incomplete.XXXXXX_<version>`` folder beside it, then renames it into place. Two prepares of the
same folder at once race on that rename (the loser gets FileExistsError), and a prepare killed with
SIGKILL leaves its temporary folder behind. A lock file beside the version folder,
``<version>.lock``, held with ``flock`` (released by the kernel when its process dies), serializes
them: whoever holds it may remove every temporary folder of that version, since none is live.
On object storage (a URL) the lock is an object created only if absent (``object_lock.py``), and
the leftovers include a version folder a killed prepare left half copied (``object_publish.py``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator

import filelock

from emnist_idx._format import storage
from emnist_idx._prepare import object_lock, object_publish

_log = logging.getLogger("emnist_idx")


def lock_path(version_dir: os.PathLike[str] | str) -> str:
    """The lock file of a version folder: ``<version>.lock`` beside it."""
    version_dir = os.fspath(version_dir).rstrip("/")
    return f"{version_dir}.lock"


@contextlib.contextmanager
def version_lock(version_dir: os.PathLike[str] | str) -> Iterator[bool]:
    """Holds the version folder's lock; yields whether another process held it first (we waited).

    For a URL (``gs://...``), see ``object_lock.object_lock`` (PrepareLockedError when it gives up).
    """
    path = lock_path(version_dir)
    if not storage.is_local(path):
        with object_lock.object_lock(path) as waited:
            yield waited
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lock = filelock.FileLock(path)
    waited = False
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        waited = True
        _log.warning("Waiting for another process preparing %s (lock %s)", version_dir, path)
        lock.acquire()
    try:
        yield waited
    finally:
        lock.release()


def remove_dead_temporaries(version_dir: os.PathLike[str] | str) -> list[str]:
    """Removes the ``incomplete.*`` folders of a version (and, on object storage, the version
    folder itself when a killed prepare left it half copied); call only while holding its lock.

    Returns the folders removed.
    """
    version_dir = os.fspath(version_dir).rstrip("/")
    if storage.is_local(version_dir):
        removed = _remove_local_temporaries(version_dir)
    else:
        removed = _remove_object_temporaries(version_dir)
    if removed:
        _log.warning("Removed %d folder(s) left by interrupted prepares: %s", len(removed),
                     ", ".join(removed))
    return removed


def _is_temporary(name: str, version: str) -> bool:
    return name.startswith(object_publish.INCOMPLETE_PREFIX) and name.endswith(f"_{version}")


def _remove_local_temporaries(version_dir: str) -> list[str]:
    parent, version = os.path.split(version_dir)
    removed = []
    with contextlib.suppress(FileNotFoundError), os.scandir(parent) as entries:
        for entry in entries:
            if _is_temporary(entry.name, version) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
                removed.append(entry.path)
    return removed


def _remove_object_temporaries(version_dir: str) -> list[str]:
    if not object_lock.is_held(lock_path(version_dir)):  # unlocked: they may be live
        return []
    folder = storage.path(version_dir)
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in folder.parent.iterdir():
            if _is_temporary(entry.name, folder.name) and entry.is_dir():
                entry.rmtree()
                removed.append(os.fspath(entry))
    if object_publish.remove_unmarked(version_dir):
        removed.append(version_dir)
    return removed
