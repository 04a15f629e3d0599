"""``emnist-idx demo``: prepare a config, train a small Keras CNN on it, draw its test predictions.

By default the data is the synthetic ``dummy_data/`` bundle of a checkout (glyphs drawn from a font,
not NIST's handwriting), so the demo runs in about a minute on a laptop CPU. Outside a checkout (an
installed wheel, any folder) the same bundle's config is generated into a temporary folder with
``emnist_idx.synthetic``, in about a second. Pass ``--manual_dir`` with NIST's files to run it on
EMNIST itself.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from emnist_idx import configs, synthetic
from emnist_idx import grid
from emnist_idx.commands._common import add_data_dir_args, positive_int, prepare

NAME = "demo"
DUMMY_DIR = "dummy_data"
# dummy_data's balanced has 1,128 train images, NIST's 112,800: epochs and batch size follow suit.
SMALL_TRAIN_SPLIT = 20_000
EPOCHS = {"small": 30, "large": 5}
BATCH_SIZE = {"small": 32, "large": 128}
LEARNING_RATE = 2e-3
SAMPLES = 48  # test images drawn in the picture, 8 per row
_COLUMNS = 8


@dataclasses.dataclass(frozen=True)
class DemoResult:
    test_accuracy: float
    test_count: int
    output: str
    seconds: float


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="train a small CNN on dummy_data (or NIST's files) and draw its test predictions",
        description="Prepares a config (from ./dummy_data by default, else the same synthetic "
                    "bundle generated into a temporary folder: glyphs drawn from a font, not NIST's "
                    "handwriting), trains a small Keras CNN on its train split through "
                    "emnist_idx.load, prints the test accuracy and writes a PNG of upright test "
                    "images with predicted and true labels (green when right, red when wrong).",
    )
    add_data_dir_args(parser,
                      manual_help=f"NIST's EMNIST files (gzip.zip or its gzip/ folder); default: "
                                  f"./{DUMMY_DIR} when the current directory has one, else the "
                                  "same synthetic files generated into a temporary folder",
                      data_help="where to prepare the dataset (default: a temporary directory, "
                                "removed at the end)")
    parser.add_argument("--config", default=configs.DEFAULT_CONFIG, choices=configs.CONFIGS,
                        help=f"EMNIST config (default: {configs.DEFAULT_CONFIG})")
    parser.add_argument("--epochs", type=positive_int,
                        help=f"training epochs (default: {EPOCHS['small']} for a train split under "
                             f"{SMALL_TRAIN_SPLIT:,} images such as dummy_data's, else "
                             f"{EPOCHS['large']})")
    parser.add_argument("-o", "--output", default="demo.png", metavar="PNG",
                        help="picture of test predictions to write (default: demo.png)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")


def run(args: argparse.Namespace) -> int:
    run_demo(args.config, manual_dir=args.manual_dir, data_dir=args.data_dir, epochs=args.epochs,
             output=args.output, seed=args.seed)
    return 0


def default_manual_dir() -> Path | None:
    """``./dummy_data`` when the current directory has it."""
    candidate = Path.cwd() / DUMMY_DIR
    return candidate if candidate.is_dir() else None


def _generated_manual_dir(config: str, stack: contextlib.ExitStack) -> Path:
    """``config``'s files of the dummy_data bundle, generated into a folder removed at the end."""
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="emnist_idx_demo-files-")))
    print(f"No ./{DUMMY_DIR} in {Path.cwd()}: generating the same synthetic {config} files with "
          f"emnist_idx.synthetic into {folder} (temporary, removed at the end)", flush=True)
    return synthetic.write_dummy_config(folder, config)


def run_demo(
    config: str = configs.DEFAULT_CONFIG,
    *,
    manual_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    epochs: int | None = None,
    output: str | os.PathLike = "demo.png",
    seed: int = 0,
    verbose: int | None = None,
) -> DemoResult:
    """Prepares ``config``, trains a CNN, prints the test accuracy and writes the picture.

    ``epochs`` defaults to 30 for small train splits (dummy_data's), 5 for NIST's. ``verbose`` is
    Keras's: 1 a live progress bar (the default on a terminal), 2 a line per epoch (the default
    otherwise), 0 silent.
    """
    start = time.perf_counter()
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    manual = Path(manual_dir).expanduser() if manual_dir else default_manual_dir()
    if manual is not None and not manual.exists():
        raise FileNotFoundError(f"manual dir {manual} does not exist: pass the directory (or the "
                                "gzip.zip) holding NIST's EMNIST files")
    with contextlib.ExitStack() as stack:
        if manual is None:
            manual = _generated_manual_dir(config, stack)
        print(f"emnist-idx demo: EMNIST {config} from {manual}"
              + (" (synthetic glyphs, not NIST's handwriting)" if manual_dir is None else ""))
        if data_dir is None:
            data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="emnist_idx_demo-"))
            print(f"Data dir: {data_dir} (temporary, removed at the end; pass --data_dir to keep "
                  "it)", flush=True)
        else:
            print(f"Data dir: {data_dir}", flush=True)
        accuracy, count, images, predicted, true = _train_and_evaluate(
            config, manual, data_dir, epochs, seed, verbose)
    num_classes = len(configs.CLASS_NAMES[config])
    print(f"Test accuracy: {accuracy:.1%} on {count:,} test images "
          f"(chance: {1 / num_classes:.1%} for {num_classes} classes)")
    path = _draw(output, config, images, predicted, true)
    right = int((predicted == true).sum())
    print(f"Wrote {path}: {len(true)} test images with predicted and true labels ({right} right)")
    seconds = time.perf_counter() - start
    print(f"Done in {seconds:.0f} s")
    return DemoResult(accuracy, count, path, seconds)


def build_model(num_classes: int, learning_rate: float = LEARNING_RATE):
    """A small CNN (two conv blocks, a dense layer; 0.4M weights) behind random shifts and turns.

    With 24 training images per class (dummy_data's balanced), the augmentation is what lifts test
    accuracy from about 87% to about 98%; at inference the augmentation layers pass images through.
    """
    import keras

    layers = keras.layers
    model = keras.Sequential([
        keras.Input(shape=configs.IMAGE_SHAPE),
        layers.RandomTranslation(0.1, 0.1, fill_mode="constant"),
        layers.RandomRotation(0.04, fill_mode="constant"),  # up to about 14 degrees
        layers.RandomZoom(0.1, fill_mode="constant"),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dropout(0.3),
        layers.Dense(128, activation="relu"),
        layers.Dense(num_classes, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _train_and_evaluate(config, manual_dir, data_dir, epochs, seed, verbose):
    import keras

    from emnist_idx._pipeline import loading

    keras.utils.set_random_seed(seed)
    common = dict(data_dir=data_dir, manual_dir=manual_dir, normalize="scale")
    train_count = prepare(config, data_dir, manual_dir).info.splits["train"].num_examples
    size = "small" if train_count < SMALL_TRAIN_SPLIT else "large"
    epochs = epochs or EPOCHS[size]
    print(f"Training on {train_count:,} images for {epochs} epochs, {BATCH_SIZE[size]} a batch")
    train = loading.load(config, "train", batch_size=BATCH_SIZE[size], shuffle=True, seed=seed,
                          **common)
    test = loading.load(config, "test", batch_size=BATCH_SIZE[size], shuffle=False, **common)
    model = build_model(len(configs.CLASS_NAMES[config]))
    # The test split only reports progress here: nothing is tuned or stopped on it.
    # load() shuffles the train batches itself; Keras cannot shuffle a tf.data.Dataset.
    model.fit(train, epochs=epochs, validation_data=test, shuffle=False, verbose=verbose)
    accuracy = float(model.evaluate(test, verbose=0, return_dict=True)["accuracy"])
    count = int(sum(len(labels) for _, labels in test.as_numpy_iterator()))
    samples = loading.load(config, "test", batch_size=SAMPLES, shuffle=False, **common)
    images, true = next(samples.as_numpy_iterator())
    predicted = np.argmax(model.predict(images, verbose=0), axis=-1)
    pixels = np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)
    return accuracy, count, pixels, predicted, np.asarray(true)


def _draw(output, config, images, predicted, true) -> str:
    names = configs.CLASS_NAMES[config]
    captions = [f"pred {names[p]}\ntrue {names[t]}" for p, t in zip(predicted, true)]
    colors = [grid.GREEN if p == t else grid.RED for p, t in zip(predicted, true)]
    return grid.save_grid(output, images, captions, colors=colors, columns=_COLUMNS)
