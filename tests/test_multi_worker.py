"""Two MultiWorkerMirroredStrategy workers on localhost train on load(): the announced steps, and
every example once per epoch across the workers. They run in a network namespace where only
loopback exists (tests/loopback.py): TensorFlow's gRPC servers bind every address."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
from pathlib import Path

import pytest

from emnist_idx import load_numpy
from tests.bundle_factory import DUMMY_GZIP, REPO
from tests.loopback import Command, run_group

CHILD = Path(__file__).with_name("multi_worker_child.py")
EPOCHS = 2


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [8, 12], ids=["no-remainder", "remainder"])
def test_two_workers_train_every_example_once_per_epoch(tmp_path: Path, batch_size: int) -> None:
    images, _ = load_numpy("digits", "train", data_dir=str(tmp_path), manual_dir=str(DUMMY_GZIP))
    expected = sorted(hashlib.sha1(image.tobytes()).hexdigest()[:12] for image in images)
    assert len(set(expected)) == 40
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    workers = []
    for index in range(2):
        env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_CONFIG": json.dumps({"cluster": cluster,
                                        "task": {"type": "worker", "index": index}})}
        workers.append(Command([sys.executable, str(CHILD), str(tmp_path), str(DUMMY_GZIP),
                                str(batch_size), str(EPOCHS)], env))
    _, ended = run_group([], workers)
    reports = []
    for worker in ended:
        assert worker.returncode == 0, worker.stderr[-3000:]
        assert "ran out of data" not in worker.stderr
        reports.append(json.loads(worker.stdout.strip().splitlines()[-1]))
    announced = -(-40 // batch_size)
    assert [report["announced"] for report in reports] == [announced, announced]
    for epoch in range(EPOCHS):
        assert [report["epochs"][epoch]["steps"] for report in reports] == [announced] * 2
        ids = sum((report["epochs"][epoch]["ids"] for report in reports), [])
        assert sorted(ids) == expected  # every example once, across both workers
