"""Mapping files in each config's format, and every way they can be malformed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from emnist_idx import IdxFormatError, configs
from emnist_idx._format.mapping import read_label_mapping, read_mapping

from emnist_idx.synthetic import mapping_text


@pytest.mark.parametrize("config", configs.CONFIGS)
def test_each_split_format(tmp_path: Path, config: str) -> None:
    path = tmp_path / configs.mapping_file(config)
    path.write_text(mapping_text(config))
    mapping = read_label_mapping(path)
    assert mapping.names == configs.CLASS_NAMES[config]
    assert mapping.first_label == configs.FIRST_LABEL[config]
    assert read_mapping(path) == list(configs.CLASS_NAMES[config])


def test_known_lines() -> None:
    balanced = read_mapping(io.BytesIO(b"0 48\n1 49\n"))
    assert balanced == ["0", "1"]
    letters = read_label_mapping(io.BytesIO(b"1 65 97\r\n2 66 98\r\n\r\n"))
    assert letters.first_label == 1 and letters.names == ("Aa", "Bb")
    assert read_mapping(io.BytesIO(b"36 97\n37 98\n"))[0] == "a"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 48\n1\n", "line 2: expected a label and one or more decimal code points, found '1'"),
        ("0 48\n1 forty-nine\n", "line 2: expected a label .* found '1 forty-nine'"),
        ("0 48\n-1 49\n", "line 2: expected a label"),
        ("0 48\n0 49\n", "line 2: duplicate label 0, expected 1"),
        ("0 48\n2 50\n", "line 2: non-contiguous label 2, expected 1"),
        ("0 48\n1 48\n", "two labels share a class name"),
        ("0 99999999\n", "line 1: code point out of Unicode's range"),
        ("\n\n", "no label lines"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "emnist-balanced-mapping.txt"
    path.write_text(text)
    with pytest.raises(IdxFormatError, match=f"^{path}: {message}"):
        read_mapping(path)


def test_binary_junk_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "emnist-digits-mapping.txt"
    path.write_bytes(b"0 48\n\xff\xfe")
    with pytest.raises(IdxFormatError, match="expected ASCII digits and spaces, found byte 0xff at offset 5"):
        read_mapping(path)
