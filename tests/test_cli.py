"""The ``emnist-idx`` command line, run in-process through ``cli.main`` and once as the console script."""

from __future__ import annotations

import os
import re
import runpy
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import emnist_idx
from emnist_idx import configs
from emnist_idx import grid
from emnist_idx.commands import cli
from emnist_idx.commands import build
from emnist_idx._format.idx import read_idx, write_idx
from tests.bundle_factory import DUMMY_DATA as DUMMY
from tests.bundle_factory import DUMMY_GZIP as GZIP
from tests.bundle_factory import REPO



def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("emnist-idx: error: ")]


@pytest.fixture
def damaged_bundle(tmp_path: Path) -> Path:
    """dummy_data's files with three problems: a truncated images .gz, a labels file one label short
    of its images, and a label outside the classes."""
    folder = tmp_path / "bundle" / "gzip"
    shutil.copytree(GZIP, folder)
    truncated = folder / configs.image_file("digits", "train")
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    short = folder / configs.label_file("mnist", "test")
    write_idx(short, read_idx(short)[:-1])
    out_of_range = folder / configs.label_file("letters", "train")
    labels = read_idx(out_of_range)
    labels[5] = 0  # letters' labels are 1..26
    write_idx(out_of_range, labels)
    return folder.parent


# --- inspect ---

def test_inspect_labels_mapping_and_images(capsys):
    labels_file = GZIP / configs.label_file("balanced", "train")
    images_file = GZIP / configs.image_file("balanced", "train")
    mapping_file = GZIP / configs.mapping_file("balanced")
    code, out, err = run_cli(capsys, "inspect", labels_file, mapping_file, images_file)
    assert code == 0, err
    assert err == ""
    labels = read_idx(labels_file)
    counts = np.bincount(labels)
    blocks = out.split("\n\n")
    labels_block, mapping_block, images_block = blocks[0], blocks[1], blocks[2]
    assert f"shape:   ({len(labels)},)" in labels_block
    assert f"labels:  47 distinct, 0..46, {counts.min()} to {counts.max()} each" in labels_block
    histogram = {int(label): int(count.replace(",", "")) for label, count in
                 re.findall(r"(\d+): ([\d,]+)", labels_block.split("labels:")[1].split("\n", 1)[1])}
    assert histogram == dict(enumerate(counts.tolist()))
    assert f"classes: {' '.join(configs.CLASS_NAMES['balanced'])}" in mapping_block
    assert "labels 0..46" in mapping_block
    assert f"shape:   ({len(labels)}, 28, 28)" in images_block
    assert "format:  IDX3, gzip-compressed" in images_block
    assert "size:    OK" in images_block


def test_inspect_zip_inspects_every_member(capsys):
    code, out, err = run_cli(capsys, "inspect", DUMMY / "gzip.zip")
    assert code == 0, err
    assert out.count("format:") == 5 * len(configs.CONFIGS)
    assert f"{DUMMY / 'gzip.zip'}:gzip/{configs.mapping_file('letters')}" in out


def test_inspect_bad_files_exit_1_with_one_line_each(tmp_path, capsys):
    truncated = tmp_path / configs.image_file("mnist", "test")
    data = (GZIP / truncated.name).read_bytes()
    truncated.write_bytes(data[:-40])
    too_long = tmp_path / "labels-idx1-ubyte"  # raw IDX with a byte more than its header promises
    write_idx(too_long, np.arange(10, dtype=np.uint8))
    too_long.write_bytes(too_long.read_bytes() + b"\x00")
    good = GZIP / configs.label_file("mnist", "test")
    code, out, err = run_cli(capsys, "inspect", truncated, good, too_long, tmp_path / "missing.gz")
    assert code == 1
    lines = error_lines(err)
    assert len(lines) == 3, err
    assert str(truncated) in lines[0] and "truncated" in lines[0]
    assert str(too_long) in lines[1] and "header promises 10 payload bytes" in lines[1]
    assert "missing.gz: no such file" in lines[2]
    assert "Traceback" not in err
    assert out.count("FAILED") == 3
    assert "labels:  10 distinct" in out  # the good file is still reported


# --- verify ---

def test_verify_good_bundle(capsys):
    code, out, err = run_cli(capsys, "verify", DUMMY)
    assert code == 0, err
    for config in configs.CONFIGS:
        assert re.search(rf"^{config}: OK ", out, re.MULTILINE), out
    assert "1,128 train + 282 test images, 47 classes" in out
    assert error_lines(err) == []
    warnings = [line for line in err.splitlines() if line.startswith("emnist-idx: warning: ")]
    assert len(warnings) == 1 and "sha256" in warnings[0] and "dummy_data" in warnings[0]
    assert out.rstrip().endswith("OK")


def test_verify_strict_fails_on_checksum(capsys):
    code, out, err = run_cli(capsys, "verify", DUMMY / "gzip.zip", "--strict", "--config", "mnist")
    assert code == 1
    lines = error_lines(err)
    assert len(lines) == 1 and "sha256" in lines[0] and "differs from NIST's" in lines[0]
    assert "mnist: OK" in out and "balanced" not in out


def test_verify_strict_passes_when_the_checksum_matches(capsys, monkeypatch):
    from tensorflow_datasets.core.download.checksums import UrlInfo

    from emnist_idx.commands import verify

    zipped = DUMMY / "gzip.zip"
    registered = UrlInfo(size=zipped.stat().st_size, checksum=verify.sha256_of(zipped),
                         filename="gzip.zip")
    assert verify.nist_checksum().size == 561_753_746  # what checksums.tsv says for NIST's zip
    monkeypatch.setattr(verify, "nist_checksum", lambda: registered)
    code, out, err = run_cli(capsys, "verify", zipped, "--strict", "--config", "digits")
    assert code == 0, err
    assert f"sha256 matches NIST's gzip.zip ({registered.checksum})" in out
    assert not error_lines(err)


def test_verify_damaged_bundle_one_line_per_problem(damaged_bundle, capsys):
    code, out, err = run_cli(capsys, "verify", damaged_bundle)
    assert code == 1
    lines = error_lines(err)
    assert len(lines) == 3, err
    joined = "\n".join(lines)
    assert re.search(r"emnist-letters-train-labels-idx1-ubyte\.gz: label 0 at index 5 is not a class",
                     joined)
    assert re.search(r"emnist-digits-train-images-idx3-ubyte\.gz: .*truncated", joined)
    assert re.search(r"emnist-mnist-test-labels-idx1-ubyte\.gz: header says 19 labels, images file "
                     r".* has 20 images", joined)
    for config in ("letters", "digits", "mnist"):
        assert f"{config}: FAILED (1 problem)" in out
    for config in ("byclass", "bymerge", "balanced"):
        assert f"{config}: OK" in out
    assert "FAILED: 3 problems" in out


def test_verify_damaged_zip(damaged_bundle, tmp_path, capsys):
    bundle = tmp_path / "gzip.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        for path in sorted((damaged_bundle / "gzip").iterdir()):
            archive.write(path, f"gzip/{path.name}")
    code, out, err = run_cli(capsys, "verify", bundle, "--config", "digits", "--config", "balanced")
    assert code == 1
    lines = error_lines(err)
    assert len(lines) == 1 and f"{bundle}:gzip/{configs.image_file('digits', 'train')}" in lines[0]
    assert "balanced: OK" in out and "mnist" not in out
    assert "sha256" in err  # the checksum note is a warning, not a problem


def test_verify_missing_file_and_bad_paths(tmp_path, capsys):
    folder = tmp_path / "gzip"
    shutil.copytree(GZIP, folder)
    (folder / configs.mapping_file("byclass")).unlink()
    code, out, err = run_cli(capsys, "verify", tmp_path)
    assert code == 1
    lines = error_lines(err)
    assert len(lines) == 1 and configs.mapping_file("byclass") in lines[0]
    assert "byclass: MISSING" in out

    code, _, err = run_cli(capsys, "verify", tmp_path / "nowhere")
    assert code == 1 and "no such file or directory" in err and "Traceback" not in err
    not_a_zip = tmp_path / "gzip.zip"
    not_a_zip.write_bytes(b"PK\x03\x04 truncated")
    code, _, err = run_cli(capsys, "verify", not_a_zip)
    assert code == 1 and error_lines(err) == [f"emnist-idx: error: {not_a_zip}: not a zip file "
                                              "(a truncated or damaged download?)"]


# --- show ---

def test_show_writes_upright_grid_of_expected_size(tmp_path, capsys):
    output = tmp_path / "letters.png"
    code, out, err = run_cli(capsys, "show", "letters", "-n", 10, "-o", output,
                             "--data_dir", tmp_path / "data", "--manual_dir", DUMMY)
    assert code == 0, err
    assert f"Wrote {output}: 10 letters test examples" in out
    with Image.open(output) as picture:
        assert picture.format == "PNG"
        assert picture.size == (4 + 4 * 88, 4 + 3 * 104)  # 4 columns of 84+4 px, 3 rows of 84+2+14+4
        assert picture.size == grid.grid_size(10, grid.default_columns(10))
        pixels = np.asarray(picture.convert("L"))
    # The first cell is the first test image, upright (NIST's file holds it transposed), scaled 3x.
    stored = read_idx(GZIP / configs.image_file("letters", "test"))[0]
    cell = pixels[grid.PAD : grid.PAD + 84, grid.PAD : grid.PAD + 84]
    np.testing.assert_array_equal(cell[1::3, 1::3], stored.T)
    assert not np.array_equal(stored, stored.T)


def test_show_rejects_bad_values(tmp_path, capsys):
    code, _, err = run_cli(capsys, "show", "letters", "-n", 0, "--data_dir", tmp_path)
    assert code == 2 and "argument -n/--count: must be at least 1, got 0" in err
    code, _, err = run_cli(capsys, "show", "letterz")
    assert code == 2 and "invalid choice" in err


# --- demo ---

@pytest.mark.slow
def test_demo_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    os.symlink(DUMMY, tmp_path / "dummy_data")  # the demo's default manual dir is ./dummy_data
    code, out, err = run_cli(capsys, "demo", "--epochs", 3, "--output", "out/demo.png")
    assert code == 0, err
    accuracy = float(re.search(r"Test accuracy: ([\d.]+)% on 282 test images \(chance: 2\.1%", out)[1])
    assert accuracy > 20.0, out  # 3 epochs on the synthetic glyphs; 30 (the default) reach ~98%
    assert "Epoch 3/3" in out
    data_dir = re.search(r"Data dir: (\S+) \(temporary", out)[1]
    assert not Path(data_dir).exists()  # the temporary data dir is removed
    with Image.open(tmp_path / "out" / "demo.png") as picture:
        assert picture.size == (4 + 8 * 88, 4 + 6 * 118)  # 48 images, two caption lines each
    assert "Wrote out/demo.png: 48 test images" in out


@pytest.mark.slow
def test_demo_without_dummy_data_generates_it(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "demo", "--config", "digits", "--epochs", 1, "-o", "d.png")
    assert code == 0, err
    generated = re.search(r"No ./dummy_data in .*: generating the same synthetic digits files with "
                          r"emnist_idx.synthetic into (\S+) \(temporary, removed at the end\)", out)
    assert generated, out
    assert f"emnist-idx demo: EMNIST digits from {generated[1]} (synthetic glyphs" in out
    assert re.search(r"Test accuracy: [\d.]+% on 20 test images \(chance: 10\.0%", out), out
    assert not Path(generated[1]).exists()
    with Image.open(tmp_path / "d.png") as picture:
        assert picture.size == (4 + 8 * 88, 4 + 3 * 118)  # the 20 test images, 8 a row
    code, _, err = run_cli(capsys, "demo", "--manual_dir", tmp_path / "nowhere")
    assert code == 1 and f"manual dir {tmp_path / 'nowhere'} does not exist" in err


@pytest.mark.slow
def test_keras_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["train_keras.py", "--manual_dir", str(DUMMY),
                                      "--data_dir", str(tmp_path), "--epochs", "1"])
    runpy.run_path(str(REPO / "examples" / "train_keras.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert re.search(r"Test accuracy on EMNIST balanced: [\d.]+% \(chance: 2\.1% for 47 classes\)", out)


# --- build ---

def test_build_command_line():
    tfds_prefix = [sys.executable, "-c", build._LAUNCH_TFDS, "build"]
    assert build.tfds_command(["letters", "digits", "--manual_dir", "x"]) == [
        *tfds_prefix, "emnist_idx/letters", "emnist_idx/digits", "--imports", "emnist_idx",
        "--manual_dir", "x"]
    assert build.tfds_command(["--config", "mnist"]) == [
        *tfds_prefix, "emnist_idx", "--imports", "emnist_idx", "--config", "mnist"]


@pytest.mark.slow
def test_build_prepares_through_tfds(tmp_path, capfd):
    code = cli.main(["build", "mnist", "--manual_dir", str(DUMMY), "--data_dir", str(tmp_path)])
    err = capfd.readouterr().err
    assert code == 0, err
    assert "Variant folder" not in err and "apitools not found" not in err, err
    assert (tmp_path / "emnist_idx" / "mnist" / "1.0.0" / "dataset_info.json").is_file()
    assert not (tmp_path / "emnist_idx" / "digits").exists()


# --- usage, help, console script ---

@pytest.mark.parametrize("command", ["inspect", "verify", "show", "demo"])
def test_help_for_each_command(command, capsys):
    code, out, _ = run_cli(capsys, command, "--help")
    assert code == 0
    assert out.startswith(f"usage: emnist-idx {command}")


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["verify"], ["inspect"],
                                  ["inspect", "--bogus", "x.gz"], ["demo", "--epochs", "many"],
                                  ["demo", "--epochs", "0"], ["show", "digits", "-n", "0"],
                                  ["show", "digits", "--columns", "-1"]])
def test_usage_errors_exit_2(argv, capsys):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert "usage: emnist-idx" in err


@pytest.mark.slow
def test_build_help_names_emnist_idx(capfd):
    assert cli.main(["build", "--help"]) == 0
    out, err = capfd.readouterr()
    assert out.startswith("usage: emnist-idx build [CONFIG...]")
    assert "\nusage: emnist-idx build [-h]" in out and "main.py" not in out
    assert "apitools" not in err


@pytest.mark.slow
def test_console_script(tmp_path):
    script = Path(sys.executable).with_name("emnist-idx")
    if not script.exists():
        script = Path(shutil.which("emnist-idx") or "emnist-idx")
    done = subprocess.run([script, "verify", DUMMY, "--config", "mnist", "--config", "digits"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "mnist: OK" in done.stdout and "digits: OK" in done.stdout and "letters" not in done.stdout
    bad = tmp_path / "bad-idx1-ubyte.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    done = subprocess.run([script, "inspect", bad], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith(f"emnist-idx: error: {bad}: ")
    assert "Traceback" not in done.stderr
    done = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and emnist_idx.__version__ in done.stdout


def test_grid_checks_its_input():
    images = np.zeros((3, 28, 28), dtype=np.uint8)
    assert grid.draw_grid(images, ["a", "b", "c"], columns=2).size == grid.grid_size(3, 2)
    assert grid.draw_grid(images, ["a\nb", "c", "d"]).size == grid.grid_size(3, 2, caption_lines=2)
    with pytest.raises(ValueError, match="3 images but 2 captions"):
        grid.draw_grid(images, ["a", "b"])
    with pytest.raises(ValueError, match="uint8"):
        grid.draw_grid(images.astype(np.float32), ["a", "b", "c"])
