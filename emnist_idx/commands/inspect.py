"""``emnist-idx inspect FILE...``: what each IDX or mapping file holds, and whether it is whole."""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

import numpy as np

from emnist_idx.commands._common import FILE_ERRORS, PROGRESS_BYTES, error, progress
from emnist_idx.errors import IdxFormatError
from emnist_idx._format.files import check_regular
from emnist_idx._format.idx import IdxReader
from emnist_idx._format.mapping import read_label_mapping
from emnist_idx._format.sources import SourceFile

NAME = "inspect"
_CHUNK_BYTES = 1 << 22
_PER_ROW = 8  # label counts printed per line
# Errors a damaged file or zip member can raise while it is read.


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="show the header, size check and contents of IDX and mapping files",
        description="For each IDX file (raw or .gz): type, shape, record count and whether the file "
                    "holds exactly what its header promises (it is read to the end); for label files "
                    "the count of each label; for emnist-*-mapping.txt files the class names. A zip "
                    "(such as NIST's gzip.zip) is inspected member by member. Exits with 1 if any "
                    "file is damaged.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="IDX, mapping or zip file")


def run(args: argparse.Namespace) -> int:
    failures = []
    for path in args.files:
        try:
            sources = _expand(Path(path))
        except (IdxFormatError, OSError, zipfile.BadZipFile) as exc:
            problem = exc.problem if isinstance(exc, IdxFormatError) else exc
            print(f"{path}\n  FAILED: {problem}\n")
            failures.append(f"{path}: {problem}")
            continue
        for source in sources:
            try:
                _inspect(source)
            except FILE_ERRORS as exc:
                problem = (exc.problem if isinstance(exc, IdxFormatError)
                           else f"{type(exc).__name__}: {exc}")
                print(f"  FAILED: {problem}")
                failures.append(f"{source.name}: {problem}")
            print()
    for message in failures:
        error(message)
    return 1 if failures else 0


def _expand(path: Path) -> list[SourceFile]:
    """The file itself, or each member of a zip."""
    if not path.exists():
        raise FileNotFoundError("no such file")
    if path.is_dir():
        raise IsADirectoryError(f"a directory: pass files, or check a bundle with "
                                f"`emnist-idx verify {path}`")
    check_regular(path)  # a FIFO or device: refused at once, never read
    if path.suffix == ".zip" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as bundle:
            members = sorted(name for name in bundle.namelist() if not name.endswith("/"))
        return [SourceFile(path, member) for member in members]
    return [SourceFile(path)]


def _inspect(source: SourceFile) -> None:
    print(source.name)
    if source.name.endswith(".txt"):
        _inspect_mapping(source)
    else:
        _inspect_idx(source)


def _inspect_mapping(source: SourceFile) -> None:
    with source.open() as stream:
        mapping = read_label_mapping(stream, source.name)
    last = mapping.first_label + len(mapping.names) - 1
    print(f"  format:  label mapping, {len(mapping.names)} classes, "
          f"labels {mapping.first_label}..{last}")
    print(f"  classes: {' '.join(mapping.names)}")


def _inspect_idx(source: SourceFile) -> None:
    with source.open() as stream, IdxReader(stream, source.name) as reader:
        header = reader.header
        print(f"  format:  IDX{len(header.shape)}, {'gzip-compressed' if reader.is_gzip else 'raw'}")
        print(f"  dtype:   {header.dtype}")
        print(f"  shape:   {header.shape}")
        print(f"  count:   {header.count:,}")
        histogram = _stream(reader, labels=len(header.shape) == 1 and header.dtype.kind in "iu")
    total = header.size + header.payload_size
    print(f"  size:    OK ({total:,} bytes uncompressed, as the header says)")
    if histogram is not None:
        _print_histogram(histogram)


def _stream(reader: IdxReader, labels: bool) -> dict[int, int] | None:
    """Reads the file to its end (checking its size); returns label counts for label files."""
    header = reader.header
    per_chunk = max(1, _CHUNK_BYTES // max(1, header.record_size))
    counts: dict[int, int] = {}
    with progress(header.count, f"reading {Path(reader.name).name}", " records",
                  big=header.payload_size > PROGRESS_BYTES) as bar:
        for chunk in reader.chunks(per_chunk):
            if labels:
                values, found = np.unique(chunk, return_counts=True)
                for value, number in zip(values.tolist(), found.tolist()):
                    counts[value] = counts.get(value, 0) + number
            bar.update(len(chunk))
    return counts if labels else None


def _print_histogram(counts: dict[int, int]) -> None:
    if not counts:
        print("  labels:  none")
        return
    values = sorted(counts)
    numbers = [counts[value] for value in values]
    print(f"  labels:  {len(values)} distinct, {values[0]}..{values[-1]}, "
          f"{min(numbers):,} to {max(numbers):,} each")
    width = max(len(f"{value}: {counts[value]:,}") for value in values)
    for start in range(0, len(values), _PER_ROW):
        row = values[start : start + _PER_ROW]
        print("    " + "  ".join(f"{value}: {counts[value]:,}".rjust(width) for value in row))
