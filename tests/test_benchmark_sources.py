"""Smoke test of benchmarks/sources.py on a tiny bundle: it completes and writes every row.

No timing is asserted: the figures of such a small run mean nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "sources.py"


@pytest.mark.slow
def test_sources_benchmark_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "sources.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--config", "digits", "--scale", "0.001", "--repeats", "1",
         "--reads", "50", "--json", str(out), "--cache-dir", str(tmp_path / "cache"),
         "--tmp-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["config"] == "digits" and report["train_examples"] == 240
    rows = report["rows"]
    expected = {"source_random_single", "floor_mmap_crc_single", "source_random_batches",
                "source_whole_split",
                "load_numpy_whole_split", "data_source_random_single",
                "data_source_random_batches"}
    assert expected <= set(rows)
    assert rows["source_whole_split"]["examples"] == 240
    assert rows["source_random_single"]["examples"] == 50
    for name in expected:
        assert f"| {name} |" in done.stdout
    assert set(rows["ratios"]) == {"whole_split_source_over_load_numpy",
                                   "random_single_source_over_floor",
                                   "random_single_source_over_data_source"}
