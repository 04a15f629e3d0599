"""Smoke test of benchmarks/run.py on a tiny bundle: it completes, prints every row, writes JSON.

No timing is asserted: the figures of such a small run mean nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # benchmarks/run.py in a child process


SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"

ROW_LABELS = [
    "prepare emnist (TFDS)",
    "prepare emnist_idx",
    "prepare emnist_idx, Beam (RSS: per worker)",
    "epoch 1 emnist (TFDS)",
    "epoch 2 emnist (TFDS",
    "epoch 1 emnist_idx (incl. load())",
    "cached epochs emnist_idx",
    "in-memory numpy pipeline",
    "to GPU, emnist_idx device=/gpu:0",
    "GPU-resident, cache=device",
    "floor: gunzip+write+fsync (isal)",
    "floor: raw read of the train shards",
    "ceiling: tf.data of ready batches",
    "ceiling, TensorFlow's own iterator",
]
ROW_KEYS = [
    "prepare_emnist",
    "prepare_emnist_idx",
    "prepare_emnist_idx_beam",
    "epoch1_emnist",
    "epoch2_emnist",
    "epoch1_emnist_idx",
    "cached_emnist_idx",
    "numpy_in_memory",
    "device_emnist_idx",
    "resident_emnist_idx",
    "floor_prepare",
    "floor_raw_read",
    "ceiling_pipeline",
    "ceiling_tf_iterator",
]


GRAPH_KEYS = ["epoch1_emnist_graph", "epoch1_emnist_idx_graph", "cached_emnist_idx_graph",
              "numpy_in_memory_graph", "ceiling_pipeline_graph"]


def _run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--config", "digits", "--scale", "0.002", "--epochs", "2",
         "--cache-dir", str(tmp_path / "cache"), "--tmp-dir", str(tmp_path), *extra],
        capture_output=True, text=True, timeout=240, env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_benchmark_script_runs_on_a_tiny_bundle(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    result = _run(tmp_path, "--json", str(out), "--chart", str(tmp_path / "chart.png"))
    for label in ROW_LABELS:
        assert label in result.stdout, f"row {label!r} missing from:\n{result.stdout}"
    assert "targets (issue #13):" in result.stdout
    assert result.stdout.count("PASS") + result.stdout.count("MISS") == 6
    assert "CRC32C of 8,192 records" in result.stdout and "identical values" in result.stdout

    report = json.loads(out.read_text())
    for key in ("command", "config", "counts", "machine", "rows", "targets"):
        assert key in report
    assert report["config"] == "digits"
    assert report["counts"] == [480, 80]
    for key in ("date", "cpu_count", "cpu_model", "ram_gb", "python", "tensorflow",
                "tensorflow_datasets", "numpy", "gpus"):
        assert key in report["machine"]
    assert set(ROW_KEYS) <= set(report["rows"])
    for key in set(ROW_KEYS) - {"device_emnist_idx", "resident_emnist_idx"}:  # no GPU here
        row = report["rows"][key]
        assert row["examples"] > 0 and row["seconds"] > 0 and row["examples_per_s"] > 0
    assert report["rows"]["epoch1_emnist_idx"]["examples"] == 480
    assert report["rows"]["prepare_emnist_idx"]["examples"] == 560
    for key in ("prepare_emnist", "prepare_emnist_idx", "prepare_emnist_idx_beam"):
        assert "peak_rss_growth_mb" in report["rows"][key]
    beam = report["rows"]["prepare_emnist_idx_beam"]  # Beam really ran, on both SDK workers
    assert beam["examples"] == 560 and beam["workers"] == 2
    assert beam["ratios"]["vs_floor"] > 0 and "vs_tfds" in beam["ratios"]
    assert len(report["targets"]) == 6
    assert all(isinstance(target["passed"], bool) for target in report["targets"])
    rows = report["rows"]
    # Each figure has its ratio to its floor; the floors are measured, not assumed.
    assert rows["prepare_emnist_idx"]["ratios"]["vs_floor"] > 0
    assert rows["epoch1_emnist_idx"]["ratios"]["vs_floor"] > 0
    assert rows["cached_emnist_idx"]["ratios"]["vs_floor"] > 0
    assert len(rows["floor_prepare"]["floor_runs_s"]) == 2
    assert rows["floor_prepare"]["bytes"] == 560 * 784 + 2 * 16  # with the IDX headers
    assert rows["floor_raw_read"]["bytes"] > 480 * 784
    assert rows["floor_raw_read"]["examples"] == rows["ceiling_pipeline"]["examples"] == 480
    assert rows["ceiling_tf_iterator"]["examples"] == 480
    assert rows["numpy_in_memory"]["ratios"]["vs_floor"] > 0  # over TensorFlow's iterator's
    assert report["crc32c"]["identical"] is True
    # The same epochs consumed in-graph, with their own ceiling.
    for key in GRAPH_KEYS:
        assert rows[key]["examples"] == 480 and rows[key]["consumer"] == "graph", key
    assert rows["cached_emnist_idx_graph"]["ratios"]["vs_numpy"] > 0
    assert "consumed in-graph (Dataset.reduce" in result.stdout

    from PIL import Image

    with Image.open(tmp_path / "chart.png") as chart:
        assert chart.format == "PNG" and chart.width > 500 and chart.height > 200
        assert len(chart.getcolors(1 << 16) or []) > 5  # bars and text, not a blank image

    # The bundle is kept in the cache dir, complete, for the next run to reuse.
    bundles = list((tmp_path / "cache").iterdir())
    assert [path.name for path in bundles] == ["digits-480x80-seed0"]
    assert (bundles[0] / "bundle.json").is_file() and (bundles[0] / "gzip.zip").is_file()


def test_tfds_rows_can_come_from_an_earlier_run(tmp_path: Path) -> None:
    first = tmp_path / "first.json"
    _run(tmp_path, "--json", str(first), "--no-beam")
    again = tmp_path / "again.json"
    result = _run(tmp_path, "--json", str(again), "--tfds-from", str(first), "--no-beam")
    assert "skipped: --no-beam" in result.stdout
    earlier, report = json.loads(first.read_text()), json.loads(again.read_text())
    for key in ("prepare_emnist", "epoch1_emnist", "epoch2_emnist", "epoch1_emnist_graph"):
        assert report["rows"][key]["seconds"] == earlier["rows"][key]["seconds"]
        assert report["rows"][key]["from_run"] == earlier["machine"]["date"]
    assert report["rows"]["prepare_emnist_idx"]["seconds"] != earlier["rows"]["prepare_emnist_idx"][
        "seconds"]  # measured again
    assert "prepare emnist (TFDS) *" in result.stdout and "(--tfds-from)" in result.stdout
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**earlier, "config": "mnist"}))
    refused = subprocess.run(
        [sys.executable, str(SCRIPT), "--config", "digits", "--scale", "0.002", "--cache-dir",
         str(tmp_path / "cache"), "--tfds-from", str(wrong)],
        capture_output=True, text=True, timeout=240, check=False)
    assert refused.returncode != 0 and "a run of mnist" in refused.stderr

    # medians.py over the runs: each target's median, with every run's value.
    medians = subprocess.run([sys.executable, str(SCRIPT.parent / "medians.py"), str(first),
                              str(again), str(again)], capture_output=True, text=True,
                             timeout=120, check=False)
    assert medians.returncode == 0, medians.stderr[-3000:]
    assert "EMNIST digits: medians of 3 runs" in medians.stdout
    for index, target in enumerate(report["targets"]):
        values = [earlier["targets"][index]["value"], target["value"], target["value"]]
        unit = "x" if target["unit"] == "x" else " MB"
        middle = sorted(values)[1]
        assert f"{target['name']}: median {middle:.2f}{unit} (" in medians.stdout, target["name"]
    assert "in-graph cached epochs emnist_idx: median" in medians.stdout


def test_beam_benchmark_runs_on_a_tiny_bundle(tmp_path: Path) -> None:
    """benchmarks/beam.py: both prepares run, and the Beam one's SDK workers are found."""
    out = tmp_path / "beam.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT.with_name("beam.py")), "--config", "digits", "--scale",
         "0.002", "--repeats", "1", "--cache-dir", str(tmp_path / "cache"), "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["config"] == "digits" and report["scale"] == 0.002
    assert len(report["bulk_seconds"]) == len(report["beam_seconds"]) == 1
    assert len(report["worker_peak_growth_mb"]) == 2  # direct_num_workers=2
    assert "digits: bulk median" in result.stdout


def test_object_storage_benchmark_runs_on_a_tiny_bundle(tmp_path: Path) -> None:
    """benchmarks/object_storage.py: local and emulator rows, each a median of its repeats."""
    out = tmp_path / "object-storage.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT.with_name("object_storage.py")), "--config", "digits",
         "--scale", "0.0002", "--repeats", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["benchmark"] == "object_storage" and report["counts"] == [48, 8]
    for task in ("load_numpy", "prepare"):
        for where in ("local", "emulator"):
            assert report[f"{task}_{where}_median_s"] == report["seconds"][task][where][0] > 0
    assert "digits train load_numpy: local median" in result.stdout
