"""Helpers shared by the subcommands: messages, progress bars, preparing a config."""

from __future__ import annotations

import argparse
import os
import sys
import zipfile

from tqdm import tqdm

from emnist_idx.errors import IdxFormatError, PreparedDataError

PROG = "emnist-idx"
# Files whose payload is larger than this get a progress bar while they are streamed.
PROGRESS_BYTES = 16 << 20
# What reading a user's file can raise: reported per file, never as a traceback.
FILE_ERRORS = (IdxFormatError, zipfile.BadZipFile, OSError, EOFError)


class CommandError(Exception):
    """A problem the user can fix (a missing directory, a bad option value): printed, exit 1."""


# Problems with the user's files or options: reported as they are, in one line each.
USER_ERRORS = (IdxFormatError, PreparedDataError, FileNotFoundError, NotADirectoryError,
               IsADirectoryError, PermissionError, zipfile.BadZipFile, CommandError)
DEBUG_ENV = "EMNIST_IDX_DEBUG"


def debug_from_env() -> bool:
    """Whether EMNIST_IDX_DEBUG asks for tracebacks (any value but "", "0", "false", "no")."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def describe(exc: BaseException, *, hint: bool = True) -> str:
    """A failure's message: ours as they are; others' first line with their type and a hint."""
    if isinstance(exc, USER_ERRORS):
        return str(exc)
    message = f"{type(exc).__name__}: {one_line(exc) or 'no message'}"
    return message + (f" (run with --debug or {DEBUG_ENV}=1 for the traceback)" if hint else "")


def error(message: object) -> None:
    """Prints ``emnist-idx: error: MESSAGE`` to stderr; further lines of the message are indented."""
    sys.stdout.flush()
    first, *rest = str(message).strip().splitlines() or [""]
    print(f"{PROG}: error: {first}", file=sys.stderr)
    for line in rest:
        print(f"  {line}", file=sys.stderr)


def warn(message: str) -> None:
    sys.stdout.flush()
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def one_line(message: object) -> str:
    """The first line of a (possibly multi-line) message."""
    lines = str(message).strip().splitlines()
    return lines[0] if lines else ""


def progress(total: int, desc: str, unit: str, *, big: bool) -> tqdm:
    """A progress bar on stderr for long work; silent for small files and when not on a terminal."""
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False, file=sys.stderr,
                disable=None if big else True, dynamic_ncols=True)


def add_data_dir_args(parser, *, manual_help: str, data_help: str) -> None:
    parser.add_argument("--manual_dir", metavar="DIR", help=manual_help)
    parser.add_argument("--data_dir", metavar="DIR", help=data_help)


def prepare(config: str, data_dir: str | os.PathLike | None, manual_dir: str | os.PathLike | None):
    """Returns the TFDS builder of ``emnist_idx/<config>``, preparing it first (the builder says so, in one line)."""
    from emnist_idx._pipeline.preparing import prepared_builder

    return prepared_builder(config, data_dir=data_dir, manual_dir=manual_dir)


def positive_int(text: str) -> int:
    """An argparse ``type`` for counts: a bad value is a usage error (exit 2), not a data error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
