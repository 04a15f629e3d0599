"""Errors raised by emnist_idx.

    ValueError
     ├── IdxFormatError          a source is not the IDX file (or mapping file) it should be:
     │                           malformed, truncated, not a regular file, an unreadable zip member
     └── PreparedDataError       a prepared dataset's file (shard, dataset_info.json, ...) is damaged
    FileNotFoundError            a source file is missing (raised as the builtin, naming the path)
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from emnist_idx.configs import DATASET_NAME


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


def rebuild_command(folder: str | os.PathLike[str]) -> str:
    """The shell command that deletes and prepares again the config in ``folder`` (a version dir):
    the ``rebuild`` of a PreparedDataError."""
    folder = Path(os.fspath(folder))
    config, root = folder.parent.name, folder.parent.parent.parent
    return (f"rebuild it with: rm -r {shlex.quote(str(folder))} && tfds build {DATASET_NAME} "
            f"--imports {DATASET_NAME} --config {config} --data_dir {shlex.quote(str(root))} "
            "--manual_dir DIR  (DIR: NIST's files; leave --manual_dir out to download them)")
