"""Prepares that share a data_dir: real processes, a lock per version folder, SIGKILL mid-write."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from emnist_idx import configs, synthetic
from emnist_idx._format.idx import read_idx
from emnist_idx._prepare import locking
from tests.bundle_factory import DUMMY_GZIP, REPO

pytestmark = pytest.mark.slow  # concurrent prepares in child processes, byclass-sized files

CONFIG = "mnist"
VERSION = "1.0.0"
_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "TF_CPP_MIN_LOG_LEVEL": "2"}
# A job: prepare (through one entry point) once the file `go` exists, then print a digest.
_JOB = """
import hashlib, json, sys, time
from pathlib import Path
data_dir, manual_dir, go, how, config = sys.argv[1:6]
import tensorflow_datasets as tfds
import emnist_idx
while not Path(go).exists():
    time.sleep(0.01)
if how == "builder":
    builder = tfds.builder(f"emnist_idx/{config}", data_dir=data_dir)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    data = tfds.as_numpy(builder.as_dataset(split="train", batch_size=-1))
    images, labels = data["image"], data["label"]
else:
    images, labels = emnist_idx.load_numpy(config, "train", data_dir=data_dir, manual_dir=manual_dir)
digest = hashlib.sha256(images.tobytes() + labels.astype("int64").tobytes()).hexdigest()
print(json.dumps({"digest": digest, "count": len(labels)}))
"""


def expected_digest() -> tuple[str, int]:
    """The train split as the dummy files hold it: upright images, labels."""
    images = read_idx(DUMMY_GZIP / configs.image_file(CONFIG, "train")).transpose(0, 2, 1)[..., None]
    labels = read_idx(DUMMY_GZIP / configs.label_file(CONFIG, "train")).astype(np.int64)
    return hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest(), len(labels)


def start(command: list[str], log: Path) -> subprocess.Popen:
    """Starts a job; its stderr goes to ``log``, its stdout to ``log`` with suffix .out."""
    return subprocess.Popen(command, env=_ENV, cwd=log.parent, stdout=log.with_suffix(".out").open("w"),
                            stderr=log.open("w"))


def finish(process: subprocess.Popen, log: Path) -> str:
    """Waits for a job; returns its stdout after checking it succeeded."""
    process.wait(timeout=300)
    assert process.returncode == 0, log.read_text()
    return log.with_suffix(".out").read_text()


def job(data_dir: Path, go: Path, how: str, log: Path) -> subprocess.Popen:
    return start([sys.executable, "-c", _JOB, str(data_dir), str(DUMMY_GZIP), str(go), how, CONFIG],
                 log)


def wait_for(condition, what: str, seconds: float = 420, logs: dict[str, Path] | None = None) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            shown = "".join(f"\n--- {name}:\n{log.read_text()[-2000:]}" for name, log in (logs or {}).items())
            pytest.fail(f"gave up waiting for {what}{shown}")
        time.sleep(0.05)


def config_dir(data_dir: Path, config: str = CONFIG) -> Path:
    return data_dir / "emnist_idx" / config


def leftovers(data_dir: Path, config: str = CONFIG) -> list[str]:
    return sorted(p.name for p in config_dir(data_dir, config).glob("incomplete.*"))


def test_two_processes_started_together_both_succeed_with_identical_data(tmp_path):
    data_dir, go = tmp_path / "data", tmp_path / "go"
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    jobs = [job(data_dir, go, "builder", logs[0]), job(data_dir, go, "load_numpy", logs[1])]
    time.sleep(1)
    go.touch()
    results = []
    for process, log in zip(jobs, logs):
        results.append(json.loads(finish(process, log).strip().splitlines()[-1]))
    digest, count = expected_digest()
    assert results == [{"digest": digest, "count": count}] * 2
    assert leftovers(data_dir) == []
    assert sorted(p.name for p in config_dir(data_dir).iterdir()) == [VERSION, f"{VERSION}.lock"]


def test_every_entry_point_waits_for_the_prepare_in_progress_then_reuses_it(tmp_path):
    """builder, load_numpy, `tfds build` and `emnist-idx build` on one data_dir while a prepare
    holds the lock: none fails, none prepares again.

    The two Python jobs are seen waiting (their log line). The two command lines, slower to start,
    may reach the lock before or after it is released: either way they must succeed.
    """
    data_dir, go = tmp_path / "data", tmp_path / "go"
    go.touch()
    version_dir = config_dir(data_dir) / VERSION
    common = ["--data_dir", str(data_dir), "--manual_dir", str(DUMMY_GZIP)]
    commands = {
        "tfds build": [sys.executable, "-m", "tensorflow_datasets.scripts.cli.main", "build",
                       f"emnist_idx/{CONFIG}", "--imports", "emnist_idx", *common],
        "emnist-idx build": [sys.executable, "-m", "emnist_idx.commands.cli", "build", CONFIG, *common],
    }
    logs = {name: tmp_path / f"{name.replace(' ', '-')}.log"
            for name in ["builder", "load_numpy", *commands]}
    with locking.version_lock(version_dir) as waited:  # a prepare "in progress" in this process
        assert not waited
        dead = config_dir(data_dir) / f"incomplete.LIVE00_{VERSION}"
        dead.mkdir()  # its temporary folder: held under the lock, so nobody may remove it
        jobs = {name: job(data_dir, go, name, logs[name]) for name in ["builder", "load_numpy"]}
        jobs.update({name: start(command, logs[name]) for name, command in commands.items()})
        for name in ("builder", "load_numpy"):
            wait_for(lambda: "Waiting for another process preparing" in logs[name].read_text(),
                     f"{name} to wait on the lock", logs=logs)
        assert dead.is_dir()
    digest, count = expected_digest()
    for name, process in jobs.items():
        out = finish(process, logs[name])
        if name in ("builder", "load_numpy"):
            assert json.loads(out.strip().splitlines()[-1]) == {"digest": digest, "count": count}
    assert leftovers(data_dir) == []  # the first to get the lock removed the folder of the "dead"


def test_sigkill_while_writing_byclass_shards_then_next_prepare_cleans_up(tmp_path):
    manual_dir = tmp_path / "nist"
    train, test = configs.NIST_COUNTS["byclass"]
    synthetic.write_config_files(manual_dir, "byclass", train, test, seed=0, compresslevel=1)
    data_dir = tmp_path / "data"
    killed = start([sys.executable, "-c", _JOB, str(data_dir), str(manual_dir), str(tmp_path),
                    "builder", "byclass"], tmp_path / "killed.log")

    def writing_shards() -> bool:
        return any(shard.stat().st_size > 0
                   for shard in config_dir(data_dir, "byclass").glob("incomplete.*/*.tfrecord-*"))
    wait_for(writing_shards, "the first prepare to write shards", logs={"killed": tmp_path / "killed.log"})
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    left = leftovers(data_dir, "byclass")
    assert len(left) == 1 and not (config_dir(data_dir, "byclass") / VERSION).exists()

    builder = tfds.builder("emnist_idx/byclass", data_dir=str(data_dir))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(manual_dir)))
    assert leftovers(data_dir, "byclass") == []
    assert builder.is_prepared()
    assert builder.info.splits["train"].num_examples == train
    assert builder.info.splits["test"].num_examples == test
    last = next(iter(tfds.as_numpy(builder.as_dataset(split="test[-1:]", batch_size=1))))
    labels = read_idx(manual_dir / configs.label_file("byclass", "test"))
    assert last["label"][0] == labels[-1]
