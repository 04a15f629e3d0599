"""Running an example script as a new user would: a fresh process, TFDS's default data dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_example(name: str, home: Path, *args: str) -> subprocess.CompletedProcess:
    """``python examples/<name> --manual_dir dummy_data ARGS`` with HOME=``home`` and no
    TFDS_DATA_DIR, so the data lands in ``home/tensorflow_datasets``; asserts it succeeds."""
    env = {key: value for key, value in os.environ.items() if key != "TFDS_DATA_DIR"}
    env.update(HOME=str(home), PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / name), "--manual_dir", str(REPO / "dummy_data"),
         *args], capture_output=True, text=True, env=env, timeout=300, check=False, cwd=home)
    assert done.returncode == 0, done.stderr[-3000:]
    return done
