"""Running a test's processes together in a network namespace of their own, where only loopback
exists: servers that bind every address (TensorFlow's tf.data service and gRPC servers take a port,
not an address) are then reachable from these processes only, and nothing can reach out.

``namespace_prefix() + command`` runs a command under ``unshare -rn`` (a user and network namespace,
no privileges needed) with ``lo`` brought up first (``ioctl``; no ``ip`` needed), where the machine
allows it; elsewhere the prefix is empty (with a warning: the test still runs, not isolated).
``run_group(services, jobs)`` runs such a group: it starts the services, then the jobs, all at
once, waits for the jobs, then closes the services' stdin (their signal to stop), waits for them,
and returns what each process did.
"""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import json
import os
import socket
import struct
import subprocess
import sys
import warnings
from collections.abc import Sequence

_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_IFREQ = struct.Struct("16sh22x")  # struct ifreq: the name, then ifr_flags in a 24-byte union


@dataclasses.dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str]


@dataclasses.dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str


@functools.cache
def namespace_available() -> bool:
    """Whether ``unshare -rn`` works here (user namespaces may be disabled, or no util-linux)."""
    try:
        return subprocess.run(["unshare", "-rn", "true"], capture_output=True,
                              timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def namespace_prefix() -> list[str]:
    """What to put before a command to run it in a new network namespace with only loopback, up;
    ``[]`` (after a warning) where the machine allows no such namespace."""
    if namespace_available():
        return ["unshare", "-rn", sys.executable, __file__, "up-and-exec"]
    warnings.warn("unshare -rn is not available here: the test's processes run on this machine's "
                  "network", stacklevel=2)
    return []


def run_group(services: Sequence[Command], jobs: Sequence[Command], timeout: float = 300
              ) -> tuple[list[Finished], list[Finished]]:
    """Runs the group (isolated when possible); returns how the services and the jobs ended."""
    spec = json.dumps({"services": [dataclasses.asdict(c) for c in services],
                       "jobs": [dataclasses.asdict(c) for c in jobs], "timeout": timeout})
    done = subprocess.run([*namespace_prefix(), sys.executable, __file__, "group"], input=spec,
                          capture_output=True, text=True, timeout=timeout + 120, check=False)
    if done.returncode:
        raise RuntimeError(f"the group's runner failed:\n{done.stderr[-3000:]}")
    ended = json.loads(done.stdout.strip().splitlines()[-1])
    return ([Finished(**entry) for entry in ended["services"]],
            [Finished(**entry) for entry in ended["jobs"]])


def _run(spec: dict) -> dict[str, list[dict]]:
    services = [subprocess.Popen(c["argv"], env=c["env"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for c in spec["services"]]
    jobs = [subprocess.Popen(c["argv"], env=c["env"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for c in spec["jobs"]]
    try:
        job_outputs = [job.communicate(timeout=spec["timeout"]) for job in jobs]
        service_outputs = [service.communicate(input="", timeout=60) for service in services]
    finally:
        for process in [*jobs, *services]:
            process.kill()
    return {"services": [_ended(p, out) for p, out in zip(services, service_outputs)],
            "jobs": [_ended(p, out) for p, out in zip(jobs, job_outputs)]}


def _ended(process: subprocess.Popen, outputs: tuple[str, str]) -> dict:
    return {"returncode": process.returncode, "stdout": outputs[0], "stderr": outputs[1]}


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        flags = _IFREQ.unpack(fcntl.ioctl(probe, _SIOCGIFFLAGS, _IFREQ.pack(b"lo", 0)))[1]
        fcntl.ioctl(probe, _SIOCSIFFLAGS, _IFREQ.pack(b"lo", flags | _IFF_UP))


if __name__ == "__main__":
    if sys.argv[1] == "up-and-exec":  # in the new namespace: lo up, then become the command
        _loopback_up()
        os.execvp(sys.argv[2], sys.argv[2:])
    print(json.dumps(_run(json.loads(sys.stdin.read()))))  # "group"
