"""The median of several ``run.py`` runs: each target and each row's ratios, with every run's value.

    python benchmarks/medians.py run1.json run2.json run3.json

One run on a shared VM is noisy; issue #13 asks for medians of at least three. The runs must be of
the same config and scale. Prints one line per target (PASS/MISS by the median) and one per row.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import run  # noqa: E402 - the rows and their labels


def _median_line(name: str, values: list[float | None], unit: str) -> tuple[str, float | None]:
    known = [value for value in values if value is not None]
    if not known:
        return f"{name}: n/a", None
    middle = statistics.median(known)
    runs = ", ".join("n/a" if value is None else f"{value:.2f}{unit}" for value in values)
    return f"{name}: median {middle:.2f}{unit} ({runs})", middle


def summarize(reports: list[dict]) -> str:
    """Medians over ``reports`` (run.py's JSON) of the same config and counts."""
    first = reports[0]
    for report in reports[1:]:
        if (report["config"], report["counts"]) != (first["config"], first["counts"]):
            raise SystemExit("the runs are of different configs or scales")
    lines = [f"EMNIST {first['config']}: medians of {len(reports)} runs "
             f"({', '.join(report['machine']['date'] for report in reports)})", "", "targets:"]
    for index, target in enumerate(first["targets"]):
        values = [report["targets"][index]["value"] for report in reports]
        unit = "x" if target["unit"] == "x" else " MB"
        line, middle = _median_line(target["name"], values, unit)
        if middle is None:
            verdict = "MISS"
        elif target["kind"] == "speedup":
            verdict = "PASS" if middle >= target["bound"] else "MISS"
        else:  # "vs floor" and "at most": the bound is an upper one
            verdict = "PASS" if middle <= target["bound"] else "MISS"
        lines.append(f"  {verdict}  {line}")
    lines += ["", "rows (examples/s, then each ratio):"]
    for key, label in run.ROWS + [(key, "in-graph " + label) for key, label in run.GRAPH_ROWS]:
        rows = [report["rows"].get(key, {}) for report in reports]
        if not any("examples_per_s" in row for row in rows):
            continue
        speeds = [row.get("examples_per_s") for row in rows]
        lines.append(f"  {_median_line(label, speeds, '')[0]}")
        for ratio in sorted({name for row in rows for name in row.get("ratios", {})}):
            values = [row.get("ratios", {}).get(ratio) for row in rows]
            lines.append(f"      {_median_line(ratio, values, 'x')[0]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="run.py --json files of the same config")
    args = parser.parse_args(argv)
    print(summarize([json.loads(Path(path).read_text()) for path in args.runs]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
