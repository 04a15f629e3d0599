"""Runs one Markdown page's code fences, in order, as a reader would: ``python tests/docs_runner.py PAGE``.

Run by ``tests/test_docs.py`` in a child process whose working directory, ``HOME`` and ``PATH`` it
sets up. Parsed with Sybil: every ```python fence runs in one namespace for the page (a later fence
sees an earlier one's names); every ```bash fence runs with ``bash -euo pipefail``; ```text fences
are not run. ``<!-- skip: next "reason" -->`` skips the next fence (tests/test_docs.py allows few,
each for the network or a GPU). README's two commands (``python3 -m venv .venv && ...``) set up a
virtualenv in a clone: here their last step runs in the current environment (``emnist-idx demo``),
and the test command, which runs the whole suite, must be exactly what ``.ci/run`` runs.
Exit status 0 when every fence ran; otherwise the first failing fence's page and line, and why.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from unittest import SkipTest

from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

ROOT = Path(__file__).resolve().parent.parent
SETUP_PREFIX = "python3 -m venv .venv && "
VENV_BIN = ".venv/bin/"


def run_bash(example: Example) -> None:
    """Runs a ```bash fence with ``bash -euo pipefail`` in the current directory."""
    command = example.parsed.rstrip("\n")
    if command.startswith(SETUP_PREFIX):
        command = commands_step_here(command)
        if command is None:
            return
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", command], capture_output=True, text=True)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    if done.returncode:
        raise AssertionError(f"bash -euo pipefail exited {done.returncode}:\n{command}")


def commands_step_here(command: str) -> str | None:
    """The part of one of README's two commands that runs here, or None when .ci/run runs it."""
    last_step = command.rsplit(" && ", 1)[1]
    if last_step.endswith("-m pytest -q"):  # the whole suite: CI's own command, checked as text
        ci_commands = (ROOT / ".ci" / "run").read_text().splitlines()
        if command not in ci_commands:
            raise AssertionError(f".ci/run does not run README's test command as written: {command}")
        return None
    if not last_step.startswith(VENV_BIN):
        raise AssertionError(f"expected the virtualenv's command last ({VENV_BIN}...), found {last_step}")
    return last_step.removeprefix(VENV_BIN)  # this virtualenv's bin is first on PATH


def page_sybil() -> Sybil:
    """The parsers for a page: Python and bash fences, and skip directives."""
    return Sybil(parsers=[PythonCodeBlockParser(), CodeBlockParser("bash", run_bash), SkipParser()])


def run_page(page: Path) -> int:
    document = page_sybil().parse(page)
    for example in document:
        where = f"{page.name}:{example.line}"
        try:
            example.evaluate()
        except SkipTest as skipped:
            print(f"docs: {where}: skipped: {skipped}", flush=True)
        except BaseException:
            print(f"docs: {where}: this fence failed", file=sys.stderr, flush=True)
            raise
    return 0


if __name__ == "__main__":
    sys.exit(run_page(Path(sys.argv[1]).resolve()))
