"""Errors raised by emnist_idx.

    ValueError
     └── IdxFormatError          a file is not the IDX file (or mapping file) it should be
    FileNotFoundError            a source file is missing (raised as the builtin, naming the path)
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
