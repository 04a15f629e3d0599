"""The IDX reader and writer on real files: round trips, streaming and every kind of damage."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from emnist_idx import IdxFormatError
from emnist_idx._format.idx import IdxReader, iter_idx, read_header, read_idx, write_idx
from tests.bundle_factory import idx_header

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
SHAPES = [(7,), (5, 3), (4, 3, 2), (3, 2, 2, 5)]


def _sample(dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    values = np.arange(int(np.prod(shape))) * 37 - 100
    if np.issubdtype(dtype, np.floating):
        values = values / 7.0
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is not None:
        values = np.clip(values, info.min, info.max)
    return values.astype(dtype).reshape(shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip_every_dtype_and_rank(tmp_path: Path, dtype: type, shape: tuple[int, ...],
                                         suffix: str) -> None:
    array = _sample(dtype, shape)
    path = tmp_path / f"data.idx{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.shape == shape
    assert back.dtype == np.dtype(dtype)
    assert back.dtype.isnative
    np.testing.assert_array_equal(back, array)
    header = read_header(path)
    assert header.shape == shape and header.dtype == np.dtype(dtype)


def test_payload_is_big_endian_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "ints.idx"
    write_idx(path, np.array([1, 256], dtype=np.int32))
    assert path.read_bytes() == idx_header(0x0C, (2,)) + b"\x00\x00\x00\x01\x00\x00\x01\x00"
    np.testing.assert_array_equal(read_idx(path), [1, 256])


def test_gzip_detected_by_magic_not_suffix(tmp_path: Path) -> None:
    array = _sample(np.uint8, (4, 28, 28))
    write_idx(tmp_path / "a.gz", array)
    disguised = tmp_path / "no-suffix-idx3-ubyte"
    disguised.write_bytes((tmp_path / "a.gz").read_bytes())
    np.testing.assert_array_equal(read_idx(disguised), array)
    raw_named_gz = tmp_path / "raw.gz"
    write_idx(tmp_path / "raw", array)
    raw_named_gz.write_bytes((tmp_path / "raw").read_bytes())
    np.testing.assert_array_equal(read_idx(raw_named_gz), array)


def test_gzip_output_is_reproducible(tmp_path: Path) -> None:
    array = _sample(np.int16, (10, 3))
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_reads_file_objects_and_non_seekable_zip_members(tmp_path: Path) -> None:
    array = _sample(np.float32, (6, 4))
    write_idx(tmp_path / "f.gz", array)
    data = (tmp_path / "f.gz").read_bytes()
    np.testing.assert_array_equal(read_idx(io.BytesIO(data)), array)
    with zipfile.ZipFile(tmp_path / "b.zip", "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("gzip/f.gz", data)
    with zipfile.ZipFile(tmp_path / "b.zip") as bundle, bundle.open("gzip/f.gz") as member:
        np.testing.assert_array_equal(read_idx(member, name="b.zip:gzip/f.gz"), array)


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("chunk", [1, 3, 7, 100])
def test_streaming_equals_whole_file(tmp_path: Path, suffix: str, chunk: int) -> None:
    array = _sample(np.int16, (10, 4, 3))
    path = tmp_path / f"s.idx{suffix}"
    write_idx(path, array)
    chunks = list(iter_idx(path, records_per_chunk=chunk))
    assert all(len(c) <= chunk for c in chunks)
    assert len(chunks) == -(-10 // chunk)
    np.testing.assert_array_equal(np.concatenate(chunks), read_idx(path))


def test_streaming_detects_damage_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "long.idx"
    write_idx(path, _sample(np.uint8, (10, 5)))
    path.write_bytes(path.read_bytes() + b"\x00")
    stream = gzip.compress(path.read_bytes())
    with pytest.raises(IdxFormatError, match="<stream>: header promises 50 payload bytes .* file has 51"):
        list(iter_idx(io.BufferedReader(io.BytesIO(stream)), records_per_chunk=4))


GOOD = idx_header(0x08, (3, 2)) + bytes(range(6))
DAMAGED = {
    "empty file": (b"", "file is empty"),
    "bad magic": (b"\x01\x02" + GOOD[2:], "bad magic number 0x0102"),
    "unknown dtype": (GOOD[:2] + b"\x07" + GOOD[3:], "unknown type byte 0x07"),
    "zero rank": (b"\x00\x00\x08\x00", "rank 0 in the header"),
    "rank too high": (b"\x00\x00\x08\x40" + bytes(256), "rank 64 in the header"),
    "header cut short": (GOOD[:6], "file ends inside the dimension sizes"),
    "short payload": (GOOD[:-1], "header promises 6 payload bytes for shape \\(3, 2\\), file has 5"),
    "long payload": (GOOD + b"\x09\x09", "header promises 6 payload bytes for shape \\(3, 2\\), file has 8"),
    "header lies about the count": (
        idx_header(0x08, (60000, 28, 28)) + bytes(784 * 2),
        "header promises 47,040,000 payload bytes for shape \\(60000, 28, 28\\), file has 1,568",
    ),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_damaged_raw_files_name_the_file(tmp_path: Path, case: str) -> None:
    data, message = DAMAGED[case]
    path = tmp_path / "emnist-mnist-train-images-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(IdxFormatError, match=f"^{path}: {message}") as raised:
        read_idx(path)
    assert isinstance(raised.value, ValueError)
    assert raised.value.source == str(path)


@pytest.mark.parametrize("case", sorted(set(DAMAGED) - {"empty file", "header lies about the count"}))
def test_damaged_gzip_files_name_the_file(tmp_path: Path, case: str) -> None:
    data, message = DAMAGED[case]
    path = tmp_path / "emnist-mnist-train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(data))
    with pytest.raises(IdxFormatError, match=f"^{path}: {message}"):
        read_idx(path)


def test_lying_header_fails_before_allocating(tmp_path: Path) -> None:
    # 4 billion images of 28x28 would be ~3 TB: must be rejected from the file sizes alone.
    lie = idx_header(0x08, (4_000_000_000, 28, 28)) + bytes(784)
    raw = tmp_path / "lie-idx3-ubyte"
    raw.write_bytes(lie)
    with pytest.raises(IdxFormatError, match="header promises 3,136,000,000,000 payload bytes"):
        read_header(raw)
    compressed = tmp_path / "lie-idx3-ubyte.gz"
    compressed.write_bytes(gzip.compress(lie))
    with pytest.raises(IdxFormatError, match="more than a .*-byte gzip file can hold"):
        read_idx(compressed)


def test_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "emnist-digits-test-labels-idx1-ubyte.gz"
    write_idx(path, np.arange(5000, dtype=np.uint8) % 10)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(IdxFormatError, match=f"^{path}: corrupt or truncated gzip data"):
        read_idx(path)


def test_not_gzip_after_gzip_magic(tmp_path: Path) -> None:
    path = tmp_path / "fake.gz"
    path.write_bytes(b"\x1f\x8b" + b"this is not deflate data at all" * 3)
    with pytest.raises(IdxFormatError, match=f"^{path}: corrupt or truncated gzip data"):
        read_idx(path)


def test_text_file_is_not_idx(tmp_path: Path) -> None:
    path = tmp_path / "emnist-mnist-mapping.txt"
    path.write_text("0 48\n1 49\n")
    with pytest.raises(IdxFormatError, match="bad magic number 0x30203438"):
        read_idx(path)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing-here.gz"):
        read_idx(tmp_path / "nothing-here.gz")


def test_reader_reports_header_and_progress(tmp_path: Path) -> None:
    path = tmp_path / "r.gz"
    write_idx(path, _sample(np.float64, (5, 2)))
    with IdxReader(path) as reader:
        assert reader.is_gzip
        assert reader.header.count == 5 and reader.header.record_size == 16
        assert reader.header.size == 12 and reader.header.payload_size == 80
        first = reader.read(2)
        assert reader.records_left == 3
        rest = reader.read()
        reader.finish()
    np.testing.assert_array_equal(np.concatenate([first, rest]), _sample(np.float64, (5, 2)))


def test_write_rejects_unsupported_arrays(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="IDX cannot store dtype int64"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="rank 1 to 8, got rank 0"):
        write_idx(tmp_path / "x", np.uint8(3))
