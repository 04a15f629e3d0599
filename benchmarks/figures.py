"""Writes the measured figures into the docs: every block between ``<!-- figures:NAME -->`` and
``<!-- /figures:NAME -->`` in README.md and docs/*.md, generated from ``benchmarks/measured/*.json``:
``run.py --json`` output (``<config>.json``, one per config) and the other benchmarks' (their
``"benchmark"`` names which: ``beam.py`` writes ``beam-<config>.json``, ``object_storage.py``
``object-storage-<config>.json``).

    python benchmarks/figures.py           # rewrite the blocks
    python benchmarks/figures.py --check   # exit 1 if a block differs from what the JSON gives

Blocks: ``summary`` (one table, a column per config, and the conditions of each run), ``tables``
(``run.py``'s full table of each run), ``beam`` (bulk against Beam prepares) and
``object-storage`` (local disk against a gs:// emulator). tests/test_figures.py fails when a block is stale.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MEASURED = HERE / "measured"
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import run  # noqa: E402 - the full table's format
from emnist_idx.configs import CONFIGS  # noqa: E402

BLOCK = re.compile(r"(?P<start><!-- figures:(?P<name>[\w-]+) -->\n)(?P<body>.*?)"
                   r"(?P<end><!-- /figures:(?P=name) -->)", re.DOTALL)
# A 1-minute load average at or above this share of the CPUs means other jobs were running.
BUSY_LOAD_PER_CPU = 0.5


def pages() -> list[Path]:
    """The Markdown files that may hold blocks (the docs tests run the same set)."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def measured_reports(folder: Path = MEASURED) -> list[dict]:
    """The committed reports: run.py's first, then the other benchmarks', each in the configs'
    order."""
    reports = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    if not of_kind(reports, "run"):
        raise FileNotFoundError(f"{folder}: expected run.py --json files (*.json), found none")
    return sorted(reports, key=lambda report: (_kind(report) != "run", _kind(report),
                                               CONFIGS.index(report["config"])))


def _kind(report: dict) -> str:
    return report.get("benchmark", "run")


def of_kind(reports: list[dict], kind: str) -> list[dict]:
    """The reports of one benchmark: ``run`` (run.py), ``beam``, ``object_storage``."""
    return [report for report in reports if _kind(report) == kind]


def _ratio(row: dict, name: str, spec: str = ".1f") -> str:
    value = row.get("ratios", {}).get(name)
    return "n/a" if value is None else f"{value:{spec}}x"


def _prepare_speedup(rows: dict) -> str:
    ours, theirs = rows["prepare_emnist_idx"], rows["prepare_emnist"]
    return (f"**{_ratio(ours, 'vs_tfds', '.0f')}** ({ours['seconds']:.2f} s against"
            f" {theirs['seconds']:.1f} s)")


def _prepare_memory(rows: dict) -> str:
    ours, theirs = rows["prepare_emnist_idx"], rows["prepare_emnist"]
    return f"{ours['peak_rss_growth_mb']:,.0f} MB (TFDS: {theirs['peak_rss_growth_mb']:,.0f} MB)"


def _both_ways(key: str, ratio: str, spec: str) -> Callable[[dict], str]:
    """A row's ratio consumed in a Python loop / in-graph."""
    return lambda rows: (f"**{_ratio(rows[key], ratio, spec)}** /"
                         f" **{_ratio(rows[key + '_graph'], ratio, spec)}**")


def _cached_speed(rows: dict) -> str:
    return (f"{rows['cached_emnist_idx']['examples_per_s']:,.0f} /"
            f" {rows['cached_emnist_idx_graph']['examples_per_s']:,.0f}")


SUMMARY_ROWS: list[tuple[str, Callable[[dict], str]]] = [
    ("prepare: speedup over TFDS's `emnist`", _prepare_speedup),
    ("prepare: time over the gunzip+write+fsync floor's",
     lambda rows: _ratio(rows["prepare_emnist_idx"], "vs_floor", ".2f")),
    ("prepare: peak memory growth", _prepare_memory),
    ("epoch 1 incl. `load()`: speedup over TFDS's epoch 1, Python loop / in-graph",
     _both_ways("epoch1_emnist_idx", "vs_tfds", ".1f")),
    ("later epochs: speedup over the in-memory numpy pipeline, Python loop / in-graph",
     _both_ways("cached_emnist_idx", "vs_numpy", ".2f")),
    ("later epochs: examples/s, Python loop / in-graph", _cached_speed),
]


def _conditions(report: dict) -> str:
    """When, where and under what load a run was measured."""
    machine = report["machine"]
    load = report.get("load_avg_start") or ""
    busy = load and float(load.split()[0]) >= BUSY_LOAD_PER_CPU * machine["cpu_count"]
    state = ("other jobs were running" if busy else "the machine was otherwise idle") if load else ""
    return (f"{report['config']}: {machine['date'][:16].replace('T', ' ')} UTC, commit"
            f" {machine.get('git_commit') or 'unknown'}, {machine['cpu_count']} CPUs"
            f" ({machine['cpu_model']}), GPU: {', '.join(machine['gpus']) or 'none'}, TF"
            f" {machine['tensorflow']}; 1-minute load average {load.split()[0] if load else 'n/a'}"
            f" at the start{': ' + state if state else ''}")


def summary(reports: list[dict]) -> str:
    reports = of_kind(reports, "run")
    header = ["", *(f"{report['config']} ({report['counts'][0]:,} train)" for report in reports)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, cell in SUMMARY_ROWS:
        lines.append("| " + " | ".join([label, *(cell(report["rows"]) for report in reports)]) + " |")
    met = [f"{sum(t['passed'] for t in report['targets'])} of {len(report['targets'])}"
           for report in reports]
    lines.append("| " + " | ".join(["issue #13's targets met", *met]) + " |")
    lines += ["", "One run each, with `benchmarks/run.py` on a synthetic bundle of NIST's full size:", ""]
    lines += [f"- {_conditions(report)}." for report in reports]
    return "\n".join(lines)


def tables(reports: list[dict]) -> str:
    return "\n\n".join(f"```text\n{run.format_table(report).rstrip()}\n```"
                       for report in of_kind(reports, "run"))


def beam(reports: list[dict]) -> str:
    """``beam.py``'s runs: bulk against Beam prepare times and the Beam workers' memory."""
    lines = ["| config (train + test examples) | bulk prepare | Beam prepare | Beam minus bulk |"
             " Beam worker peak RSS above a worker's baseline |", "|---|---|---|---|---|"]
    for report in of_kind(reports, "beam"):
        train, test = report["counts"]
        lines.append(
            f"| {report['config']} ({train:,} + {test:,}) | {report['bulk_median_s']:.1f} s |"
            f" {report['beam_median_s']:.1f} s | +{report['beam_minus_bulk_s']:.1f} s |"
            f" {max(report['worker_peak_growth_mb']):.0f} MB (baseline"
            f" {report['worker_baseline_mb']:.0f} MB) |")
    lines += ["", "Medians of `--repeats` prepares each way, alternating, each in a fresh process"
              " (`python benchmarks/beam.py --config CONFIG --repeats N`), on a synthetic bundle;"
              " Beam on DirectRunner with 2 workers in `multi_processing` mode:", ""]
    lines += [f"- {_conditions(report)}; {report['repeats']} repeats."
              for report in of_kind(reports, "beam")]
    return "\n".join(lines)


def object_storage(reports: list[dict]) -> str:
    """``object_storage.py``'s runs: local disk against gs:// on gcp-storage-emulator."""
    lines = ["| config (train + test examples) | task | local disk | gs:// (emulator, gcsfs via"
             " epath) | ratio |", "|---|---|---|---|---|"]
    tasks = {"prepare": "prepare (every split)", "load_numpy": "`load_numpy` of train"}
    for report in of_kind(reports, "object_storage"):
        train, test = report["counts"]
        for task, label in tasks.items():
            lines.append(f"| {report['config']} ({train:,} + {test:,}) | {label} |"
                         f" {report[f'{task}_local_median_s']:.2f} s |"
                         f" {report[f'{task}_emulator_median_s']:.2f} s |"
                         f" {report[f'{task}_emulator_over_local']:.1f}x |")
    lines += ["", "Medians of `--repeats` runs each way, alternating, each in a fresh process"
              " (`python benchmarks/object_storage.py --config CONFIG --repeats N`), on a"
              " synthetic bundle; the emulator keeps its objects in memory on 127.0.0.1, so this"
              " measures our reads and gcsfs's requests, not a network:", ""]
    lines += [f"- {_conditions(report)}; {report['repeats']} repeats."
              for report in of_kind(reports, "object_storage")]
    return "\n".join(lines)


RENDER: dict[str, Callable[[list[dict]], str]] = {"summary": summary, "tables": tables,
                                                  "beam": beam, "object-storage": object_storage}


def regenerate(text: str, reports: list[dict], source: str = "<text>") -> str:
    """``text`` with every block rewritten from ``reports``."""
    def rendered(match: re.Match) -> str:
        if match["name"] not in RENDER:
            raise ValueError(f"{source}: figures block {match['name']!r}: expected one of"
                             f" {sorted(RENDER)}")
        return f"{match['start']}{RENDER[match['name']](reports)}\n{match['end']}"
    return BLOCK.sub(rendered, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report stale blocks")
    parser.add_argument("--measured", type=Path, default=MEASURED, help="folder of run.py JSON files")
    args = parser.parse_args(argv)
    reports = measured_reports(args.measured)
    stale = []
    for page in pages():
        text = page.read_text()
        new = regenerate(text, reports, str(page))
        if new != text:
            stale.append(page)
            if not args.check:
                page.write_text(new)
    verb = "stale" if args.check else "rewritten"
    print("\n".join(f"{verb}: {page.relative_to(ROOT)}" for page in stale) or "every block is current")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
