"""A local GCS emulator (gcp-storage-emulator) on 127.0.0.1 for tests, and the environment that
makes etils.epath reach it through gcsfs (never Google).

``run_scenario`` runs a test's whole scenario (the emulator and every client process) in a
loopback-only network namespace (``unshare -rn``) where the machine allows one, so that nothing
can reach past 127.0.0.1; elsewhere it runs it as is and logs that (tests/local_store.py).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.local_store import LocalStore, free_port, serving

BUCKET = "bucket"


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
    port = free_port()
    command = [sys.executable, str(Path(__file__).with_name("gcs_emulator_main.py")), "start",
               "--host", "127.0.0.1", "--port", str(port), "--in-memory", "--default-bucket", BUCKET]
    with serving(command, port, "gcp-storage-emulator"):
        yield port


_STORE = LocalStore("tests.gcs_emulator", "running_emulator", client_env)
run_in_child = _STORE.run_in_child
start_child = _STORE.start_child
run_scenario = _STORE.run_scenario
