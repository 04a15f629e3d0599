"""The ``emnist-idx`` command line: inspect, verify, show, demo and build.

Exit codes: 0 success, 1 a problem with the data or the files given (one ``emnist-idx: error:``
line per problem on stderr), 2 a usage error (from argparse), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import zipfile
from collections.abc import Sequence

from emnist_idx.commands import demo
from emnist_idx.commands import build, inspect, show, verify
from emnist_idx.commands._common import PROG, CommandError, error
from emnist_idx._pipeline import quiet
from emnist_idx.errors import IdxFormatError, PreparedDataError
from emnist_idx.version import __version__

_COMMANDS = {module.NAME: module for module in (inspect, verify, show, demo, build)}
# Problems with the user's files or options: reported in one line each, never as a traceback.
_USER_ERRORS = (IdxFormatError, PreparedDataError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                PermissionError, zipfile.BadZipFile, CommandError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="EMNIST's IDX files and the emnist_idx TFDS dataset: check files, draw samples, "
                    "run a demo, prepare configs. `emnist-idx COMMAND --help` describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _COMMANDS.values():
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``emnist-idx`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    quiet.drop_known_noise()
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and not getattr(args, "passes_through", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.passed_through = extra
    except SystemExit as exit_:  # --help, --version and usage errors (2)
        return exit_.code if isinstance(exit_.code, int) else 1
    try:
        return _COMMANDS[args.command].run(args)
    except _USER_ERRORS as exc:
        error(exc)
        return 1
    except KeyboardInterrupt:
        error("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
