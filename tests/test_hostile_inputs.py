"""Hostile inputs: bombs in bounded memory, special files, unsupported zips, absurd mapping files.

Every case is a real file on disk; every error must name the file (or zip member) at fault.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from emnist_idx import configs
from emnist_idx._format.idx import write_idx
from emnist_idx._format.mapping import read_label_mapping
from emnist_idx._format.sources import find_config_files
from emnist_idx._prepare import checks
from emnist_idx.commands import cli
from emnist_idx.errors import IdxFormatError

from tests.bundle_factory import REPO, default_splits, idx_header, write_config, zip_folder

CONFIG = "mnist"
# Peak RSS a hostile bundle may add to the checking process (the README's bound).
RSS_BOUND_MB = 100
_BLOCK = 1 << 20
_CHILD = """
import json, sys
from emnist_idx._format.sources import find_config_files
from emnist_idx._prepare import checks
from emnist_idx.errors import IdxFormatError


def status_kb(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


# ru_maxrss is not used: it keeps the spawning parent's peak (pytest's) across exec. Instead the
# kernel's high-water mark is reset to the current RSS, and read again after the check.
with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")
before = status_kb("VmRSS")
try:
    checks.check_config_files(find_config_files(sys.argv[1], [sys.argv[2]]))
    outcome = "accepted"
except IdxFormatError as exc:
    outcome = str(exc)
growth = status_kb("VmHWM") - before
print(json.dumps({"message": outcome, "growth_mb": growth / 1024, "before_mb": before / 1024}))
"""


def check_in_child(bundle: Path, config: str = CONFIG) -> tuple[str, float]:
    """Checks a bundle in a fresh process; returns the error message and its peak RSS growth (MB)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _CHILD, config, str(bundle)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\n{bundle.stat().st_size:,}-byte bundle: RSS {result['before_mb']:.1f} MB after "
          f"imports, peak +{result['growth_mb']:.1f} MB while checking; {result['message'][-90:]}")
    return result["message"], result["growth_mb"]


def zeros_gzip(header: bytes, zero_bytes: int) -> bytes:
    """A valid gzip of ``header`` and ``zero_bytes`` zeros (a multiple of 1 MiB), about 1000:1.

    Each MiB is deflated once after a full flush, so its compressed block can be repeated.
    """
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = deflate.compress(header) + deflate.flush(zlib.Z_FULL_FLUSH)
    zeros = bytes(_BLOCK)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(header)
    for _ in range(zero_bytes // _BLOCK):
        crc = zlib.crc32(zeros, crc)
    tail = deflate.flush()
    size = (len(header) + zero_bytes) & 0xFFFFFFFF
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + head + block * (zero_bytes // _BLOCK)
            + tail + struct.pack("<II", crc, size))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A good mnist config, loose, in NIST's names."""
    return write_config(tmp_path / "src" / "gzip", CONFIG, default_splits(CONFIG, train=20, test=10))


def bundle_of(folder: Path, tmp_path: Path) -> Path:
    zip_path = tmp_path / "zipped" / "gzip.zip"
    zip_path.parent.mkdir(exist_ok=True)
    return zip_folder(folder, zip_path)


def stored_bundle_of(folder: Path, tmp_path: Path) -> Path:
    """Like NIST's gzip.zip: the .gz files stored as they are."""
    zip_path = tmp_path / "zipped" / "gzip.zip"
    zip_path.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(zip_path, "w") as bundle:
        for path in sorted(folder.iterdir()):
            method = zipfile.ZIP_STORED if path.suffix == ".gz" else zipfile.ZIP_DEFLATED
            bundle.write(path, f"gzip/{path.name}", compress_type=method)
    return zip_path


def member(zip_path: Path, name: str) -> str:
    return f"{zip_path}:gzip/{name}"


def check(root: Path) -> None:
    checks.check_config_files(find_config_files(CONFIG, [root]))


# --- bombs, measured in a child process ---

@pytest.mark.slow
def test_labels_bomb_in_zip_is_refused_in_bounded_memory(folder, tmp_path):
    labels_name = configs.label_file(CONFIG, "train")
    images_name = configs.image_file(CONFIG, "train")
    count = 1600 * _BLOCK  # 1.6 GB of labels in about 1.6 MB
    (folder / labels_name).write_bytes(zeros_gzip(idx_header(0x08, (count,)), count))
    # The images header agrees with the labels' count, so only the size bound stands in the way.
    (folder / images_name).write_bytes(zeros_gzip(idx_header(0x08, (count, 28, 28)), _BLOCK))
    zip_path = stored_bundle_of(folder, tmp_path)
    assert 1_600_000 < zip_path.stat().st_size < 1_800_000
    message, growth_mb = check_in_child(zip_path)
    assert message.startswith(f"{member(zip_path, images_name)}: header promises")
    assert "gzip file can hold" in message
    assert growth_mb < RSS_BOUND_MB


@pytest.mark.slow
def test_labels_bomb_with_true_images_fails_the_count_check_in_bounded_memory(folder, tmp_path):
    labels_name = configs.label_file(CONFIG, "train")
    count = 1600 * _BLOCK
    (folder / labels_name).write_bytes(zeros_gzip(idx_header(0x08, (count,)), count))
    zip_path = stored_bundle_of(folder, tmp_path)
    message, growth_mb = check_in_child(zip_path)
    assert message.startswith(f"{member(zip_path, labels_name)}: header says {count:,} labels, "
                              f"images file {member(zip_path, configs.image_file(CONFIG, 'train'))}"
                              " has 20 images")
    assert growth_mb < RSS_BOUND_MB


@pytest.mark.slow
def test_mapping_bomb_of_blank_lines_is_refused_in_bounded_memory(folder, tmp_path):
    zip_path = tmp_path / "zipped" / "gzip.zip"
    zip_path.parent.mkdir()
    mapping_name = configs.mapping_file(CONFIG)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(folder.iterdir()):
            if path.name != mapping_name:
                bundle.write(path, f"gzip/{path.name}")
        with bundle.open(f"gzip/{mapping_name}", "w", force_zip64=True) as stream:
            for _ in range(300):  # 300 MB of blank lines
                stream.write(b"\n" * _BLOCK)
    message, growth_mb = check_in_child(zip_path)
    assert message == (f"{member(zip_path, mapping_name)}: larger than 64 KiB: a mapping file has "
                       "one short line per class and is under 1 KB")
    assert growth_mb < RSS_BOUND_MB


# --- mapping files ---

def test_loose_mapping_file_past_the_cap_names_file_and_limit(tmp_path):
    path = tmp_path / configs.mapping_file(CONFIG)
    path.write_text("0 48\n" * 20_000)
    with pytest.raises(IdxFormatError, match=f"^{path}: larger than 64 KiB"):
        read_label_mapping(path)


def test_label_of_6000_digits_is_a_format_error(tmp_path):
    path = tmp_path / configs.mapping_file(CONFIG)
    path.write_text("0 48\n" + "1" * 6000 + " 49\n")
    with pytest.raises(IdxFormatError, match=f"^{path}: line 2: a number of 6,000 digits"):
        read_label_mapping(path)


# --- special files: refused at once, never read ---

@contextlib.contextmanager
def deadline(seconds: int):
    """Fails the test instead of hanging if the code under test blocks (on a FIFO, say)."""
    def expire(*_):
        raise TimeoutError(f"still blocked after {seconds} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def make_special(kind: str, path: Path) -> str:
    """Puts a FIFO, a device (a symlink to /dev/zero) or a directory at ``path``."""
    path.unlink()
    if kind == "FIFO":
        os.mkfifo(path)
        return "a FIFO (named pipe)"
    if kind == "device":
        path.symlink_to("/dev/zero")
        return "a character device"
    path.mkdir()
    return "a directory"


@pytest.mark.parametrize("kind", ["FIFO", "device", "directory"])
def test_special_file_named_like_an_idx_file_is_refused_at_once(folder, kind):
    path = folder / configs.image_file(CONFIG, "test")
    what = make_special(kind, path)
    with deadline(20), pytest.raises(IdxFormatError) as raised:
        check(folder)
    assert str(raised.value) == f"{path}: is {what}, expected a regular file"


@pytest.mark.parametrize("kind", ["FIFO", "device", "directory"])
def test_special_mapping_file_is_refused_at_once(folder, kind):
    path = folder / configs.mapping_file(CONFIG)
    what = make_special(kind, path)
    with deadline(20), pytest.raises(IdxFormatError) as raised:
        check(folder)
    assert str(raised.value) == f"{path}: is {what}, expected a regular file"


def test_fifo_named_gzip_zip_is_refused_at_once(tmp_path):
    fifo = tmp_path / "gzip.zip"
    os.mkfifo(fifo)
    with deadline(20), pytest.raises(IdxFormatError, match=f"^{fifo}: is a FIFO"):
        find_config_files(CONFIG, [tmp_path])
    with deadline(20), pytest.raises(IdxFormatError, match=f"^{fifo}: is a FIFO"):
        find_config_files(CONFIG, [fifo])


def test_inspect_fifo_returns_with_one_error_line(tmp_path, capsys):
    fifo = tmp_path / configs.label_file(CONFIG, "train")
    os.mkfifo(fifo)
    with deadline(20):
        code = cli.main(["inspect", str(fifo)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines() == [f"emnist-idx: error: {fifo}: is a FIFO (named pipe), expected a "
                                "regular file"]


# --- zip members we cannot or must not read ---

def patch_member(zip_path: Path, name: str, *, flag: int | None = None, method: int | None = None,
                 file_size: int | None = None) -> None:
    """Rewrites a member's flag bits, method or declared size in its local and central headers."""
    data = bytearray(zip_path.read_bytes())
    with zipfile.ZipFile(zip_path) as bundle:
        local = bundle.getinfo(name).header_offset
    central = data.index(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(name)] != name.encode():
        central = data.index(b"PK\x01\x02", central + 4)
    for offset in (local + 6, central + 8):  # the flag bits; method, CRC and sizes follow alike
        if flag is not None:
            struct.pack_into("<H", data, offset, flag)
        if method is not None:
            struct.pack_into("<H", data, offset + 2, method)
        if file_size is not None:
            struct.pack_into("<I", data, offset + 16, file_size)
    zip_path.write_bytes(bytes(data))


@pytest.mark.parametrize("patch, problem", [
    ({"method": 9}, "zip member uses compression method 9 (Deflate64): expected stored (0) or "
                    "deflated (8); re-zip the files or extract them"),
    ({"flag": 0x1}, "zip member is encrypted: extract it with its password first"),
    ({"file_size": 4_000_000_000}, "zip member declares 4,000,000,000 bytes from "),
])
@pytest.mark.parametrize("name", [configs.label_file(CONFIG, "test"), configs.mapping_file(CONFIG)])
def test_unreadable_zip_member_is_a_format_error_naming_zip_and_member(folder, tmp_path, name,
                                                                        patch, problem):
    zip_path = bundle_of(folder, tmp_path)
    patch_member(zip_path, f"gzip/{name}", **patch)
    with pytest.raises(IdxFormatError) as raised:
        check(zip_path)
    assert str(raised.value).startswith(f"{member(zip_path, name)}: {problem}")


def test_inspect_deflate64_member_prints_one_line_naming_it(folder, tmp_path, capsys):
    zip_path = bundle_of(folder, tmp_path)
    name = configs.image_file(CONFIG, "train")
    patch_member(zip_path, f"gzip/{name}", method=9)
    code = cli.main(["inspect", str(zip_path)])
    errors = [line for line in capsys.readouterr().err.splitlines()]
    assert code == 1
    assert errors == [f"emnist-idx: error: {member(zip_path, name)}: zip member uses compression "
                      "method 9 (Deflate64): expected stored (0) or deflated (8); re-zip the files "
                      "or extract them"]


def test_zip_member_longer_than_declared_is_a_format_error(folder, tmp_path):
    """A member whose central directory understates its size: zip's CRC fails, named as ours."""
    zip_path = bundle_of(folder, tmp_path)
    name = configs.label_file(CONFIG, "train")
    with zipfile.ZipFile(zip_path) as bundle:
        size = bundle.getinfo(f"gzip/{name}").file_size
    patch_member(zip_path, f"gzip/{name}", file_size=size - 8)
    with pytest.raises(IdxFormatError, match=f"^{member(zip_path, name)}: "):
        check(zip_path)


def test_labels_stay_uint8_and_zero_based(folder):
    labels = checks.check_config_files(find_config_files(CONFIG, [folder]))["train"].labels
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, np.arange(20) % 10)


def test_letters_labels_shift_to_zero_based_in_uint8(tmp_path):
    root = write_config(tmp_path / "letters", "letters", default_splits("letters", train=30, test=5))
    labels = checks.check_config_files(find_config_files("letters", [root]))["train"].labels
    assert labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, np.arange(30) % 26)


def test_out_of_range_label_in_a_later_chunk_names_its_index(folder, monkeypatch):
    monkeypatch.setattr(checks, "_LABELS_PER_CHUNK", 4)
    path = folder / configs.label_file(CONFIG, "train")
    labels = (np.arange(20) % 10).astype(np.uint8)
    labels[13] = 10
    write_idx(path, labels)
    with pytest.raises(IdxFormatError, match=f"^{path}: label 10 at index 13 is not a class"):
        check(folder)


# --- the command line: one line per failure, never a traceback (unless asked) ---

def _prepared_copy(prepared_data_dir: Path, tmp_path: Path) -> Path:
    import shutil

    data_dir = tmp_path / "data"
    shutil.copytree(prepared_data_dir / "emnist_idx" / CONFIG, data_dir / "emnist_idx" / CONFIG)
    return data_dir


def _flip_a_byte_in_the_test_shard(data_dir: Path) -> Path:
    shard = next((data_dir / "emnist_idx" / CONFIG / "1.0.0").glob("*-test.tfrecord-*"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    return shard


def test_show_on_damaged_prepared_data_is_one_line_exit_1(prepared_data_dir, tmp_path, capsys):
    data_dir = _prepared_copy(prepared_data_dir, tmp_path)
    _flip_a_byte_in_the_test_shard(data_dir)
    code = cli.main(["show", CONFIG, "--data_dir", str(data_dir), "-o", str(tmp_path / "g.png")])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("emnist-idx: error: "), err


@pytest.mark.parametrize("how", ["--debug", "EMNIST_IDX_DEBUG=1"])
def test_debug_shows_the_traceback_then_the_line(prepared_data_dir, tmp_path, capsys, monkeypatch,
                                                 how):
    data_dir = _prepared_copy(prepared_data_dir, tmp_path)
    _flip_a_byte_in_the_test_shard(data_dir)
    argv = ["show", CONFIG, "--data_dir", str(data_dir), "-o", str(tmp_path / "g.png")]
    if how == "--debug":
        argv.insert(0, "--debug")
    else:
        monkeypatch.setenv("EMNIST_IDX_DEBUG", "1")
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("Traceback (most recent call last):"), err
    assert err.strip().splitlines()[-1].startswith("emnist-idx: error: ")
    assert "--debug" not in err.strip().splitlines()[-1]  # no hint to do what was done


def test_foreign_error_names_its_type_and_the_debug_switch(monkeypatch, capsys):
    from emnist_idx.commands import show

    def fail(*_args):
        raise RuntimeError("something inside TensorFlow\nsecond line")
    monkeypatch.setattr(show, "samples", fail)
    code = cli.main(["show", CONFIG])
    assert code == 1
    assert capsys.readouterr().err.splitlines() == [
        "emnist-idx: error: RuntimeError: something inside TensorFlow (run with --debug or "
        "EMNIST_IDX_DEBUG=1 for the traceback)"]


@pytest.mark.parametrize("argv", [["-n", "100000000"], ["--columns", "100000000"]])
def test_show_with_an_absurd_grid_is_a_usage_error(argv, capsys):
    code = cli.main(["show", CONFIG, *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines()[-1].endswith("at most 10,000 fit one grid, got 100,000,000")


def test_inspect_mapping_with_a_6000_digit_label_is_one_line(tmp_path, capsys):
    path = tmp_path / configs.mapping_file(CONFIG)
    path.write_text("0 48\n" + "1" * 6000 + " 49\n")
    code = cli.main(["inspect", str(path)])
    assert code == 1
    assert capsys.readouterr().err.splitlines() == [
        f"emnist-idx: error: {path}: line 2: a number of 6,000 digits, expected labels and code "
        "points of at most 20"]


@pytest.mark.parametrize("form", ["separate", "joined"])
def test_build_with_a_missing_manual_dir_is_one_line(tmp_path, capfd, form):
    missing = tmp_path / "no-such-dir"
    option = ["--manual_dir", str(missing)] if form == "separate" else [f"--manual_dir={missing}"]
    code = cli.main(["build", CONFIG, *option, "--data_dir", str(tmp_path / "d")])
    assert code == 1
    assert capfd.readouterr().err.splitlines() == [
        f"emnist-idx: error: manual dir {missing} does not exist: pass the directory (or the "
        "gzip.zip) holding NIST's EMNIST files"]


@pytest.mark.slow
def test_tfds_failure_inside_build_is_one_line(tmp_path, capfd):
    """A manual dir without the files: TFDS's prepare fails in the child, reported in one line."""
    empty = tmp_path / "empty"
    empty.mkdir()
    code = cli.main(["build", CONFIG, "--manual_dir", str(empty), "--data_dir", str(tmp_path / "d")])
    err = capfd.readouterr().err
    assert code == 1
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("emnist-idx: error: ")]
    assert len(errors) == 1, err
    assert errors[0].startswith(f"emnist-idx: error: EMNIST {CONFIG!r} files not found: "
                                f"{configs.mapping_file(CONFIG)}, "), err
    assert str(empty) in err
