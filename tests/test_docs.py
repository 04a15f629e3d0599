"""Every ```python and ```bash fence of README.md and docs/*.md runs, as a new user would run it.

Tool: Sybil (maintained, parses Markdown fences and skip directives, and keeps one namespace per
page, so a page's fences run in order as one script; pytest-markdown-docs gives each fence its own
namespace and does not run shell fences). Each page runs in a child process (tests/docs_runner.py):
a fresh temporary working directory holding a copy of ``dummy_data/``, ``HOME`` an empty temporary
folder (so TFDS's default data dir is under it), ``TFDS_DATA_DIR`` unset, this virtualenv's bin
first on ``PATH``. New pages under docs/ are picked up without a change here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs_runner import ROOT, page_sybil

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN_LANGUAGES = {"python", "bash"}
NOT_RUN_LANGUAGES = {"text"}
MAX_SKIPPED = 3
SKIP_REASONS = ("network", "GPU")
FENCE = re.compile(r"^(?P<indent> *)```(?P<language>\S*)", re.MULTILINE)
SKIP = re.compile(r"<!--\s*skip:\s*(?P<action>\w+)\s*(?P<reason>[^>]*?)\s*-->")


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _fence_languages(page: Path) -> list[str]:
    """The language of every opening fence (closing fences are bare)."""
    languages, opening = [], True
    for match in FENCE.finditer(page.read_text()):
        if opening:
            languages.append(match["language"])
        opening = not opening
    return languages


def test_every_fence_says_whether_it_runs() -> None:
    """A fence in another language (```sh, ```console, bare) would silently escape the tests."""
    for page in PAGES:
        languages = _fence_languages(page)
        unknown = [language for language in languages
                   if language not in RUN_LANGUAGES | NOT_RUN_LANGUAGES]
        assert not unknown, (f"{_page_id(page)}: fences in {unknown}; expected one of"
                             f" {sorted(RUN_LANGUAGES | NOT_RUN_LANGUAGES)}")


def test_few_blocks_are_skipped_each_for_the_network_or_a_gpu() -> None:
    skips = [(page, match) for page in PAGES for match in SKIP.finditer(page.read_text())]
    assert len(skips) <= MAX_SKIPPED, f"{len(skips)} skipped blocks, expected at most {MAX_SKIPPED}"
    for page, match in skips:
        assert match["action"] == "next", f"{_page_id(page)}: skip {match['action']}: expected next"
        assert any(reason in match["reason"] for reason in SKIP_REASONS), (
            f"{_page_id(page)}: skip reason {match['reason']!r} names neither of {SKIP_REASONS}")


def test_sybil_finds_every_runnable_fence() -> None:
    """The runner's parsers see as many examples as the pages have python and bash fences."""
    for page in PAGES:
        runnable = sum(language in RUN_LANGUAGES for language in _fence_languages(page))
        skips = len(SKIP.findall(page.read_text()))
        examples = list(page_sybil().parse(page))
        assert len(examples) == runnable + skips, (
            f"{_page_id(page)}: Sybil found {len(examples)} examples, expected {runnable} fences"
            f" + {skips} skip directives")


def reader_environment(home: Path) -> dict[str, str]:
    """A new user's environment: an empty HOME, TFDS's default data dir, this venv first on PATH."""
    env = {name: value for name, value in os.environ.items() if name != "TFDS_DATA_DIR"}
    env["HOME"] = str(home)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_page_runs_as_written(page: Path, tmp_path: Path) -> None:
    workdir, home = tmp_path / "work", tmp_path / "home"
    home.mkdir()
    shutil.copytree(ROOT / "dummy_data", workdir / "dummy_data")
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "docs_runner.py"), str(page)],
                          cwd=workdir, env=reader_environment(home), capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, f"{_page_id(page)}:\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}"


def test_every_docs_page_is_in_the_site_nav() -> None:
    nav = set(re.findall(r"^\s*- [^:\n]+: (\S+\.md)$", (ROOT / "mkdocs.yml").read_text(), re.MULTILINE))
    pages = {page.name for page in PAGES if page.parent == ROOT / "docs"}
    assert pages <= nav, f"docs pages missing from mkdocs.yml's nav: {sorted(pages - nav)}"
    assert "reference.md" in nav and "index.md" in nav
