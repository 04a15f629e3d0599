"""The package as a user gets it: a wheel installed outside the repository, run in an empty folder."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # builds and installs the wheel

REPO = Path(__file__).resolve().parents[1]
PACKAGE_FILES = ("README.md", "CITATIONS.bib", "TAGS.txt", "checksums.tsv", "py.typed")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of the sources, installed (no dependencies) into a folder."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "emnist_idx", source / "emnist_idx",
                    ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # Offline with the environment's setuptools and wheel when it has them; else pip's isolated build.
    isolation = ["--no-build-isolation"] if all(
        importlib.util.find_spec(name) for name in ("setuptools", "wheel")) else []
    built = subprocess.run([*pip, "wheel", "--no-deps", *isolation, "-w", root / "dist", source],
                           capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (root / "dist").glob("emnist_idx-*.whl")
    installed = subprocess.run([*pip, "install", "--no-deps", "--target", root / "site", wheel],
                               capture_output=True, text=True, timeout=300, check=False)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return root / "site"


def _run(installed: Path, folder: Path, code: str, *args: str) -> subprocess.CompletedProcess:
    """Python without site's .pth files (so no editable install of the checkout), the wheel first,
    then the environment's dependencies."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(installed), sysconfig.get_path("purelib"),
                                                       sysconfig.get_path("platlib")]))
    return subprocess.run([sys.executable, "-S", "-c", code, *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def test_the_wheel_holds_the_builder_files(installed: Path) -> None:
    for name in PACKAGE_FILES:
        assert (installed / "emnist_idx" / name).is_file(), name


def test_demo_runs_from_the_wheel_in_an_empty_folder(installed: Path, tmp_path: Path) -> None:
    code = ("import sys, emnist_idx\n"
            "print('package:', emnist_idx.__file__, flush=True)\n"
            "from emnist_idx.commands.cli import main\n"
            "sys.exit(main())\n")
    done = _run(installed, tmp_path, code, "demo", "--config", "digits", "--epochs", "1")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert f"package: {installed / 'emnist_idx' / '__init__.py'}" in done.stdout
    assert re.search(r"No ./dummy_data in .*: generating the same synthetic digits files", done.stdout)
    assert re.search(r"Test accuracy: [\d.]+% on 20 test images", done.stdout), done.stdout
    assert (tmp_path / "demo.png").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["demo.png"]
