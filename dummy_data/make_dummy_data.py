"""Writes the small synthetic EMNIST bundle the tests use: ``gzip/`` and ``gzip.zip`` next to this file.

Run ``python dummy_data/make_dummy_data.py``; it is deterministic, so a second run gives
byte-identical files. balanced is big enough for a small CNN to learn its glyphs (24 train and 6
test examples per class); the other splits hold a few examples per class (``emnist_idx.synthetic``'s
``DUMMY_*`` constants).
"""

from __future__ import annotations

from pathlib import Path

from emnist_idx.synthetic import DUMMY_COMPRESSLEVEL, DUMMY_COUNTS, DUMMY_SEED, write_bundle


def main() -> None:
    directory = Path(__file__).resolve().parent
    write_bundle(directory, DUMMY_COUNTS, seed=DUMMY_SEED, make_zip=True,
                 compresslevel=DUMMY_COMPRESSLEVEL)
    for split, (train, test) in DUMMY_COUNTS.items():
        print(f"{split}: {train} train, {test} test")
    print(f"wrote {directory / 'gzip'} and {directory / 'gzip.zip'}")


if __name__ == "__main__":
    main()
