"""EMNIST label mapping files (``emnist-<split>-mapping.txt``).

Each line is a label followed by one or more decimal Unicode code points, e.g. ``10 65`` (label 10
is "A") or, in letters, ``1 65 97`` (label 1 is "A" and "a" together, named "Aa").
"""

from __future__ import annotations

import dataclasses
import os
from typing import BinaryIO, Union

from emnist_idx.errors import IdxFormatError

MappingSource = Union[str, os.PathLike, BinaryIO]


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
        with open(source, "rb") as stream:
            raw = stream.read()
    else:
        raw = source.read()
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
