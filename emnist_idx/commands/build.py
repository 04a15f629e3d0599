"""``emnist-idx build ...``: ``tfds build emnist_idx --imports emnist_idx ...``, arguments passed on."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from emnist_idx import configs
from emnist_idx.commands._common import DEBUG_ENV, CommandError, debug_from_env, describe, error

NAME = "build"
# tfds's own CLI in a child process, through launch_tfds below.
_LAUNCH_TFDS = "from emnist_idx.commands.build import launch_tfds; launch_tfds()"
_TFDS = [sys.executable, "-c", _LAUNCH_TFDS, "build"]
_DESCRIPTION = f"""\
Runs `tfds build emnist_idx --imports emnist_idx [ARGS...]`, passing every argument on.
Leading config names ({', '.join(configs.CONFIGS)})
become datasets emnist_idx/CONFIG; with none and no --config, TFDS builds all six. Example:

  emnist-idx build balanced letters --manual_dir ~/Downloads/emnist --data_dir ~/tensorflow_datasets

tfds build's own options follow.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    # No options of our own (not even -h): everything after `build` is tfds build's.
    parser = subparsers.add_parser(NAME, add_help=False, help="prepare configs with `tfds build` "
                                                              "(arguments are passed through)")
    parser.set_defaults(passes_through=True)  # the CLI hands us the rest as args.passed_through


def run(args: argparse.Namespace) -> int:
    extra = args.passed_through
    if "-h" in extra or "--help" in extra:
        print(f"usage: emnist-idx build [CONFIG...] [tfds build options]\n\n{_DESCRIPTION}", flush=True)
        return subprocess.call([*_TFDS, "--help"])
    manual_dir = _option(extra, "--manual_dir")
    if manual_dir is not None and not os.path.exists(os.path.expanduser(manual_dir)):
        raise CommandError(f"manual dir {manual_dir} does not exist: pass the directory (or the "
                           "gzip.zip) holding NIST's EMNIST files")
    env = {**os.environ, DEBUG_ENV: "1"} if getattr(args, "debug", False) else None
    return subprocess.call(tfds_command(extra), env=env)


def _option(arguments: list[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` among tfds build's arguments."""
    for index, argument in enumerate(arguments):
        if argument == name and index + 1 < len(arguments):
            return arguments[index + 1]
        if argument.startswith(f"{name}="):
            return argument.split("=", 1)[1]
    return None


def launch_tfds() -> None:
    """tfds's own CLI, in the child process: named emnist-idx in its usage lines, without the known
    noise (quiet.py), and a failure is one ``emnist-idx: error:`` line (a traceback when debugging)."""
    from emnist_idx._pipeline import quiet

    sys.argv[0] = "emnist-idx"
    quiet.quiet()
    from tensorflow_datasets.scripts.cli.main import launch_cli

    try:
        launch_cli()
    except Exception as exc:  # noqa: BLE001 - every failure is one line, never a traceback
        if debug_from_env():
            raise
        error(describe(exc))
        sys.exit(1)


def tfds_command(extra: list[str]) -> list[str]:
    """The tfds command line for ``emnist-idx build`` followed by ``extra``."""
    datasets = []
    while extra and extra[0] in configs.CONFIGS:
        datasets.append(f"emnist_idx/{extra[0]}")
        extra = extra[1:]
    return [*_TFDS, *(datasets or ["emnist_idx"]), "--imports", "emnist_idx", *extra]
