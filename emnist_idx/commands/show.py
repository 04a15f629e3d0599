"""``emnist-idx show CONFIG``: a PNG grid of upright samples with their class names."""

from __future__ import annotations

import argparse

import numpy as np

from emnist_idx import configs
from emnist_idx import grid
from emnist_idx.commands._common import add_data_dir_args, positive_int, prepare

NAME = "show"
# One PNG grid holds at most this many images (about 8,800 x 9,800 pixels); for more, use load().
MAX_COUNT = 10_000


def grid_count(text: str) -> int:
    """An argparse ``type`` for -n and --columns: 1 to MAX_COUNT (a larger grid is a usage error)."""
    value = positive_int(text)
    if value > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"at most {MAX_COUNT:,} fit one grid, got {value:,}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="draw samples of a prepared config as a PNG grid with their class names",
        description="Draws the first N examples of a split of the prepared emnist_idx dataset "
                    "(preparing it first if needed) as a PNG grid: each 28x28 image, upright, scaled "
                    f"{grid.SCALE}x, with its class name beneath. Prints the path written.",
    )
    parser.add_argument("config", choices=configs.CONFIGS, metavar="CONFIG",
                        help=f"one of {', '.join(configs.CONFIGS)}")
    parser.add_argument("--split", default="test", choices=configs.SPLITS,
                        help="train or test (default: test)")
    parser.add_argument("-n", "--count", type=grid_count, default=64, metavar="N",
                        help="number of examples (default: 64)")
    parser.add_argument("-o", "--output", default="grid.png", metavar="PNG",
                        help="PNG file to write (default: grid.png)")
    parser.add_argument("--columns", type=grid_count, metavar="C",
                        help="images per row (default: a near-square grid)")
    add_data_dir_args(parser,
                      manual_help="where NIST's files are, to prepare the config if it is not "
                                  "prepared yet (default: download them)",
                      data_help="TFDS data dir (default: TFDS's, ~/tensorflow_datasets)")


def run(args: argparse.Namespace) -> int:
    images, labels, names = samples(args.config, args.split, args.count, args.data_dir, args.manual_dir)
    path = grid.save_grid(args.output, images, [names[label] for label in labels],
                          columns=args.columns)
    print(f"Wrote {path}: {len(images)} {args.config} {args.split} examples")
    return 0


def samples(config: str, split: str, count: int, data_dir, manual_dir
            ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The first ``count`` examples of a split (all of them if fewer): (N, 28, 28, 1) uint8 images,
    labels, class names. Every record read is checked (PreparedDataError names a damaged file)."""
    from emnist_idx._pipeline import reading

    builder = prepare(config, data_dir, manual_dir)
    count = min(count, builder.info.splits[split].num_examples)
    images, labels = reading.read_split(reading.split_source(builder, f"{split}[:{count}]"))
    return images, labels, list(builder.info.features["label"].names)
