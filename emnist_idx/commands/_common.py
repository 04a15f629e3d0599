"""Helpers shared by the subcommands: messages, progress bars, preparing a config."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tqdm import tqdm

PROG = "emnist-idx"
# Files whose payload is larger than this get a progress bar while they are streamed.
PROGRESS_BYTES = 16 << 20


class CommandError(Exception):
    """A problem the user can fix (a missing directory, a bad option value): printed, exit 1."""


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
    """Returns the TFDS builder of ``emnist_idx/<config>``, preparing it first when needed."""
    import tensorflow_datasets as tfds

    from emnist_idx.emnist_idx_dataset_builder import Builder

    if manual_dir is not None and not Path(manual_dir).expanduser().exists():
        raise FileNotFoundError(f"manual dir {manual_dir} does not exist: pass the directory (or the "
                                "gzip.zip) holding NIST's EMNIST files")
    builder = Builder(config=config, data_dir=os.fspath(data_dir) if data_dir else None)
    if not builder.is_prepared():
        print(f"Preparing emnist_idx/{config} in {builder.data_dir}"
              + (f" from {manual_dir}" if manual_dir else ""), flush=True)
        manual = os.fspath(Path(manual_dir).expanduser()) if manual_dir else None
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual))
    return builder
