"""A tf.data service with 2 workers feeding 2 trainer processes through load(service=...), all in
a network namespace where only loopback exists (tests/loopback.py)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from emnist_idx import load_numpy
from tests.bundle_factory import DUMMY_GZIP, REPO
from tests.loopback import Command, namespace_available, run_group

CHILD = Path(__file__).with_name("data_service_child.py")
_PROBE = """
import json, socket
interfaces = [line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]]
try:
    socket.create_connection(("10.255.255.1", 9), timeout=2)
    outside = "connected"
except OSError as error:
    outside = error.errno
with socket.socket() as server:
    server.bind(("127.0.0.1", 0))
    server.listen()
    socket.create_connection(server.getsockname(), timeout=2).close()
print(json.dumps({"interfaces": interfaces, "outside": outside}))
"""


def test_the_group_sees_loopback_only() -> None:
    if not namespace_available():
        pytest.skip("unshare -rn is not available on this machine")
    services, (job,) = run_group([], [Command([sys.executable, "-c", _PROBE], dict(os.environ))])
    assert job.returncode == 0, job.stderr[-3000:]
    report = json.loads(job.stdout)
    assert report == {"interfaces": ["lo"], "outside": 101}  # ENETUNREACH; loopback works


@pytest.mark.slow
def test_two_workers_feed_two_trainers_every_example_once_per_epoch(tmp_path: Path) -> None:
    images, _ = load_numpy("digits", "train", data_dir=str(tmp_path), manual_dir=str(DUMMY_GZIP))
    expected = sorted(hashlib.sha1(image.tobytes()).hexdigest()[:12] for image in images)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    address_file = str(tmp_path / "dispatcher")
    (server,), trainers = run_group(
        [Command([sys.executable, str(CHILD), "serve", address_file], env)],
        [Command([sys.executable, str(CHILD), "train", address_file, str(tmp_path), "12", "2"],
                 env) for _ in range(2)])
    for trainer in trainers:
        assert trainer.returncode == 0, trainer.stderr[-3000:]
        for epoch in json.loads(trainer.stdout.strip().splitlines()[-1]):
            assert sorted(epoch) == expected  # each trainer: every example once per epoch
    assert server.returncode == 0, server.stderr[-3000:]
