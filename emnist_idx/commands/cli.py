"""The ``emnist-idx`` command line: inspect, verify, show, demo and build.

Exit codes: 0 success, 1 a problem with the data or the files given (one ``emnist-idx: error:``
line per problem on stderr), 2 a usage error (from argparse), 130 interrupted. Any other failure
(TensorFlow's, TFDS's, a bug) is one ``emnist-idx: error:`` line too, exit 1; ``--debug`` (or
``EMNIST_IDX_DEBUG=1``) prints its traceback first.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from collections.abc import Sequence

from emnist_idx.commands import demo
from emnist_idx.commands import build, inspect, show, verify
from emnist_idx.commands._common import DEBUG_ENV, PROG, debug_from_env, describe, error
from emnist_idx._pipeline import quiet
from emnist_idx.version import __version__

_COMMANDS = {module.NAME: module for module in (inspect, verify, show, demo, build)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="EMNIST's IDX files and the emnist_idx TFDS dataset: check files, draw samples, "
                    "run a demo, prepare configs. `emnist-idx COMMAND --help` describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help=f"print the traceback of a failure (also: {DEBUG_ENV}=1)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _COMMANDS.values():
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``emnist-idx`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    quiet.quiet_tensorflow_startup(quiet.CLI_LEVEL)
    quiet.drop_known_noise()
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and not getattr(args, "passes_through", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.passed_through = extra
    except SystemExit as exit_:  # --help, --version and usage errors (2)
        return exit_.code if isinstance(exit_.code, int) else 1
    debug = args.debug or debug_from_env()
    try:
        code = _COMMANDS[args.command].run(args)
        sys.stdout.flush()  # a reader that went away is met here, not at interpreter exit
        return code
    except BrokenPipeError:  # stdout's reader closed it (`emnist-idx ... | head -1`): end quietly
        _silence_stdout()
        return 128 + signal.SIGPIPE  # 141, as Unix tools killed by SIGPIPE report it
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - every failure is one line, never a traceback
        if debug:
            traceback.print_exc()
        error(describe(exc, hint=not debug))
        return 1


def _silence_stdout() -> None:
    """Points stdout at /dev/null, so that the interpreter's last flush of what is left in its
    buffer does not raise BrokenPipeError again (printed as "Exception ignored")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
