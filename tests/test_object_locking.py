"""The version-folder lock on object storage (emnist_idx/_prepare/object_lock.py), each scenario
run against both local servers: a GCS emulator that honours ``ifGenerationMatch=0`` as GCS does
(tests/gcs_emulator.py, tests/gcs_emulator_main.py) and moto's S3 server, which honours
``If-None-Match: *`` and ``If-Match`` as S3 does (tests/s3_server.py). Each scenario runs in a
loopback-only network namespace where one is allowed (tests/local_store.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
from collections.abc import Callable

import pytest

from emnist_idx._prepare import object_lock
from emnist_idx._prepare.object_lock import Holder
from tests import gcs_emulator, s3_server
from tests.local_store import last_json
from tests.bundle_factory import DUMMY_GZIP


@dataclasses.dataclass(frozen=True)
class Store:
    """One local object store the scenarios run against."""

    scheme: str  # "gs" or "s3"
    module: str  # the server's module, which the scenario's own children import
    remove_command: str  # what the stale-lock error tells the user to run
    run_scenario: Callable[..., subprocess.CompletedProcess]

    @property
    def data_dir(self) -> str:
        return f"{self.scheme}://bucket/tfds"

    @property
    def version_dir(self) -> str:
        return f"{self.data_dir}/emnist_idx/digits/1.0.0"

    @property
    def lock(self) -> str:
        return f"{self.version_dir}.lock"


STORES = {"gs": Store("gs", "tests.gcs_emulator", "gcloud storage rm", gcs_emulator.run_scenario),
          "s3": Store("s3", "tests.s3_server", "aws s3 rm", s3_server.run_scenario)}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest) -> Store:
    return STORES[request.param]


def test_holder_round_trips_and_a_foreign_lock_reads_as_unknown() -> None:
    me = Holder.me()
    assert Holder.parse(me.encode()) == me
    assert not me.is_dead_here()  # this very process
    assert Holder.parse(b"not json").pid == -1


def test_the_lock_error_names_each_store_s_remove_command(store: Store) -> None:
    assert object_lock.remove_command(store.lock) == f"{store.remove_command} {store.lock}"


def _race(store: Store) -> str:
    lock = store.lock
    return f"""
import concurrent.futures, json, sys, time
import fsspec
from emnist_idx._prepare import object_lock
from {store.module} import start_child

fs, key = fsspec.core.url_to_fs({lock!r} + ".race")
def create(index):
    try:
        object_lock._create(fs, key, b"%d" % index)
        return True
    except FileExistsError:
        return False
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    winners = sum(pool.map(create, range(8)))

HOLD = '''
import time
from emnist_idx._prepare import locking
with locking.version_lock({store.version_dir!r}) as waited:
    start = time.time()
    time.sleep(1.5)
    print(start, time.time(), waited, flush=True)
'''
children = [start_child(HOLD, port) for _ in range(2)]
results = [child.communicate(timeout=300) for child in children]
assert all(child.returncode == 0 for child in children), [err[-2000:] for _, err in results]
intervals = sorted([float(v) for v in out.split()[:2]] + [out.split()[2] == "True"]
                   for out, _ in results)
print(json.dumps({{"winners": winners, "intervals": intervals,
                  "lock_left": fs.exists(fsspec.core.url_to_fs({lock!r})[1]),
                  "stderr": [err for _, err in results]}}))
"""


@pytest.mark.slow
def test_one_of_racing_creates_wins_and_two_holders_take_turns(store: Store) -> None:
    """gcsfs's ``pipe_file(mode="create")`` sends ``ifGenerationMatch=0``, s3fs's
    ``If-None-Match: *``: a second create is refused (412) on both."""
    result = last_json(store.run_scenario(_race(store)))
    assert result["winners"] == 1
    (first_start, first_end, first_waited), (second_start, _, second_waited) = result["intervals"]
    assert first_end <= second_start  # never both inside
    assert (first_waited, second_waited) == (False, True)
    assert any("Waiting for another process" in err for err in result["stderr"])
    assert not result["lock_left"]


def _stale(store: Store) -> str:
    return f"""
import json, os, socket, subprocess, sys
import fsspec
from emnist_idx._prepare import locking, object_lock
from emnist_idx.errors import PrepareLockedError

fs, key = fsspec.core.url_to_fs({store.lock!r})
version_dir = {store.version_dir!r}
outcome = {{}}

# 1. A holder on this host whose process is gone: taken over, with a warning.
gone = subprocess.Popen(["true"])
gone.wait()
fs.pipe_file(key, object_lock.Holder(socket.gethostname(), gone.pid, "2026-01-01T00:00:00+00:00").encode())
with locking.version_lock(version_dir) as waited:
    outcome["took_over"] = object_lock.Holder.parse(fs.cat_file(key)).pid == os.getpid()
outcome["released"] = not fs.exists(key)

# 2. A holder on another host whose heartbeat never changes: stale, a named error.
fs.pipe_file(key, object_lock.Holder("other-host", 4242, "2026-01-01T00:00:00+00:00").encode())
try:
    with locking.version_lock(version_dir):
        outcome["stale"] = "entered"
except PrepareLockedError as error:
    outcome["stale"] = str(error)
    outcome["stale_attributes"] = [error.lock, error.holder]
fs.rm_file(key)

# 3. The lock removed by hand while held, and taken by another: the holder leaves that one alone.
with locking.version_lock(version_dir):
    fs.rm_file(key)
    fs.pipe_file(key, object_lock.Holder("intruder", 7, "2026-01-01T00:00:00+00:00").encode())
outcome["intruder_kept"] = object_lock.Holder.parse(fs.cat_file(key)).host == "intruder"
fs.rm_file(key)

# 4. A live holder (heartbeat every 0.3 s) held past the waiter's bound: a named error.
HOLD = '''
import sys, time
from emnist_idx._prepare import locking
with locking.version_lock(%r):
    print("held", flush=True)
    sys.stdin.read()
''' % version_dir
holder = subprocess.Popen([sys.executable, "-c", HOLD], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True,
                          env={{**os.environ, "EMNIST_IDX_LOCK_HEARTBEAT_S": "0.3"}})
assert holder.stdout.readline().strip() == "held"
os.environ.update(EMNIST_IDX_LOCK_WAIT_S="4", EMNIST_IDX_LOCK_STALE_S="60")
try:
    with locking.version_lock(version_dir):
        outcome["busy"] = "entered"
except PrepareLockedError as error:
    outcome["busy"] = str(error)
holder.stdin.close()
holder.wait(timeout=120)
outcome["holder_pid"] = holder.pid
print(json.dumps(outcome))
"""


@pytest.mark.slow
def test_a_dead_holder_is_taken_over_and_a_stale_or_busy_lock_is_a_named_error(
        store: Store) -> None:
    """Also: a holder whose lock was removed by hand and taken by another leaves the new one. The
    take-over deletes only what it read (gs: the generation; s3: ``If-Match`` the ETag)."""
    done = store.run_scenario(_stale(store), env={"EMNIST_IDX_LOCK_STALE_S": "2",
                                                  "EMNIST_IDX_LOCK_HEARTBEAT_S": "0.5"})
    result = last_json(done)
    lock = store.lock
    assert result["took_over"] and result["released"] and result["intruder_kept"]
    assert f"The lock {lock} is held by pid 7 on host intruder" in done.stderr
    assert f"Took over the lock {lock}: its holder" in done.stderr
    stale = result["stale"]
    assert stale.startswith(f"{lock}: held by pid 4242 on host other-host since 2026-01-01")
    assert "has not changed for" in stale and f"`{store.remove_command} {lock}`" in stale
    assert result["stale_attributes"][0] == lock
    busy = result["busy"]
    assert busy.startswith(f"{lock}: held by pid {result['holder_pid']} on host ")
    assert "still held, with a live heartbeat" in busy and "EMNIST_IDX_LOCK_WAIT_S" in busy


def _prepare(store: Store) -> str:
    return f"""
import hashlib, json, emnist_idx
x, y = emnist_idx.load_numpy("digits", "test", data_dir={store.data_dir!r},
                             manual_dir={str(DUMMY_GZIP)!r})
print(json.dumps([hashlib.sha256(x.tobytes()).hexdigest(), hashlib.sha256(y.tobytes()).hexdigest()]))
"""


def _listing(store: Store) -> str:
    """Code that sets ``listing`` (the digits folder's names) and ``files`` (the version folder's)."""
    return f"""
import fsspec
fs = fsspec.filesystem({store.scheme!r})
fs.invalidate_cache()
listing = sorted(path.rsplit("/", 1)[-1] for path in fs.ls({store.data_dir!r} + "/emnist_idx/digits"))
files = (sorted(path.rsplit("/", 1)[-1] for path in fs.ls({store.version_dir!r}))
         if fs.exists({store.version_dir!r}) else [])
"""


@pytest.fixture(scope="module")
def local_digits(digits_test) -> list[str]:
    """The hashes ``_prepare``'s code prints, from a local prepare."""
    x, y = digits_test
    return [hashlib.sha256(x.tobytes()).hexdigest(), hashlib.sha256(y.tobytes()).hexdigest()]


def _concurrent(store: Store) -> str:
    return f"""
import json, tempfile, time
from emnist_idx._prepare import locking
from {store.module} import start_child
logs = [tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False) for _ in range(2)]
with locking.version_lock({store.version_dir!r}):  # held until both prepares wait for it
    children = [start_child({_prepare(store)!r}, port, stderr=log) for log in logs]
    deadline = time.monotonic() + 300
    while not all("Waiting for another process" in open(log.name).read() for log in logs):
        assert time.monotonic() < deadline and all(child.poll() is None for child in children)
        time.sleep(0.2)
outputs = [child.communicate(timeout=600)[0] for child in children]
stderr = [open(log.name).read() for log in logs]
assert all(child.returncode == 0 for child in children), [err[-3000:] for err in stderr]
{_listing(store)}
print(json.dumps({{"results": [json.loads(out.splitlines()[-1]) for out in outputs],
                  "prepared": [out.count("Preparing emnist_idx/digits") for out in outputs],
                  "listing": listing, "files": files}}))
"""


@pytest.mark.slow
def test_two_concurrent_prepares_of_one_folder_give_one_identical_dataset(
        store: Store, local_digits: list[str]) -> None:
    """Both wait for a held lock, then take turns: one prepares, the other reuses its dataset."""
    result = last_json(store.run_scenario(_concurrent(store)))
    assert result["results"] == [local_digits, local_digits]
    assert sorted(result["prepared"]) == [0, 1]
    assert result["listing"] == ["1.0.0"]  # no lock, no incomplete.* folder left
    assert {"dataset_info.json", "features.json", "metadata.json"} <= set(result["files"])


def _killed(store: Store, stage: str) -> str:
    return f"""
import json, os, signal
from {store.module} import run_in_child
KILL = '''
import os, signal
from etils import epath
from emnist_idx._prepare import shard_identity
if {stage!r} == "publishing":  # killed after copying 2 files into the version folder
    copy, copied = epath.gpath._GPath.copy, []
    def copy_then_die(self, destination, overwrite=False):
        copy(self, destination, overwrite=overwrite)
        copied.append(destination)
        if len(copied) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
    epath.gpath._GPath.copy = copy_then_die
else:  # killed with every shard written, before dataset_info.json
    shard_identity.manifest = lambda identities: os.kill(os.getpid(), signal.SIGKILL)
''' + {_prepare(store)!r}
killed = run_in_child(KILL, port)
{_listing(store)}
after_kill = {{"returncode": killed.returncode, "listing": listing, "files": files}}
READ = '''
import emnist_idx
try:
    emnist_idx.load_numpy("digits", "test", data_dir={store.data_dir!r}, download=False)
    print("read")
except Exception as error:
    print(type(error).__name__, str(error).replace(chr(10), " "))
'''
read = run_in_child(READ, port)
again = run_in_child({_prepare(store)!r}, port)
assert again.returncode == 0, again.stderr[-3000:]
{_listing(store)}
print(json.dumps({{"after_kill": after_kill, "read": read.stdout.strip().splitlines()[-1],
                  "again": json.loads(again.stdout.splitlines()[-1]), "stderr": again.stderr,
                  "listing": listing, "files": files}}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["writing", "publishing"])
def test_a_killed_prepare_is_never_read_as_complete_and_the_next_one_recovers(
        store: Store, local_digits: list[str], stage: str) -> None:
    result = last_json(store.run_scenario(_killed(store, stage)))
    version_dir = store.version_dir
    after_kill = result["after_kill"]
    assert after_kill["returncode"] == -9
    assert "1.0.0.lock" in after_kill["listing"]  # the dead prepare's lock
    assert "dataset_info.json" not in after_kill["files"]
    if stage == "publishing":
        assert len(after_kill["files"]) == 2  # half copied
    assert result["read"].startswith(  # no folder yet, or one without its marks
        f"FileNotFoundError emnist_idx/digits is not prepared in {version_dir}"
        if stage == "writing" else
        f"PreparedDataError {version_dir}/dataset_info.json: is missing from the prepared dataset")
    assert result["again"] == local_digits
    assert f"Took over the lock {store.lock}" in result["stderr"]
    assert "left by interrupted prepares" in result["stderr"]
    assert result["listing"] == ["1.0.0"]
    assert {"dataset_info.json", "features.json", "metadata.json"} <= set(result["files"])
