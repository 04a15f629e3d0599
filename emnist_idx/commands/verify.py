"""``emnist-idx verify DIR_OR_ZIP``: checks a whole EMNIST bundle, file by file, to the last byte."""

from __future__ import annotations

import argparse
import hashlib
import zipfile
from pathlib import Path

from tensorflow_datasets.core.download.checksums import UrlInfo

from emnist_idx import configs
from emnist_idx._prepare import checks
from emnist_idx.emnist_idx_dataset_builder import Builder
from emnist_idx.commands._common import FILE_ERRORS, PROGRESS_BYTES, error, one_line, progress, warn
from emnist_idx.errors import IdxFormatError
from emnist_idx._format.idx import IdxReader, read_header
from emnist_idx._format.sources import BUNDLE_NAME, SourceFile, ConfigFiles, find_config_files
from emnist_idx.commands.verify_prepared import prepared_folders, verify_prepared

NAME = "verify"
_CHUNK_RECORDS = 8192


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="check a whole EMNIST bundle (directory or gzip.zip), or prepared data",
        description="Checks that every file of each config is present, that headers are valid, that "
                    "image and label counts agree, that labels are classes of the mapping, and reads "
                    "every images file to its end (truncated downloads are the usual damage). When "
                    f"the bundle is (or holds) a {BUNDLE_NAME}, its sha256 is compared with NIST's "
                    "from checksums.tsv: a difference is a warning (bundles not made by NIST, such "
                    "as dummy_data, differ), an error with --strict. Prints one line per problem "
                    "and exits with 1 if there is any. Given prepared data instead (a data_dir, or "
                    "a version folder <data_dir>/emnist_idx/<config>/<version>), it checks its JSON "
                    "files, reads every shard's records (framing, CRC32C, label) and checks that "
                    "each shard (and its array_record copy) is the one prepared.",
    )
    parser.add_argument("bundle", metavar="DIR_OR_ZIP",
                        help="a directory with NIST's files (or their gzip/ folder, or gzip.zip), "
                             "or the zip itself; or a data_dir or version folder of prepared data")
    parser.add_argument("--config", action="append", choices=configs.CONFIGS, metavar="CONFIG",
                        help=f"a config to check (repeatable; default: all six: "
                             f"{', '.join(configs.CONFIGS)})")
    parser.add_argument("--strict", action="store_true",
                        help=f"fail when {BUNDLE_NAME}'s sha256 differs from NIST's")


def run(args: argparse.Namespace) -> int:
    root = Path(args.bundle).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such file or directory")
    if root.is_file() and not zipfile.is_zipfile(root):
        error(f"{root}: not a zip file (a truncated or damaged download?)")
        return 1
    problems: list[str] = []
    if root.is_dir() and (folders := prepared_folders(root)):
        print(f"Verifying prepared data in {root}")
        for folder in folders:
            if not args.config or folder.parent.name in args.config:
                problems += verify_prepared(folder)
        return _report(problems)
    chosen = list(dict.fromkeys(args.config or configs.CONFIGS))
    print(f"Verifying {root} ({', '.join(chosen)})")
    for config in chosen:
        problems += _verify_config(config, root)
    bundle = root if root.is_file() else root / BUNDLE_NAME
    if bundle.is_file():
        problems += _verify_checksum(bundle, strict=args.strict)
        if root.is_dir() and _has_loose_files(root):
            print(f"note: the loose files were checked, not the members of {bundle}; "
                  f"run `emnist-idx verify {bundle}` to check those")
    return _report(problems)


def _report(problems: list[str]) -> int:
    """Prints each problem and the verdict; returns the exit code."""
    for problem in problems:
        error(problem)
    if problems:
        print(f"FAILED: {_plural(len(problems), 'problem')}")
        return 1
    print("OK")
    return 0


def _verify_config(config: str, root: Path) -> list[str]:
    """Checks one config's five files; returns one line per problem."""
    try:
        files = find_config_files(config, [root])
    except FileNotFoundError as exc:
        print(f"{config}: MISSING")
        return [f"{root}: {one_line(exc)}"]
    problems = _catch(checks.check_mapping, files.mapping, config)
    counts = {}
    for split in configs.SPLITS:
        part_problems, counts[split] = _verify_split(files, split)
        problems += part_problems
    source = files.mapping.name.rsplit("/", 1)[0]
    if problems:
        print(f"{config}: FAILED ({_plural(len(problems), 'problem')}) in {source}")
    else:
        print(f"{config}: OK  {counts['train']:,} train + {counts['test']:,} test images, "
              f"{len(configs.CLASS_NAMES[config])} classes, in {source}")
    return problems


def _verify_split(files: ConfigFiles, split: str) -> tuple[list[str], int]:
    """Checks a split's images and labels; returns the problems and the number of images."""
    images, labels = files.images[split], files.labels[split]
    header = None
    problems = []
    try:
        header = checks.check_image_header(images)
    except FILE_ERRORS as exc:
        problems.append(_message(images, exc))
    try:
        count = header.count if header else _header_count(labels)
        checks.read_labels(labels, files.config, count, images.name)
    except FILE_ERRORS as exc:
        problems.append(_message(labels, exc))
    if header is not None:
        problems += _catch(_read_to_end, images)
    return problems, header.count if header else 0


def _header_count(source: SourceFile) -> int:
    with source.open() as stream:
        return read_header(stream, source.name).count


def _read_to_end(source: SourceFile) -> None:
    """Streams a whole file, so that a truncated or corrupt one raises IdxFormatError."""
    with source.open() as stream, IdxReader(stream, source.name) as reader:
        header = reader.header
        with progress(header.count, f"reading {Path(source.name).name}", " images",
                      big=header.payload_size > PROGRESS_BYTES) as bar:
            for chunk in reader.chunks(_CHUNK_RECORDS):
                bar.update(len(chunk))


def _catch(function, source: SourceFile, *args) -> list[str]:
    try:
        function(source, *args)
    except FILE_ERRORS as exc:
        return [_message(source, exc)]
    return []


def _message(source: SourceFile, exc: BaseException) -> str:
    if isinstance(exc, IdxFormatError):
        return one_line(exc)
    return f"{source.name}: {type(exc).__name__}: {one_line(exc)}"


def nist_checksum() -> UrlInfo:
    """NIST's size and sha256 of gzip.zip, as TFDS reads them from the builder's checksums.tsv."""
    return Builder.url_infos[configs.BUNDLE_URL]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as stream, progress(size, f"sha256 {path.name}", "B",
                                              big=size > PROGRESS_BYTES) as bar:
        while block := stream.read(1 << 22):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def _verify_checksum(bundle: Path, strict: bool) -> list[str]:
    expected = nist_checksum()
    size = bundle.stat().st_size
    found = sha256_of(bundle)
    if found == expected.checksum and size == expected.size:
        print(f"{bundle.name}: sha256 matches NIST's {expected.filename} ({expected.checksum})")
        return []
    message = (f"{bundle}: sha256 {found[:16]}... ({size:,} bytes) differs from NIST's "
               f"{expected.filename} ({expected.checksum[:16]}..., {expected.size:,} bytes)")
    if strict:
        return [message]
    warn(f"{message}; expected for bundles not made by NIST, such as dummy_data "
         "(--strict makes this an error)")
    return []


def _has_loose_files(root: Path) -> bool:
    return any(path.name.startswith("emnist-") for folder in (root, root / "gzip") if folder.is_dir()
               for path in folder.iterdir())


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
