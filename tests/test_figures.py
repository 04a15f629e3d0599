"""The docs' performance figures are exactly what benchmarks/figures.py makes of the committed runs."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import figures  # noqa: E402

# A measured quantity: a number with a unit or a ratio ("3.2x", "40 MB", "0.5 s", "90%").
FIGURE = re.compile(r"\d[\d,.]*\s?(?:x|%|s|ms|us|MB|GB|examples/s)(?![\w/])")
FENCE = re.compile(r"```.*?```", re.DOTALL)


def _performance_sections() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text().split("\n## Performance\n", 1)[1].split("\n## ", 1)[0]
    return {"README.md": readme, "docs/performance.md": (ROOT / "docs" / "performance.md").read_text()}


def test_every_block_is_what_the_committed_runs_give() -> None:
    reports = figures.measured_reports()
    for page in figures.pages():
        text = page.read_text()
        assert figures.regenerate(text, reports, str(page)) == text, (
            f"{page.relative_to(ROOT)}: stale figures; run `python benchmarks/figures.py`")


def test_readme_and_performance_page_hold_the_generated_blocks() -> None:
    sections = _performance_sections()
    assert {m["name"] for m in figures.BLOCK.finditer(sections["README.md"])} == {"summary"}
    assert {m["name"] for m in figures.BLOCK.finditer(sections["docs/performance.md"])} == {
        "summary", "tables", "beam", "object-storage"}
    for report in figures.of_kind(figures.measured_reports(), "run"):
        assert report["machine"]["git_commit"] in sections["README.md"]


def test_no_figure_outside_the_generated_blocks() -> None:
    for name, section in _performance_sections().items():
        outside = FENCE.sub("", figures.BLOCK.sub("", section))
        assert not FIGURE.findall(outside), f"{name}: figures not generated from the JSON"


def test_a_stale_block_is_rewritten_and_an_unknown_one_refused() -> None:
    reports = figures.measured_reports()
    stale = "before\n<!-- figures:summary -->\n| old | 99x |\n<!-- /figures:summary -->\nafter\n"
    fresh = figures.regenerate(stale, reports)
    assert "99x" not in fresh and fresh.startswith("before\n") and fresh.endswith("after\n")
    assert figures.summary(reports) in fresh
    with pytest.raises(ValueError, match="'speed'"):
        figures.regenerate("<!-- figures:speed -->\n<!-- /figures:speed -->\n", reports, "page.md")


@pytest.mark.parametrize("kind, render, figure", [
    ("beam", figures.beam, lambda report: f"{report['beam_median_s']:.1f} s"),
    ("object_storage", figures.object_storage,
     lambda report: f"{report['load_numpy_emulator_median_s']:.2f} s"),
])
def test_each_benchmark_block_holds_each_of_its_runs(kind, render, figure) -> None:
    runs = figures.of_kind(figures.measured_reports(), kind)
    assert runs, f"expected benchmarks/measured/ JSON files of {kind} (its --json)"
    block = render(runs)
    for report in runs:
        assert figure(report) in block
        assert report["machine"]["git_commit"] in block


def test_the_summary_holds_run_py_s_reports_only() -> None:
    reports = figures.measured_reports()
    assert figures.summary(reports) == figures.summary(figures.of_kind(reports, "run"))


def test_each_run_says_its_commit_and_load() -> None:
    report = figures.measured_reports()[0]
    busy = dict(report, load_avg_start=f"{report['machine']['cpu_count']:.2f} 0 0")
    idle = dict(report, load_avg_start="0.00 0 0")
    assert "other jobs were running" in figures._conditions(busy)
    assert "otherwise idle" in figures._conditions(idle)
    assert report["machine"]["git_commit"] in figures._conditions(report)
