"""Writes the small synthetic EMNIST bundle the tests use: ``gzip/`` and ``gzip.zip`` next to this file.

Run ``python dummy_data/make_dummy_data.py``; it is deterministic, so a second run gives
byte-identical files. balanced is big enough for a small CNN to learn its glyphs (24 train and 6
test examples per class); the other splits hold a few examples per class.
"""

from __future__ import annotations

from pathlib import Path

from emnist_idx.configs import CLASS_NAMES
from emnist_idx.synthetic import write_bundle

SEED = 20170517  # EMNIST's arXiv submission date
# (train, test) examples per class.
PER_CLASS = {
    "byclass": (4, 2),
    "bymerge": (4, 2),
    "balanced": (24, 6),
    "letters": (4, 2),
    "digits": (4, 2),
    "mnist": (4, 2),
}
COUNTS = {
    split: (train * len(CLASS_NAMES[split]), test * len(CLASS_NAMES[split]))
    for split, (train, test) in PER_CLASS.items()
}


def main() -> None:
    directory = Path(__file__).resolve().parent
    write_bundle(directory, COUNTS, seed=SEED, make_zip=True, compresslevel=9)
    for split, (train, test) in COUNTS.items():
        print(f"{split}: {train} train, {test} test")
    print(f"wrote {directory / 'gzip'} and {directory / 'gzip.zip'}")


if __name__ == "__main__":
    main()
