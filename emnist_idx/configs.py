"""The six EMNIST configs: names, classes and NIST's file names."""

from __future__ import annotations

import os
import shlex
import string

CONFIGS = ("byclass", "bymerge", "balanced", "letters", "digits", "mnist")
DATASET_NAME = "emnist_idx"  # the TFDS builder's name, as in tfds.load("emnist_idx/<config>")
DEFAULT_CONFIG = "balanced"
SPLITS = ("train", "test")
IMAGE_SIZE = 28  # pixels on each side
IMAGE_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)  # one example's image as stored: upright, one channel
# The metadata key of the train split's pixel statistics: {"mean": ..., "std": ...} on the 0..1 scale.
PIXELS = "pixels"

_DIGITS = tuple(string.digits)
_UPPER = tuple(string.ascii_uppercase)
_MERGED_LOWER = tuple("abdefghnqrt")  # the lower-case letters bymerge/balanced keep apart

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "byclass": _DIGITS + _UPPER + tuple(string.ascii_lowercase),
    "bymerge": _DIGITS + _UPPER + _MERGED_LOWER,
    "balanced": _DIGITS + _UPPER + _MERGED_LOWER,
    "letters": tuple(upper + upper.lower() for upper in _UPPER),
    "digits": _DIGITS,
    "mnist": _DIGITS,
}

# (train, test) counts of NIST's published files.
NIST_COUNTS: dict[str, tuple[int, int]] = {
    "byclass": (697_932, 116_323),
    "bymerge": (697_932, 116_323),
    "balanced": (112_800, 18_800),
    "letters": (88_800, 14_800),
    "digits": (240_000, 40_000),
    "mnist": (60_000, 10_000),
}

# The label each config's files give their first class (letters counts from 1).
FIRST_LABEL: dict[str, int] = {config: (1 if config == "letters" else 0) for config in CONFIGS}

DESCRIPTIONS: dict[str, str] = {
    "byclass": "62 unbalanced classes: digits, upper- and lower-case letters.",
    "bymerge": "47 unbalanced classes: 15 lower-case letters that look like their upper case are merged.",
    "balanced": "47 balanced classes: the bymerge classes with the same number of examples each.",
    "letters": "26 balanced classes: upper and lower case of each letter merged.",
    "digits": "10 balanced classes: the digits 0-9.",
    "mnist": "10 classes: a drop-in replacement for MNIST.",
}


def check_config(config: object) -> str:
    """Returns ``config`` if it names an EMNIST config, else raises ValueError listing the six."""
    if not isinstance(config, str) or config not in CONFIGS:
        raise ValueError(f"config={config!r} is not an EMNIST config: use one of "
                         f"{', '.join(repr(name) for name in CONFIGS)}")
    return config


def image_file(config: str, split: str) -> str:
    """NIST's name for a config's gzip'd images file, e.g. emnist-mnist-train-images-idx3-ubyte.gz."""
    return f"emnist-{config}-{split}-images-idx3-ubyte.gz"


def label_file(config: str, split: str) -> str:
    """NIST's name for a config's gzip'd labels file."""
    return f"emnist-{config}-{split}-labels-idx1-ubyte.gz"


def mapping_file(config: str) -> str:
    """NIST's name for a config's mapping file."""
    return f"emnist-{config}-mapping.txt"

def file_names(config: str) -> list[str]:
    """NIST's five file names of ``config``: the mapping, then images and labels of each split."""
    names = [mapping_file(config)]
    for split in SPLITS:
        names += [image_file(config, split), label_file(config, split)]
    return names


def class_names(config: str = DEFAULT_CONFIG) -> list[str]:
    """The names of ``config``'s classes, indexed by label: e.g. "0".."9", "A".."Z", "a", "b", ...

    letters names each class by its upper and lower case ("Aa"), as NIST merges them.
    """
    return list(CLASS_NAMES[check_config(config)])


# NIST's bundle; its size and sha256 live in checksums.tsv beside the builder.
BUNDLE_URL = "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"


def build_command(config: str | None = None, data_dir: str | os.PathLike | None = None,
                  manual_dir: str = "DIR") -> str:
    """The ``tfds build`` command that prepares ``config`` (every config if None) in ``data_dir``
    (TFDS's default if None) from NIST's files in ``manual_dir``; paths are shell-quoted."""
    return " ".join([
        f"tfds build {DATASET_NAME} --imports {DATASET_NAME}",
        *([f"--config {config}"] if config else []),
        *([f"--data_dir {shlex.quote(os.fspath(data_dir))}"] if data_dir else []),
        f"--manual_dir {shlex.quote(manual_dir)}",
    ])


def rebuild_command(version_dir: str | os.PathLike) -> str:
    """The shell command that deletes a prepared config's ``version_dir``
    (``<data_dir>/emnist_idx/<config>/<version>``, a local path or a URL such as ``gs://...``)
    and prepares it again."""
    folder = os.fspath(version_dir).rstrip("/")
    dataset_dir, config, _version = folder.rsplit("/", 2)  # split as text: keeps "gs://"
    data_dir = dataset_dir.rsplit("/", 1)[0] if "/" in dataset_dir else "."
    remove = "gcloud storage rm -r" if folder.startswith("gs://") else "rm -r"
    return (f"rebuild it with: {remove} {shlex.quote(folder)} && {build_command(config, data_dir)}"
            "  (DIR: NIST's files; leave --manual_dir out to download them)")
