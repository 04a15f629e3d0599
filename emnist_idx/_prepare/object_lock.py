"""One prepare at a time per version folder on object storage (``gs://...``, ``s3://...``).

Object stores have no ``flock``. The lock is an object, ``<version>.lock`` beside the version
folder, created only if absent (fsspec's ``pipe_file(..., mode="create")``: GCS's
``ifGenerationMatch=0`` precondition through gcsfs, S3's ``If-None-Match: *`` through s3fs), so of
two racing creates exactly one succeeds and the other gets 412 (FileExistsError). The object holds
its holder (host, pid, since when) and a heartbeat count the holder rewrites every
``EMNIST_IDX_LOCK_HEARTBEAT_S`` seconds (30) while it prepares.

A waiter polls with backoff. It takes the lock once the object is gone, takes it over (logged) when
its holder is a dead process on this host (deleting only the generation it read, on S3 a delete
``If-Match`` the ETag it read, so two waiters cannot both take over), and otherwise raises
:class:`~emnist_idx.errors.PrepareLockedError` when the heartbeat did not change for
``EMNIST_IDX_LOCK_STALE_S`` seconds (300: the holder is gone; the message gives the command that
removes the lock) or when it waited ``EMNIST_IDX_LOCK_WAIT_S`` seconds (1800) in all. Staleness is
judged by the waiter's own clock watching the heartbeat change, so the machines' clocks need not
agree.

The lock needs an fsspec file system for the URL's scheme (gcsfs for gs://, s3fs for s3://):
TensorFlow's gs:// client, which etils.epath uses when TensorFlow is importable, has no create-only
write (and it has no s3:// at all). Without one, or on a store whose fsspec backend has no exclusive
create, prepares run unlocked, with a warning.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from emnist_idx.errors import PrepareLockedError

_log = logging.getLogger("emnist_idx")
_DEFAULTS = {"EMNIST_IDX_LOCK_HEARTBEAT_S": 30.0, "EMNIST_IDX_LOCK_STALE_S": 300.0,
             "EMNIST_IDX_LOCK_WAIT_S": 1800.0}
_LONGEST_POLL_S = 10.0
_held: set[str] = set()  # the lock URLs this process holds now


def _seconds(name: str) -> float:
    return float(os.environ.get(name, _DEFAULTS[name]))


@dataclasses.dataclass(frozen=True)
class Holder:
    """Who holds a lock: the content of the lock object."""

    host: str
    pid: int
    since: str  # UTC, ISO 8601
    heartbeat: int = 0

    @classmethod
    def me(cls) -> Holder:
        since = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        return cls(socket.gethostname(), os.getpid(), since)

    @classmethod
    def parse(cls, content: bytes) -> Holder:
        try:
            fields = json.loads(content)
            return cls(str(fields["host"]), int(fields["pid"]), str(fields["since"]),
                       int(fields.get("heartbeat", 0)))
        except (ValueError, KeyError, TypeError):
            return cls("(unknown: not an emnist_idx lock)", -1, "(unknown)")

    def encode(self) -> bytes:
        return json.dumps(dataclasses.asdict(self)).encode()

    def describe(self) -> str:
        return f"pid {self.pid} on host {self.host} since {self.since}"

    def is_dead_here(self) -> bool:
        """Whether the holder ran on this host and its process is gone."""
        if self.host != socket.gethostname() or self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False


def is_held(url: str) -> bool:
    """Whether this process holds the lock ``url`` now (not so while running unlocked)."""
    return url in _held


def remove_command(url: str) -> str:
    """The shell command that removes the lock object ``url``."""
    commands = {"gs": "gcloud storage rm", "s3": "aws s3 rm"}
    scheme = url.partition("://")[0]
    return f"{commands[scheme]} {url}" if scheme in commands else f"remove the object {url}"


@contextlib.contextmanager
def object_lock(url: str) -> Iterator[bool]:
    """Holds the lock object ``url`` (``<version>.lock``); yields whether another process held it
    first (we waited). Raises PrepareLockedError as described in the module's docstring."""
    fs = _file_system(url)
    if fs is None:
        yield False
        return
    key = fs._strip_protocol(url)
    me = Holder.me()
    try:
        waited = _acquire(fs, key, url, me)
    except _NoExclusiveCreate as unsupported:
        _log.warning("Prepares of %s are not locked against each other: %s", url, unsupported)
        yield False
        return
    stop = threading.Event()
    beating = threading.Thread(target=_beat, args=(fs, key, url, me, stop), daemon=True,
                               name="emnist_idx lock heartbeat")
    beating.start()
    _held.add(url)
    try:
        yield waited
    finally:
        _held.discard(url)
        stop.set()
        beating.join()
        with contextlib.suppress(FileNotFoundError):
            if _is_mine(fs, key, url, me):
                fs.rm_file(key)


class _NoExclusiveCreate(Exception):
    pass


def _url_to_fs(url: str) -> tuple[Any, str]:
    """fsspec's file system for ``url`` and the path in it."""
    import fsspec  # type: ignore[import-untyped]  # noqa: PLC0415 - a dependency of TFDS

    return fsspec.core.url_to_fs(url)


def _file_system(url: str) -> Any:
    try:
        return _url_to_fs(url)[0]
    except (ImportError, ValueError) as missing:
        _log.warning("Prepares of %s are not locked against each other: no fsspec file system "
                     "(%s); for gs://, pip install gcsfs", url, missing)
        return None


def _create(fs: Any, key: str, content: bytes) -> None:
    """Creates ``key`` only if absent (FileExistsError if present)."""
    try:
        fs.pipe_file(key, content, mode="create")
    except (TypeError, NotImplementedError) as no_mode:  # a backend without a create mode
        raise _NoExclusiveCreate(f"{type(fs).__name__} has no exclusive create") from no_mode


def _acquire(fs: Any, key: str, url: str, me: Holder) -> bool:
    started = time.monotonic()
    last_content, last_change = b"", started
    delay = 0.2
    waited = False
    while True:
        try:
            _create(fs, key, me.encode())
            return waited
        except FileExistsError:
            pass
        fs.invalidate_cache(key)
        try:
            seen = fs.info(key)
            content = fs.cat_file(key)
        except FileNotFoundError:
            continue  # released between our create and our look
        holder = Holder.parse(content)
        if holder.is_dead_here() and _versioned(fs, seen):
            _take_over(fs, key, url, seen, holder)
            continue
        now = time.monotonic()
        if content != last_content:
            last_content, last_change = content, now
        elif now - last_change > _seconds("EMNIST_IDX_LOCK_STALE_S"):
            raise PrepareLockedError(
                url, holder.describe(),
                f"its heartbeat ({holder.heartbeat}) has not changed for {now - last_change:.0f} s "
                f"(EMNIST_IDX_LOCK_STALE_S), so its prepare was killed or lost its machine. If no "
                f"prepare of this version is running, remove the lock with `{remove_command(url)}` "
                f"and run the prepare again")
        if now - started > _seconds("EMNIST_IDX_LOCK_WAIT_S"):
            raise PrepareLockedError(
                url, holder.describe(),
                f"still held, with a live heartbeat, after waiting {now - started:.0f} s "
                f"(EMNIST_IDX_LOCK_WAIT_S): another prepare of this version is running; wait for "
                f"it and run again, or raise EMNIST_IDX_LOCK_WAIT_S")
        if not waited:
            _log.warning("Waiting for another process preparing %s (lock %s, held by %s)",
                         url.removesuffix(".lock"), url, holder.describe())
            waited = True
        time.sleep(delay)
        delay = min(delay * 2, _LONGEST_POLL_S, _seconds("EMNIST_IDX_LOCK_HEARTBEAT_S"))


def _versioned(fs: Any, seen: dict[str, Any]) -> bool:
    """Whether the lock as ``seen`` can be deleted only if unchanged (GCS, S3)."""
    return bool(seen.get("generation") or (seen.get("ETag") and hasattr(fs, "call_s3")))


def _take_over(fs: Any, key: str, url: str, seen: dict[str, Any], holder: Holder) -> None:
    """Deletes the lock only as ``seen``: its GCS generation, or on S3 a delete ``If-Match`` its
    ETag. If another waiter took it over first, the lock is a newer object and the delete finds
    nothing (404, or S3's 412)."""
    try:
        if seen.get("generation"):
            versioned, versioned_key = _url_to_fs(f"{url}#{seen['generation']}")
            versioned.rm_file(versioned_key)
        else:
            bucket, name, _ = fs.split_path(key)
            fs.call_s3("delete_object", Bucket=bucket, Key=name, IfMatch=seen["ETag"])
    except FileNotFoundError:
        return
    except OSError as changed:  # s3fs raises S3's 412 PreconditionFailed as EINVAL
        if changed.errno == errno.EINVAL:
            return
        raise
    _log.warning("Took over the lock %s: its holder, %s, is no longer running", url,
                 holder.describe())


def _is_mine(fs: Any, key: str, url: str, me: Holder) -> bool:
    """Whether the lock still names this prepare (logged when not: removed by hand and taken by
    another prepare while held). FileNotFoundError if it is gone."""
    fs.invalidate_cache(key)
    current = Holder.parse(fs.cat_file(key))
    if dataclasses.replace(current, heartbeat=0) == me:
        return True
    _log.error("The lock %s is held by %s, not by this prepare (removed by hand while held?): "
               "leaving it alone", url, current.describe())
    return False


def _beat(fs: Any, key: str, url: str, me: Holder, stop: threading.Event) -> None:
    """Rewrites the lock with a new heartbeat count until ``stop``, while it is still ours (read
    first: GCS would allow a generation-matched rewrite, gcsfs's writes do not expose one)."""
    beat = 0
    while not stop.wait(_seconds("EMNIST_IDX_LOCK_HEARTBEAT_S")):
        try:
            if not _is_mine(fs, key, url, me):
                return
            beat += 1
            fs.pipe_file(key, dataclasses.replace(me, heartbeat=beat).encode())
        except FileNotFoundError:
            _log.error("The lock %s was removed while held: no longer renewing it", url)
            return
        except OSError as failed:  # a missed beat is retried at the next one
            _log.warning("Could not renew the lock %s: %s", url, failed)
