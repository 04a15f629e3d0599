"""Python functions that tf.data's own threads call, made safe at the interpreter's exit.

TensorFlow runs a pipeline's ``tf.numpy_function`` and ``tf.py_function`` on its own threads; our
readers release the GIL around every file read and numpy step, then take it back. When Python
finalizes (a script's end, an unhandled ``KeyboardInterrupt``), CPython 3.11 ends any thread that
then waits for the GIL with ``pthread_exit``, in the middle of TensorFlow's kernel and numpy's C
code. Their frames are unwound half-done (glibc then aborted with ``free(): invalid next size
(fast)``), and the kernel's call never completes, so the iterator that finalization destroys next
waits for it forever: the hang after ``KeyboardInterrupt``. TensorFlow itself only refuses calls
that *start* after finalization has begun (it checks ``Py_IsInitialized()``).

So every Python function handed to tf.data is ``guarded``. At exit (``atexit``, which runs before
finalization, while other threads can still take the GIL) new calls are refused at once, and the
exit waits until no call is running and none has started for ``QUIET_SECONDS``: the pipelines'
buffers are then full of refusals or their threads idle, so no thread is about to take the GIL.

``tf.numpy_function`` keeps its function alive in the outermost graph, which for a dataset built
eagerly is TensorFlow's global graph: forever. A function handed to it must hold nothing large;
``weak_method`` holds its object weakly (the dataset keeps the object alive instead).
"""

from __future__ import annotations

import atexit
import functools
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

QUIET_SECONDS = 0.1  # no call started for this long: the pipelines are idle
DRAIN_SECONDS = 2.0  # the most that exit waits for running calls (a piece read takes ~0.1-0.5 s)


class InterpreterExitingError(RuntimeError):
    """A pipeline asked for Python code after the interpreter began to exit."""


class _Calls:
    """Counts the guarded calls running; once closed, refuses new ones."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._running = 0
        self._last_start = 0.0
        self._closed = False

    def enter(self) -> None:
        with self._condition:
            self._last_start = time.monotonic()
            if self._closed:
                raise InterpreterExitingError(
                    "the Python interpreter is exiting: emnist_idx's pipelines run no more Python")
            self._running += 1

    def leave(self) -> None:
        with self._condition:
            self._running -= 1
            self._condition.notify_all()

    def close_and_drain(self, timeout: float = DRAIN_SECONDS) -> bool:
        """Refuses new calls, then waits (GIL released) until the pipelines are idle; returns
        whether they became idle within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._condition:
            self._closed = True
            while True:
                now = time.monotonic()
                idle_at = self._last_start + QUIET_SECONDS
                if self._running == 0 and now >= idle_at:
                    return True
                if now >= deadline:
                    return False
                self._condition.wait(min(deadline, max(idle_at, now + 0.01)) - now)

    @property
    def running(self) -> int:
        """How many guarded calls are running now."""
        with self._condition:
            return self._running


def _drain_at_exit(calls: _Calls, timeout: float = DRAIN_SECONDS) -> None:
    """``calls.close_and_drain``; says on stderr when exit stopped waiting for running calls."""
    if not calls.close_and_drain(timeout):
        sys.stderr.write(f"emnist_idx: {calls.running} pipeline read(s) still running {timeout} s "
                         "into the interpreter's exit; exiting without waiting for them\n")


_CALLS = _Calls()
atexit.register(_drain_at_exit, _CALLS)


def guarded(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` counted while it runs, and refused (``InterpreterExitingError``) at exit."""

    @functools.wraps(function)
    def call(*args: Any) -> Any:
        _CALLS.enter()
        try:
            return function(*args)
        finally:
            _CALLS.leave()

    return call


def weak_method(method: Callable[..., Any], what: str) -> Callable[..., Any]:
    """A guarded function calling the bound ``method`` while its object lives (``what`` names it in
    the error raised after that object is gone): the function keeps the object alive no longer."""
    reference = weakref.WeakMethod(method)

    def call(*args: Any) -> Any:
        bound = reference()
        if bound is None:
            raise RuntimeError(f"{what} was garbage-collected while its dataset was in use")
        return bound(*args)

    return guarded(call)
