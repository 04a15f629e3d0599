"""Finding a config's EMNIST files in whatever shape users hold them.

Accepted shapes, looked up in this order for each file:
  1. loose files in the directory or its ``gzip/`` subfolder: NIST's ``.gz`` names, or the
     gunzipped IDX files (``...-idx3-ubyte`` or ``....idx3-ubyte``);
  2. NIST's bundle ``gzip.zip`` (or any other ``.zip`` there), read member by member, streamed,
     never extracted. The directory may also be the path of the zip itself. A zip holding two
     members that are one file (the same name twice, or e.g. ``gzip/x.gz`` and ``x``) is refused:
     which one is meant cannot be known. macOS's ``__MACOSX/._*`` entries match no EMNIST name.

A directory may be a URL etils.epath reaches (``gs://bucket/emnist``): the same shapes are looked
up there, files are read through epath (zip members stream from the seekable object, nothing is
copied whole), and every message names the full URL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, Union

from etils import epath

from emnist_idx import configs
from emnist_idx._format import storage
from emnist_idx._format.files import check_regular, file_kind, open_member, open_regular
from emnist_idx.errors import IdxFormatError

BUNDLE_NAME = "gzip.zip"
_SUBFOLDER = "gzip"
Location = Union[Path, epath.Path]  # a local path, or a URL as epath keeps it (gs://...)


def location(root: str | os.PathLike) -> Location:
    """``root`` as a path to look files up in: local (``~`` expanded) or a URL (kept whole)."""
    if storage.is_local(root):
        return Path(root).expanduser()
    return storage.path(root)


@dataclasses.dataclass(frozen=True)
class SourceFile:
    """One EMNIST file: on disk (or object storage), or a member of a zip."""

    path: Location
    member: str | None = None

    @property
    def name(self) -> str:
        """Where the file is, for messages: ``/x/gzip.zip:gzip/emnist-...gz`` for zip members."""
        return f"{self.path}:{self.member}" if self.member else str(self.path)

    @contextlib.contextmanager
    def open(self) -> Iterator[BinaryIO]:
        """Opens the file (or zip member) for streaming binary reads.

        Raises IdxFormatError for a FIFO, device or directory, and for a zip member that is
        encrypted, compressed other than stored or deflated, or declares impossible sizes.
        """
        if self.member is None:
            with open_regular(self.path) as stream:
                yield stream
            return
        with open_regular(self.path) as raw, zipfile.ZipFile(raw) as bundle, \
                open_member(bundle, self.member, self.name) as stream:
            yield stream


@dataclasses.dataclass(frozen=True)
class ConfigFiles:
    """The five files of one EMNIST config."""

    config: str
    images: dict[str, SourceFile]  # keyed by "train" / "test"
    labels: dict[str, SourceFile]
    mapping: SourceFile

    def all(self) -> list[SourceFile]:
        """Every file, in NIST's order."""
        files = [self.mapping]
        for split in configs.SPLITS:
            files += [self.images[split], self.labels[split]]
        return files


def candidate_names(gz_name: str) -> list[str]:
    """The names a file may carry: NIST's ``.gz`` name, gunzipped, or with a dot before idxN."""
    if not gz_name.endswith(".gz"):
        return [gz_name]
    raw = gz_name[: -len(".gz")]
    dotted = raw.replace("-idx", ".idx")
    return [gz_name, raw, dotted, dotted + ".gz"]


def find_config_files(config: str, roots: Sequence[str | os.PathLike]) -> ConfigFiles:
    """Locates a config's files under ``roots`` (directories or zip files).

    Raises:
      FileNotFoundError: naming each missing file and every place searched.
    """
    configs.check_config(config)
    locator = _Locator([location(root) for root in roots])
    found = {name: locator.find(name) for name in configs.file_names(config)}
    missing = [name for name, source in found.items() if source is None]
    if missing:
        raise FileNotFoundError(_missing_message(config, missing, locator.searched()))
    return ConfigFiles(
        config=config,
        images={s: found[configs.image_file(config, s)] for s in configs.SPLITS},  # type: ignore[misc]
        labels={s: found[configs.label_file(config, s)] for s in configs.SPLITS},  # type: ignore[misc]
        mapping=found[configs.mapping_file(config)],  # type: ignore[arg-type]
    )


class _Locator:
    """Looks names up in loose files first, then in zip bundles, remembering what it searched."""

    def __init__(self, roots: list[Location]) -> None:
        self.directories: list[Location] = []
        self.zips: list[Location] = []
        for root in roots:
            if root.is_file() and _is_zip(root):
                self.zips.append(root)
            elif root.exists() and not root.is_dir():
                kind = (file_kind(os.stat(root).st_mode) if storage.is_local(root)
                        else "an object that is not a zip")
                raise IdxFormatError(root, f"is {kind}, expected a directory or a zip file")
            else:
                self.directories += [root, root / _SUBFOLDER]
                self.zips += _bundles_in(root)
        self._members: dict[Location, list[str]] = {}

    def find(self, gz_name: str) -> SourceFile | None:
        names = candidate_names(gz_name)
        for directory in self.directories:
            for name in names:
                if (directory / name).exists():
                    check_regular(directory / name)  # a FIFO or folder by that name: say so now
                    return SourceFile(directory / name)
        wanted = {member for name in names for member in (f"{_SUBFOLDER}/{name}", name)}
        for bundle in self.zips:
            # (entry number, name) of every member that is this file: one may be, never two
            matching = [(number, member) for number, member in enumerate(self._zip_members(bundle), 1)
                        if member in wanted]
            if len(matching) > 1:
                raise IdxFormatError(bundle, f"holds {len(matching)} members that are {gz_name}: "
                                             f"{' and '.join(f'{m} (entry {n})' for n, m in matching)}; "
                                             "expected exactly one (which is the real one?)")
            if matching:
                return SourceFile(bundle, matching[0][1])
        return None

    def _zip_members(self, bundle: Location) -> list[str]:
        """The bundle's member names in their order, each as often as it occurs."""
        if bundle not in self._members:
            try:
                with open_regular(bundle) as raw, zipfile.ZipFile(raw) as opened:
                    self._members[bundle] = opened.namelist()
            except (zipfile.BadZipFile, OSError):
                self._members[bundle] = []
        return self._members[bundle]

    def searched(self) -> list[str]:
        return [str(d) for d in self.directories] + [f"{z} (zip)" for z in self.zips]


def _bundles_in(directory: Location) -> list[Location]:
    """Zip files in a directory, NIST's gzip.zip first."""
    if not directory.is_dir():
        return []
    zips = sorted(p for p in directory.iterdir() if p.suffix == ".zip" and not p.is_dir())
    for path in zips:
        check_regular(path)
    return sorted(zips, key=lambda p: p.name != BUNDLE_NAME)


def _is_zip(path: Location) -> bool:
    """Whether a regular file is a zip (a FIFO or device is refused, never read)."""
    with open_regular(path) as stream:
        return zipfile.is_zipfile(stream)


def _missing_message(config: str, missing: list[str], searched: list[str]) -> str:
    places = "\n  ".join(searched) or "(no directory given)"
    return (
        f"EMNIST {config!r} files not found: {', '.join(missing)} (also accepted gunzipped, "
        f"without .gz).\nSearched:\n  {places}\n"
        f"Download NIST's bundle {BUNDLE_NAME} from {configs.BUNDLE_URL} and put it (or its "
        f"extracted gzip/ folder) in a directory passed as the manual dir: "
        f"`{configs.build_command()}`, "
        f"`emnist_idx.load(..., manual_dir=DIR)` or "
        f"`tfds.download.DownloadConfig(manual_dir=DIR)`."
    )
