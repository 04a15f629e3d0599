"""A tf.data service with 2 workers feeding 2 trainer processes through load(service=...)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emnist_idx import load_numpy
from tests.bundle_factory import DUMMY_GZIP, REPO

CHILD = Path(__file__).with_name("data_service_child.py")


@pytest.mark.slow
def test_two_workers_feed_two_trainers_every_example_once_per_epoch(tmp_path: Path) -> None:
    images, _ = load_numpy("digits", "train", data_dir=str(tmp_path), manual_dir=str(DUMMY_GZIP))
    expected = sorted(hashlib.sha1(image.tobytes()).hexdigest()[:12] for image in images)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    address_file = tmp_path / "dispatcher"
    server = subprocess.Popen([sys.executable, str(CHILD), "serve", str(address_file)], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not address_file.exists() or not address_file.read_text():
            assert server.poll() is None and time.monotonic() < deadline, server.stderr.read()
            time.sleep(0.2)
        address = address_file.read_text()
        trainers = [subprocess.Popen(
            [sys.executable, str(CHILD), "train", address, str(tmp_path), "12", "2"], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [trainer.communicate(timeout=300) for trainer in trainers]
    finally:
        server.communicate(input="", timeout=60)
    for trainer, (stdout, stderr) in zip(trainers, outputs):
        assert trainer.returncode == 0, stderr[-3000:]
        for epoch in json.loads(stdout.strip().splitlines()[-1]):
            assert sorted(epoch) == expected  # each trainer: every example once per epoch
