"""A local GCS emulator (gcp-storage-emulator) on 127.0.0.1 for tests, and the environment that
makes etils.epath reach it through gcsfs (never Google).

``run_scenario`` runs a test's whole scenario (the emulator and every client process) in a
loopback-only network namespace (``unshare -rn``) where the machine allows one, so that nothing
can reach past 127.0.0.1; elsewhere it runs it as is and logs that.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.loopback import namespace_prefix

BUCKET = "bucket"
REPO = Path(__file__).resolve().parent.parent


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
    port; stops it. Uploads honour ``ifGenerationMatch=0`` as GCS does (``gcs_emulator_main.py``)."""
    port = _free_port()
    command = [sys.executable, str(Path(__file__).with_name("gcs_emulator_main.py")), "start",
               "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--default-bucket", BUCKET]
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


def _child_env(port: int, env: dict[str, str] | None) -> dict[str, str]:
    return {**os.environ, **client_env(port), "PYTHONPATH": str(REPO), **(env or {})}


def run_in_child(code: str, port: int, timeout: int = 600,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Runs Python ``code`` in a child process that reaches the emulator through epath (``env``:
    more variables)."""
    return subprocess.run([sys.executable, "-c", code], env=_child_env(port, env),
                          capture_output=True, text=True, timeout=timeout, check=False)


def start_child(code: str, port: int, env: dict[str, str] | None = None,
                **popen: object) -> subprocess.Popen:
    """Starts ``run_in_child``'s process without waiting (text stdout and stderr piped unless
    ``popen`` says otherwise)."""
    return subprocess.Popen([sys.executable, "-c", code], env=_child_env(port, env),
                            **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True,
                               **popen})


_SCENARIO_DRIVER = """
import os, sys
sys.path.insert(0, {repo!r})
from tests.gcs_emulator import client_env, running_emulator
with running_emulator() as port:
    os.environ.update(client_env(port))
    exec(compile(sys.argv[1], "<scenario>", "exec"), {{"port": port, "__name__": "__scenario__"}})
"""


def run_scenario(code: str, timeout: int = 600,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Runs Python ``code`` in a process (in a loopback-only namespace where available) that first
    starts the emulator: ``code`` sees its ``port`` and the client variables in ``os.environ``, so
    its ``run_in_child``/``start_child`` processes reach it. Stops the emulator after."""
    command = [*namespace_prefix(), sys.executable, "-c",
               _SCENARIO_DRIVER.format(repo=str(REPO)), code]
    return subprocess.run(command, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                          capture_output=True, text=True, timeout=timeout, check=False)
