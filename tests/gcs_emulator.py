"""A local GCS emulator (gcp-storage-emulator) on 127.0.0.1 for tests, and the environment that
makes etils.epath reach it through gcsfs (never Google)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

BUCKET = "bucket"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def client_env(port: int) -> dict[str, str]:
    """Variables for a child process: epath without TensorFlow's client, gcsfs at the emulator,
    anonymous, no metadata-server or gRPC probes."""
    return {"EPATH_USE_TF": "false", "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}",
            "FSSPEC_GCS_TOKEN": "anon", "NO_GCE_CHECK": "true",
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}


@contextlib.contextmanager
def running_emulator() -> Iterator[int]:
    """Starts the emulator (in memory, bucket ``BUCKET``) on a free 127.0.0.1 port; yields the
    port; stops it."""
    port = _free_port()
    command = [str(Path(sys.executable).with_name("gcp-storage-emulator")), "start", "--host",
               "127.0.0.1", "--port", str(port), "--in-memory", "--default-bucket", BUCKET]
    emulator = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if emulator.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gcp-storage-emulator did not start on port {port}")
            time.sleep(0.2)
        yield port
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)


def run_in_child(code: str, port: int, timeout: int = 600) -> subprocess.CompletedProcess:
    """Runs Python ``code`` in a child process that reaches the emulator through epath."""
    env = {**os.environ, **client_env(port), "PYTHONPATH": str(Path(__file__).parent.parent)}
    return subprocess.run([sys.executable, "-c", code], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
