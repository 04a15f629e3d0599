"""The layer order in .importlinter (``_format -> _prepare -> builder -> _pipeline -> commands``),
checked by import-linter on the package, function-local imports included."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import emnist_idx

REPO = Path(__file__).resolve().parent.parent
CONTRACT = REPO / ".importlinter"
PACKAGE = Path(emnist_idx.__file__).parent


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with the repository's contract on the ``emnist_idx`` found under ``root``."""
    command = [str(Path(sys.executable).parent / "lint-imports"), str(CONTRACT), "--no-cache", "--no-logo"]
    return subprocess.run(command, cwd=root, env={"PYTHONPATH": str(root), "PATH": ""},
                          capture_output=True, text=True, timeout=120, check=False)


def test_every_layer_imports_only_the_layers_below_it() -> None:
    done = _lint_imports(PACKAGE.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def test_a_function_local_import_of_a_higher_layer_breaks_the_contract(tmp_path: Path) -> None:
    shutil.copytree(PACKAGE, tmp_path / "emnist_idx", ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "emnist_idx" / "_prepare" / "checks.py", "a") as module:
        module.write("\n\ndef _upward():\n    from emnist_idx._pipeline import prepared  # noqa: F401\n")
    done = _lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "emnist_idx._prepare.checks -> emnist_idx._pipeline.prepared" in done.stdout
