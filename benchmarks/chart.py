"""The benchmark chart: examples/s of each row, per config, on a log scale, floors included.

    python benchmarks/chart.py balanced.json byclass.json -o docs/performance.png

Draws with Pillow (a dependency of emnist_idx already), so it needs no plotting library.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

# (group, row key, bar label, colour)
BARS = [
    ("prepare", "prepare_emnist", "TFDS emnist", "#9e9e9e"),
    ("prepare", "prepare_emnist_idx", "emnist_idx", "#1f77b4"),
    ("prepare", "floor_prepare", "floor: gunzip+write+fsync", "#2ca02c"),
    ("epoch 1", "epoch1_emnist", "TFDS emnist", "#9e9e9e"),
    ("epoch 1", "epoch1_emnist_idx", "emnist_idx (incl. load())", "#1f77b4"),
    ("epoch 1", "floor_raw_read", "floor: raw read of the shards", "#2ca02c"),
    ("later epochs", "epoch2_emnist", "TFDS emnist epoch 2", "#9e9e9e"),
    ("later epochs", "numpy_in_memory", "in-memory numpy", "#ff7f0e"),
    ("later epochs", "cached_emnist_idx", "emnist_idx cached", "#1f77b4"),
    ("later epochs", "ceiling_pipeline", "ceiling: ready batches", "#2ca02c"),
    ("consumed in-graph (Dataset.reduce)", "epoch1_emnist_graph", "TFDS emnist epoch 1", "#9e9e9e"),
    ("consumed in-graph (Dataset.reduce)", "epoch1_emnist_idx_graph", "emnist_idx epoch 1",
     "#1f77b4"),
    ("consumed in-graph (Dataset.reduce)", "numpy_in_memory_graph", "in-memory numpy", "#ff7f0e"),
    ("consumed in-graph (Dataset.reduce)", "cached_emnist_idx_graph", "emnist_idx cached",
     "#1f77b4"),
    ("consumed in-graph (Dataset.reduce)", "ceiling_pipeline_graph", "ceiling: ready batches",
     "#2ca02c"),
]
WIDTH, BAR_HEIGHT, GAP, LABEL_WIDTH, MARGIN = 1200, 20, 6, 250, 16


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _bars(report: dict) -> list[tuple[str, str, str, float, str]]:
    """(group, label, colour, examples/s, value text) of each bar the report has figures for."""
    rows, bars = report["rows"], []
    for group, key, label, colour in BARS:
        row = rows.get(key, {})
        if "examples_per_s" not in row:
            continue
        text = f"{row['examples_per_s']:,.0f}"
        vs_floor = row.get("ratios", {}).get("vs_floor")
        if vs_floor is not None:
            text += f"  ({vs_floor:.2f}x the floor's time)"
        bars.append((group, label, colour, row["examples_per_s"], text))
    return bars


def draw_chart(reports: list[dict], path: Path) -> None:
    """Writes a PNG with one panel per report (config)."""
    font, bold = _font(13), _font(15)
    panels = [(report, _bars(report)) for report in reports]
    values = [bar[3] for _, bars in panels for bar in bars]
    if not values:
        raise ValueError("no row with examples/s to draw")
    low = 10 ** math.floor(math.log10(min(values)))
    high = 10 ** math.ceil(math.log10(max(values)))
    plot_left, plot_right = MARGIN + LABEL_WIDTH, WIDTH - MARGIN - 260

    def x_of(value: float) -> float:
        return plot_left + (plot_right - plot_left) * math.log10(value / low) / math.log10(high / low)

    height = MARGIN
    for _, bars in panels:
        groups = len({group for group, *_ in bars})
        height += 30 + len(bars) * (BAR_HEIGHT + GAP) + groups * 18 + 30
    height += 20
    image = Image.new("RGB", (WIDTH, height), "white")
    draw = ImageDraw.Draw(image)
    y = MARGIN
    for report, bars in panels:
        machine = report["machine"]
        title = (f"EMNIST {report['config']}: examples/s (log scale), {machine['cpu_count']} CPUs,"
                 f" {machine['date'][:10]}, load avg {report.get('load_avg_start')}")
        draw.text((MARGIN, y), title, fill="black", font=bold)
        y += 30
        bottom = y + len({bar[0] for bar in bars}) * 18 + len(bars) * (BAR_HEIGHT + GAP)
        decade = low
        while decade <= high:
            x = x_of(decade)
            draw.line([x, y, x, bottom], fill="#d0d0d0")
            draw.text((x - 12, bottom + 2), f"1e{round(math.log10(decade))}", fill="#606060", font=font)
            decade *= 10
        group = None
        for bar_group, label, colour, value, text in bars:
            if bar_group != group:
                group = bar_group
                draw.text((MARGIN, y), group, fill="black", font=bold)
                y += 18
            draw.text((MARGIN + 14, y + 3), label, fill="black", font=font)
            draw.rectangle([plot_left, y, x_of(value), y + BAR_HEIGHT], fill=colour)
            draw.text((x_of(value) + 6, y + 3), text, fill="black", font=font)
            y += BAR_HEIGHT + GAP
        y += 30
    image.save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", help="JSON files written by run.py --json"
                        " (others in benchmarks/measured/ are skipped)")
    parser.add_argument("-o", "--output", default="docs/performance.png")
    args = parser.parse_args(argv)
    reports = [json.loads(Path(name).read_text()) for name in args.reports]
    # run.py's reports; the other benchmarks' (with a "benchmark" key) are not charted
    draw_chart([report for report in reports if "benchmark" not in report], Path(args.output))
    print(f"chart written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
