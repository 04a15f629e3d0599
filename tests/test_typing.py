"""What type checkers and a plain ``import emnist_idx`` see: typed signatures, no TensorFlow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

USER_CODE = '''\
import emnist_idx

(x_train, y_train), (x_test, y_test) = emnist_idx.load_data("digits")
count: int = emnist_idx.load_data("digits")
emnist_idx.load("balanced", batch_size="big")
emnist_idx.show_examples("letters", rows=2, colums=3)
names: list[str] = emnist_idx.class_names("letters")
'''


def _mypy(tmp_path: Path, *targets: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"),
         "--cache-dir", str(tmp_path / "mypy-cache"), "--no-error-summary", *targets],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.slow
def test_import_is_free_of_tensorflow_and_every_export_resolves() -> None:
    script = ("import sys, emnist_idx\n"
              "heavy = sorted(m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules)\n"
              "print('heavy after import:', heavy)\n"
              "print('builders:', 'emnist_idx' in __import__('tensorflow_datasets').list_builders())\n"
              "missing = [name for name in emnist_idx.__all__ if getattr(emnist_idx, name) is None]\n"
              "print('missing:', missing, 'dir:', set(emnist_idx.__all__) <= set(dir(emnist_idx)))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == ["heavy after import: []", "builders: True",
                                        "missing: [] dir: True"]


@pytest.mark.slow
def test_mypy_is_clean_on_the_package(tmp_path: Path) -> None:
    done = _mypy(tmp_path, "emnist_idx")
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-2000:]


@pytest.mark.slow
def test_mypy_sees_the_lazy_signatures(tmp_path: Path) -> None:
    user = tmp_path / "user.py"
    user.write_text(USER_CODE)
    done = _mypy(tmp_path, str(user))
    errors = [line.split(": error: ", 1)[1] for line in done.stdout.splitlines() if ": error: " in line]
    assert len(errors) == 3, done.stdout
    assert errors[0].startswith('Incompatible types in assignment (expression has type '
                                '"tuple[tuple[ndarray')
    assert errors[1].startswith('Argument "batch_size" to "load" has incompatible type "str"')
    assert errors[2].startswith('Unexpected keyword argument "colums" for "show_examples"')
