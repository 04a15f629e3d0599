"""Errors raised by emnist_idx.

    ValueError
     ├── IdxFormatError          a source is not the IDX file (or mapping file) it should be:
     │                           malformed, truncated, not a regular file, an unreadable zip member
     └── PreparedDataError       a prepared dataset's file (shard, dataset_info.json, ...) is damaged
    FileNotFoundError            a source file is missing (raised as the builtin, naming the path)
    NotCheckpointableError       (a TypeError) an iterator whose position cannot be saved
    PrepareLockedError           (a RuntimeError) another prepare holds a version folder's lock on
                                 object storage, too long or after its holder died
"""

from __future__ import annotations

import os


class IdxFormatError(ValueError):
    """An IDX or mapping file is malformed, truncated or inconsistent.

    The message always starts with the file's name and says what was expected and what was found.
    """

    def __init__(self, source: str | os.PathLike[str], problem: str) -> None:
        self.source = os.fspath(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


class PreparedDataError(ValueError):
    """A file of a prepared dataset (a shard, dataset_info.json, features.json, metadata.json) is
    missing, unreadable, corrupt or disagrees with the others.

    The message starts with the file's name, says what was expected and what was found, and ends
    with the command that rebuilds the dataset (``rebuild``).
    """

    def __init__(self, path: str | os.PathLike[str], problem: str, rebuild: str = "") -> None:
        self.path = os.fspath(path)
        self.problem = problem
        self.rebuild = rebuild
        super().__init__(f"{self.path}: {problem}" + (f"; {rebuild}" if rebuild else ""))



class NotCheckpointableError(TypeError):
    """An iterator of ``load()``'s result cannot be saved in a checkpoint (through the tf.data
    service); the message says why and what to do instead."""


class PrepareLockedError(RuntimeError):
    """A prepare on object storage (``gs://...``) could not take its version folder's lock.

    The message names the lock (its full URL), who holds it (host, pid, since when), why we gave
    up (the holder's heartbeat stopped, or we waited too long) and what to do.
    """

    def __init__(self, lock: str, holder: str, problem: str) -> None:
        self.lock = lock
        self.holder = holder
        self.problem = problem
        super().__init__(f"{lock}: held by {holder}; {problem}")
