"""A local S3 server (moto's ``moto_server``) on 127.0.0.1 for tests, and the environment that makes
etils.epath reach it through s3fs (never AWS), with the same scenario helpers as
tests/gcs_emulator.py (tests/local_store.py: every process of a scenario in a loopback-only network
namespace where the machine allows one).

botocore reads the endpoint from ``AWS_ENDPOINT_URL_S3``, and s3fs (2026.9.0) passes no endpoint of
its own, so that variable alone sends every request to the server.
"""

from __future__ import annotations

import contextlib
import os
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.local_store import LocalStore, free_port, serving

BUCKET = "bucket"


def client_env(port: int) -> dict[str, str]:
    """Variables for a child process: epath without TensorFlow's client, s3fs (botocore) at the
    server with dummy keys, no AWS config files and no instance-metadata probes."""
    return {"EPATH_USE_TF": "false", "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


@contextlib.contextmanager
def running_server() -> Iterator[int]:
    """Starts ``moto_server`` (in memory) on a free 127.0.0.1 port with the bucket ``BUCKET``;
    yields the port; stops it. moto answers an upload with ``If-None-Match: *`` onto an existing
    object, and a delete with an ``If-Match`` ETag that is not the object's, with 412, as S3 does."""
    port = free_port()
    moto_server = Path(sys.executable).with_name("moto_server")
    with serving([str(moto_server), "-H", "127.0.0.1", "-p", str(port)], port, "moto_server"):
        create_bucket = urllib.request.Request(f"http://127.0.0.1:{port}/{BUCKET}", method="PUT")
        with urllib.request.urlopen(create_bucket, timeout=30):
            pass
        yield port


_STORE = LocalStore("tests.s3_server", "running_server", client_env)
run_in_child = _STORE.run_in_child
start_child = _STORE.start_child
run_scenario = _STORE.run_scenario
