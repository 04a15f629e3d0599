"""Issue #21 items 4-7 on real files: pixel statistics, zips, leftovers of kills, edge errors."""

from __future__ import annotations

import concurrent.futures
import gzip
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import pytest
import tensorflow_datasets as tfds

from emnist_idx import IdxFormatError, PreparedDataError
from emnist_idx._format.sources import find_config_files
from emnist_idx._pipeline.loading import load
from emnist_idx._pipeline.preparing import prepared_builder
from tests.bundle_factory import DUMMY_GZIP, REPO


@pytest.fixture(scope="module")
def digits_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data_dir with digits prepared from dummy_data."""
    data_dir = tmp_path_factory.mktemp("edges")
    prepared_builder("digits", data_dir=data_dir, manual_dir=DUMMY_GZIP)
    return data_dir


def _copy_digits(digits_data_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A fresh data_dir with a copy of the prepared digits; returns it and its version dir."""
    target = tmp_path / "data" / "emnist_idx" / "digits"
    shutil.copytree(digits_data_dir / "emnist_idx" / "digits", target)
    return tmp_path / "data", target / "1.0.0"


# --- item 4: statistics that are not numbers ---

@pytest.mark.parametrize(("mean", "std"), [
    ("NaN", "0.3"), ("-Infinity", "0.3"), ("1e300", "0.3"), ('"nan"', "0.3"),
    ("0.15", "Infinity"), ("0.15", "1e-300"), ("0.15", "true"), ("true", "0.3"),
    ("-0.01", "0.3"), ("0.15", "0.36"), ("0.15", "0.001"), ("0", "0.3"),
])
def test_metadata_pixel_statistics_that_are_not_real_pixel_moments_are_refused(
        digits_data_dir: Path, tmp_path: Path, mean: str, std: str) -> None:
    data_dir, version_dir = _copy_digits(digits_data_dir, tmp_path)
    metadata = json.loads((version_dir / "metadata.json").read_text())
    del metadata["pixels"]
    text = json.dumps(metadata)[:-1] + f', "pixels": {{"mean": {mean}, "std": {std}}}}}'
    (version_dir / "metadata.json").write_text(text)
    with pytest.raises(PreparedDataError, match=r"metadata\.json: the train split's pixel (mean|std)"):
        load("digits", normalize="standardize", data_dir=str(data_dir), download=False)


def test_metadata_pixel_statistics_at_their_limits_are_accepted(digits_data_dir: Path,
                                                                tmp_path: Path) -> None:
    data_dir, version_dir = _copy_digits(digits_data_dir, tmp_path)
    metadata = json.loads((version_dir / "metadata.json").read_text())
    metadata["pixels"] = {"mean": 0.5, "std": 0.5}  # pixels all 0 or 1, half each: the largest std
    (version_dir / "metadata.json").write_text(json.dumps(metadata))
    images, _ = next(iter(load("digits", normalize="standardize", batch_size=4,
                               data_dir=str(data_dir), download=False)))
    assert images.shape == (4, 28, 28, 1)


# --- item 5: zips that cannot lie ---

def _zip_with(zip_path: Path, members: list[tuple[str, Path]]) -> Path:
    """A zip of dummy_data's digits files as gzip/<name>, plus ``members`` (name, content file)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile's "Duplicate name"
        with zipfile.ZipFile(zip_path, "w") as bundle:
            for path in sorted(DUMMY_GZIP.glob("emnist-digits-*")):
                bundle.write(path, f"gzip/{path.name}")
            for name, content in members:
                bundle.write(content, name)
    return zip_path


LABELS = "emnist-digits-train-labels-idx1-ubyte.gz"


def test_zip_with_two_members_of_the_same_name_is_refused(tmp_path: Path) -> None:
    """The second member holds mnist's labels: it must not be used in silence."""
    bundle = _zip_with(tmp_path / "gzip.zip", [
        (f"gzip/{LABELS}", DUMMY_GZIP / "emnist-mnist-train-labels-idx1-ubyte.gz")])
    with pytest.raises(IdxFormatError) as caught:
        find_config_files("digits", [bundle])
    message = str(caught.value)
    assert message.startswith(f"{bundle}: holds 2 members that are {LABELS}")
    assert message.count(f"gzip/{LABELS} (entry") == 2


def test_zip_with_two_members_matching_one_emnist_file_is_refused(tmp_path: Path) -> None:
    gunzipped = tmp_path / "labels"
    gunzipped.write_bytes(gzip.decompress((DUMMY_GZIP / LABELS).read_bytes()))
    bundle = _zip_with(tmp_path / "gzip.zip", [(LABELS[: -len(".gz")], gunzipped)])
    with pytest.raises(IdxFormatError, match=rf"gzip/{LABELS} \(entry \d+\) and "
                                             rf"{LABELS[:-3]} \(entry \d+\)"):
        prepared_builder("digits", data_dir=tmp_path / "data", manual_dir=bundle)


def test_zip_with_macos_resource_forks_prepares(tmp_path: Path) -> None:
    fork = tmp_path / "fork"
    fork.write_bytes(b"\x00\x05\x16\x07" + bytes(100))  # AppleDouble header, not an IDX file
    bundle = _zip_with(tmp_path / "gzip.zip", [(f"__MACOSX/gzip/._{path.name}", fork)
                                               for path in DUMMY_GZIP.glob("emnist-digits-*")])
    builder = prepared_builder("digits", data_dir=tmp_path / "data", manual_dir=bundle)
    assert builder.info.splits["train"].num_examples == 40


# --- item 6: clean up after kills; the array_record copy under the prepares' lock ---

ARRAY_TRAIN = "emnist_idx-train.array_record-00000-of-00001"
_KILLED_COPY = """
import os, signal, sys
from etils import epath
from emnist_idx._prepare import array_records
partial = array_records._partial_path(epath.Path(sys.argv[1]))
partial.write_bytes(b"half an array_record shard")
print(partial, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_partial_array_record_files_of_killed_processes_are_removed(digits_data_dir, tmp_path,
                                                                     caplog) -> None:
    data_dir, version_dir = _copy_digits(digits_data_dir, tmp_path)
    child = subprocess.run([sys.executable, "-c", _KILLED_COPY, str(version_dir / ARRAY_TRAIN)],
                           capture_output=True, text=True, env=_child_env())
    assert child.returncode == -signal.SIGKILL
    leftover = Path(child.stdout.strip())
    assert leftover.exists() and leftover.name.startswith(f".{ARRAY_TRAIN}.")
    with caplog.at_level(logging.WARNING, logger="emnist_idx"):
        source = tfds.data_source("emnist_idx/digits", split="train", data_dir=str(data_dir))
    assert len(source) == 40 and not leftover.exists()
    assert any("left by interrupted copies" in record.message for record in caplog.records)
    assert not list(version_dir.glob(".*.partial"))


_HOLD_LOCK = """
import sys
from emnist_idx._prepare import locking
with locking.version_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_array_record_copy_waits_for_the_prepare_lock(digits_data_dir, tmp_path, caplog) -> None:
    data_dir, version_dir = _copy_digits(digits_data_dir, tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(version_dir)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env=_child_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        with caplog.at_level(logging.WARNING, logger="emnist_idx"):
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                reading = pool.submit(tfds.data_source, "emnist_idx/digits", split="train",
                                      data_dir=str(data_dir))
                while not any("Waiting for another process" in record.message
                              for record in caplog.records):
                    assert not reading.done(), reading.result()
                    time.sleep(0.05)
                assert not (version_dir / ARRAY_TRAIN).exists()  # nothing written while held
                holder.stdin.write("\n")
                holder.stdin.flush()
                assert len(reading.result(timeout=120)) == 40
    finally:
        holder.kill()
        holder.wait()
    assert (version_dir / ARRAY_TRAIN).exists()


# --- item 7: edges ---

def _child_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def test_data_source_on_a_read_only_folder_says_what_to_write_once(digits_data_dir) -> None:
    """As a user who cannot write the folder (root: the child runs as nobody through setpriv)."""
    as_other_user = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: no user to whom the folder is read-only")
        as_other_user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    root = Path(tempfile.mkdtemp(prefix="emnist-ro-"))
    try:
        data_dir = root / "data"
        shutil.copytree(digits_data_dir / "emnist_idx" / "digits", data_dir / "emnist_idx" / "digits")
        (root / "home").mkdir()
        for path in [root, root / "home", *data_dir.rglob("*"), data_dir]:
            path.chmod(0o777 if path.name == "home" else 0o555 if path.is_dir() else 0o444)
        code = ("import emnist_idx, tensorflow_datasets as tfds; "
                f"tfds.data_source('emnist_idx/digits', split='train', data_dir='{data_dir}')")
        child = subprocess.run([*as_other_user, sys.executable, "-c", code], capture_output=True,
                               text=True, cwd=root, env=_child_env(HOME=str(root / "home")))
        last = child.stderr.strip().splitlines()[-1]
        assert child.returncode == 1 and last.startswith("PermissionError: "), child.stderr[-2000:]
        assert "writes once into this folder beside the TFRecord shards" in last
        assert (f"Have a user who can write run once: python -c \"import emnist_idx, "
                f"tensorflow_datasets as tfds; tfds.data_source('emnist_idx/digits', "
                f"data_dir='{data_dir}')\"") in last
        assert "open() failed" not in child.stderr
    finally:
        for path in root.rglob("*"):
            path.chmod(0o755)
        shutil.rmtree(root)


@pytest.mark.parametrize("data_dir", ["ram://emnist", "file:///tmp/emnist"])
def test_data_dir_tfds_cannot_open_is_one_line_naming_it(data_dir: str) -> None:
    expected = rf"^data_dir='{re.escape(data_dir)}': TFDS cannot open paths that start with"
    with pytest.raises(ValueError, match=expected):
        load("digits", data_dir=data_dir, manual_dir=str(DUMMY_GZIP))
    with pytest.raises(ValueError, match=expected[1:]):  # tfds.builder wraps it in its own words
        tfds.builder("emnist_idx/digits", data_dir=data_dir)


_TF_STARTUP_LOG = re.compile(r"^(WARNING: All log messages before absl::InitializeLog|[IWE]\d{4} )")


def test_broken_pipe_on_stdout_ends_the_cli_quietly() -> None:
    """`emnist-idx inspect ... | head -1` with the reader gone before the first line is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        child = subprocess.run([sys.executable, "-m", "emnist_idx.commands.cli", "inspect",
                                str(DUMMY_GZIP / "emnist-digits-test-labels-idx1-ubyte.gz")],
                               stdout=write_end, stderr=subprocess.PIPE, text=True,
                               env=_child_env())
    finally:
        os.close(write_end)
    noise = [line for line in child.stderr.splitlines() if not _TF_STARTUP_LOG.match(line)]
    assert child.returncode in (0, 141) and noise == [], child.stderr


def test_builder_leaves_no_temporary_folder_looking_for_a_gcs_copy(tmp_path, monkeypatch) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    for config in ("digits", "letters"):  # not prepared: TFDS would look on its bucket
        builder = tfds.builder(f"emnist_idx/{config}", data_dir=str(tmp_path / "empty"))
        assert not builder.is_prepared()
    assert list(temp.iterdir()) == []
