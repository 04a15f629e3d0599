"""One prepare at a time per dataset version folder, and no leftovers of dead prepares.

TFDS writes a version folder ``<data_dir>/emnist_idx/<config>/<version>`` into a temporary
``incomplete.XXXXXX_<version>`` folder beside it, then renames it into place. Two prepares of the
same folder at once race on that rename (the loser gets FileExistsError), and a prepare killed with
SIGKILL leaves its temporary folder behind. A lock file beside the version folder,
``<version>.lock``, held with ``flock`` (released by the kernel when its process dies), serializes
them: whoever holds it may remove every temporary folder of that version, since none is live.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator

import filelock

_INCOMPLETE_PREFIX = "incomplete."  # TFDS's tensorflow_datasets.core.constants.INCOMPLETE_PREFIX
_log = logging.getLogger("emnist_idx")


def lock_path(version_dir: os.PathLike[str] | str) -> str:
    """The lock file of a version folder: ``<version>.lock`` beside it."""
    version_dir = os.fspath(version_dir).rstrip("/")
    return f"{version_dir}.lock"


@contextlib.contextmanager
def version_lock(version_dir: os.PathLike[str] | str) -> Iterator[bool]:
    """Holds the version folder's lock; yields whether another process held it first (we waited).

    Folders that are not on the local file system (``gs://...``) are not locked.
    """
    if "://" in os.fspath(version_dir):
        yield False
        return
    path = lock_path(version_dir)
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
    """Removes the ``incomplete.*`` folders of a version; call only while holding its lock.

    Returns the folders removed.
    """
    version_dir = os.fspath(version_dir).rstrip("/")
    parent, version = os.path.split(version_dir)
    removed = []
    with contextlib.suppress(FileNotFoundError), os.scandir(parent) as entries:
        for entry in entries:
            if (entry.name.startswith(_INCOMPLETE_PREFIX) and entry.name.endswith(f"_{version}")
                    and entry.is_dir(follow_symlinks=False)):
                shutil.rmtree(entry.path)
                removed.append(entry.path)
    if removed:
        _log.warning("Removed %d folder(s) left by interrupted prepares: %s", len(removed),
                     ", ".join(removed))
    return removed
