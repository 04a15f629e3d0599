"""What the tests of a local object-storage server share (tests/gcs_emulator.py for gs://,
tests/s3_server.py for s3://): a free port, waiting for the server to listen, and the processes of
a scenario, which reach the server through the variables its module's ``client_env(port)`` gives.

``LocalStore.run_scenario`` runs a test's whole scenario (the server and every client process) in
a loopback-only network namespace (``unshare -rn``) where the machine allows one, so that nothing
can reach past 127.0.0.1; elsewhere it runs it as is and logs that (tests/loopback.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.loopback import namespace_prefix

REPO = Path(__file__).resolve().parent.parent


def last_json(done: subprocess.CompletedProcess) -> dict:
    """What a scenario or child printed last, as JSON; fails with its stderr's end unless it
    exited with 0."""
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(command: list[str], port: int, name: str) -> Iterator[None]:
    """Runs the server ``command`` (output discarded) until the block ends, entering the block once
    it accepts connections on 127.0.0.1:``port`` (RuntimeError if it exits or 60 s pass first);
    killed if it has not stopped 20 s after SIGTERM."""
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start on port {port}")
            time.sleep(0.2)
        yield
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:  # moto_server's SIGTERM waits for open connections
            server.kill()
            server.wait(timeout=20)


_SCENARIO_DRIVER = """
import os, sys
sys.path.insert(0, {repo!r})
from {module} import client_env, {running} as running
with running() as port:
    os.environ.update(client_env(port))
    exec(compile(sys.argv[1], "<scenario>", "exec"), {{"port": port, "__name__": "__scenario__"}})
"""


@dataclasses.dataclass(frozen=True)
class LocalStore:
    """A server module: ``module`` (importable) has ``client_env`` and the context manager named
    ``running`` that starts the server and yields its port."""

    module: str
    running: str
    client_env: Callable[[int], dict[str, str]]

    def _child_env(self, port: int, env: dict[str, str] | None) -> dict[str, str]:
        return {**os.environ, **self.client_env(port), "PYTHONPATH": str(REPO), **(env or {})}

    def run_in_child(self, code: str, port: int, timeout: int = 600,
                     env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Runs Python ``code`` in a child process that reaches the server through epath
        (``env``: more variables)."""
        return subprocess.run([sys.executable, "-c", code], env=self._child_env(port, env),
                              capture_output=True, text=True, timeout=timeout, check=False)

    def start_child(self, code: str, port: int, env: dict[str, str] | None = None,
                    **popen: object) -> subprocess.Popen:
        """Starts ``run_in_child``'s process without waiting (text stdout and stderr piped unless
        ``popen`` says otherwise)."""
        return subprocess.Popen([sys.executable, "-c", code], env=self._child_env(port, env),
                                **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE,
                                   "text": True, **popen})

    def run_scenario(self, code: str, timeout: int = 600,
                     env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Runs Python ``code`` in a process (in a loopback-only namespace where available) that
        first starts the server: ``code`` sees its ``port`` and the client variables in
        ``os.environ``, so its ``run_in_child``/``start_child`` processes reach it. Stops the
        server after."""
        driver = _SCENARIO_DRIVER.format(repo=str(REPO), module=self.module, running=self.running)
        command = [*namespace_prefix(), sys.executable, "-c", driver, code]
        return subprocess.run(command, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
                              capture_output=True, text=True, timeout=timeout, check=False)
