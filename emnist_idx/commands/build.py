"""``emnist-idx build ...``: ``tfds build emnist_idx --imports emnist_idx ...``, arguments passed on."""

from __future__ import annotations

import argparse
import subprocess
import sys

from emnist_idx import configs

NAME = "build"
# tfds's own CLI, named emnist-idx in its usage lines and without the known noise (quiet.py).
_LAUNCH_TFDS = ("import sys; sys.argv[0] = 'emnist-idx'; "
                "from emnist_idx._pipeline import quiet; quiet.quiet(); "
                "from tensorflow_datasets.scripts.cli.main import launch_cli; launch_cli()")
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
    return subprocess.call(tfds_command(extra))


def tfds_command(extra: list[str]) -> list[str]:
    """The tfds command line for ``emnist-idx build`` followed by ``extra``."""
    datasets = []
    while extra and extra[0] in configs.CONFIGS:
        datasets.append(f"emnist_idx/{extra[0]}")
        extra = extra[1:]
    return [*_TFDS, *(datasets or ["emnist_idx"]), "--imports", "emnist_idx", *extra]
