"""EMNIST label mapping files (``emnist-<split>-mapping.txt``).

Each line is a label followed by one or more decimal Unicode code points, e.g. ``10 65`` (label 10
is "A") or, in letters, ``1 65 97`` (label 1 is "A" and "a" together, named "Aa").
"""

from __future__ import annotations

import dataclasses
import os
from typing import BinaryIO, Union

from emnist_idx._format.files import open_regular
from emnist_idx.errors import IdxFormatError

MappingSource = Union[str, os.PathLike, BinaryIO]
# NIST's mapping files are under 1 KB; anything past this is not one (and is never read whole).
MAX_MAPPING_BYTES = 64 << 10
# Numbers longer than this are refused before conversion (a code point has at most 7 digits).
_MAX_DIGITS = 20


@dataclasses.dataclass(frozen=True)
class LabelMapping:
    """Class names in label order, and the label the file gives the first class (1 in letters)."""

    first_label: int
    names: tuple[str, ...]


def read_label_mapping(source: MappingSource, name: str | None = None) -> LabelMapping:
    """Parses a mapping file; labels must be contiguous and each line well formed."""
    name = name or (os.fspath(source) if isinstance(source, (str, os.PathLike))
                    else str(getattr(source, "name", "<stream>")))
    if isinstance(source, (str, os.PathLike)):
        with open_regular(source) as stream:
            raw = stream.read(MAX_MAPPING_BYTES + 1)
    else:
        raw = source.read(MAX_MAPPING_BYTES + 1)
    if len(raw) > MAX_MAPPING_BYTES:
        raise IdxFormatError(name, f"larger than {MAX_MAPPING_BYTES // 1024} KiB: a mapping file "
                                   "has one short line per class and is under 1 KB")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise IdxFormatError(name, f"expected ASCII digits and spaces, found byte 0x{raw[exc.start]:02x} "
                                   f"at offset {exc.start}") from exc
    labels: list[int] = []
    names: list[str] = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) < 2 or not all(field.isdigit() for field in fields):
            raise IdxFormatError(name, f"line {line_number}: expected a label and one or more decimal "
                                       f"code points, found {line.strip()!r}")
        longest = max(fields, key=len)
        if len(longest) > _MAX_DIGITS:
            raise IdxFormatError(name, f"line {line_number}: a number of {len(longest):,} digits, "
                                       f"expected labels and code points of at most {_MAX_DIGITS}")
        label, *code_points = (int(field) for field in fields)
        if labels and label != labels[-1] + 1:
            expected = labels[-1] + 1
            kind = "duplicate" if label in labels else "non-contiguous"
            raise IdxFormatError(name, f"line {line_number}: {kind} label {label}, expected {expected}")
        try:
            names.append("".join(chr(point) for point in code_points))
        except (ValueError, OverflowError) as exc:
            raise IdxFormatError(name, f"line {line_number}: code point out of Unicode's range in "
                                       f"{line.strip()!r}") from exc
        labels.append(label)
    if not labels:
        raise IdxFormatError(name, "no label lines: expected one line per class")
    if len(set(names)) != len(names):
        raise IdxFormatError(name, f"two labels share a class name: {names}")
    return LabelMapping(first_label=labels[0], names=tuple(names))


def read_mapping(source: MappingSource, name: str | None = None) -> list[str]:
    """Returns the class names of a mapping file in label order."""
    return list(read_label_mapping(source, name).names)
