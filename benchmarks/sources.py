"""Random access without tf.data: ``emnist_idx.Source`` beside ``tfds.data_source`` and torchvision.

    python benchmarks/sources.py --config balanced [--repeats 5] [--json sources.json]

On a synthetic bundle of the config's real size (``bundle.ensure_bundle``, cached), prepared in a
fresh data dir, every row is the median of ``--repeats`` passes, all in this one process:

- random single reads: ``source[i]`` for ``--reads`` (100,000) random indices; their floor, a bare
  loop of mmap slice + CRC32C on the same indices; ``tfds.data_source``'s dicts, for a tenth of
  them (it is that much slower);
- random batches: ``source[indices]``, 128 random indices a call (``tfds.data_source``:
  ``__getitems__``);
- whole split: ``source[:]`` against ``load_numpy`` (the ratio is the issue's 1.2x target);
- torch items: ``emnist_idx.torch.EMNIST[i]`` (a PIL image and an int) against torchvision's
  ``EMNIST.__getitem__`` on the same images held in memory as a uint8 tensor (torchvision's own
  code, ``Image.fromarray(data[i].numpy(), mode="L")``, rerun here: PyPI's torchvision wheels need
  CUDA torch and do not import beside torch's CPU wheel). Skipped without torch.

``tfds.data_source`` first copies the TFRecord shards to array_record (timed as its own row).

With ``--gs``, the prepared folder is also copied to a ``gcp-storage-emulator`` on 127.0.0.1
(``tests/gcs_emulator.py``) and ``Source`` on ``gs://`` is timed in a child process that reaches it
through etils.epath and gcsfs (no TensorFlow): random single reads with an empty block cache (the
first pass, every block fetched) and warm (the median of the next ``--repeats``), random batches
and the whole split.
"""

from __future__ import annotations

import argparse
import json
import mmap
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import google_crc32c
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bundle as bundle_lib  # noqa: E402

import emnist_idx  # noqa: E402

BATCH = 128


def median_rate(run: Callable[[], int], repeats: int) -> dict:
    """Examples/s of ``run`` (which returns its example count): median of ``repeats`` passes."""
    seconds, count = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        count = run()
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    return {"examples": count, "median_s": median, "examples_per_s": count / median,
            "passes_s": seconds}


def singles(source, indices: list[int]) -> Callable[[], int]:
    def run() -> int:
        for index in indices:
            source[index]
        return len(indices)
    return run


def mmap_crc_floor(data_dir: str, config: str, examples: int, indices: list[int]
                   ) -> Callable[[], int]:
    """The floor of a checked random read: slice a frame out of the memory-mapped train shard and
    compute its record's CRC32C, nothing else (a one-shard train split, as at full size)."""
    (shard,) = Path(data_dir).glob(f"emnist_idx/{config}/*/emnist_idx-train.tfrecord-*")
    with open(shard, "rb") as stream:
        mapped = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
    size = len(mapped) // examples

    def run() -> int:
        for index in indices:
            google_crc32c.value(mapped[index * size + 12:(index + 1) * size - 4])
        return len(indices)
    return run


def batches(read: Callable[[list[int]], object], indices: list[int]) -> Callable[[], int]:
    def run() -> int:
        for start in range(0, len(indices), BATCH):
            read(indices[start:start + BATCH])
        return len(indices)
    return run


def torch_rows(config: str, data_dir: str, indices: list[int], repeats: int) -> dict:
    try:
        import torch
        from PIL import Image
    except ImportError:
        return {}
    from emnist_idx.torch import EMNIST

    ours = EMNIST(root=data_dir, split=config)
    images, labels = ours.source[:]
    # torchvision's EMNIST holds its split as tensors and makes each item like this:
    data, targets = torch.from_numpy(images.transpose(0, 2, 1).copy()), torch.from_numpy(labels)

    def torchvision_item(index: int) -> tuple:
        return Image.fromarray(data[index].numpy(), mode="L"), int(targets[index])

    return {"torch_EMNIST_item": median_rate(singles(ours, indices), repeats),
            "torchvision_EMNIST_item_in_memory": median_rate(
                lambda: sum(1 for index in indices if torchvision_item(index)), repeats)}


_GS_READS = """
import json, statistics, sys, time
import numpy as np
import emnist_idx
sys.path.insert(0, {benchmarks!r})
from sources import batches, median_rate, singles
start = time.perf_counter()
source = emnist_idx.Source({config!r}, "train", {data_dir!r})
opened_s = time.perf_counter() - start
indices = np.random.default_rng(0).integers(0, len(source), {reads}).tolist()
rows = {{"gs_source_open_s": opened_s,
         "gs_source_random_single_cold": median_rate(singles(source, indices), 1),
         "gs_source_random_single_warm": median_rate(singles(source, indices), {repeats}),
         "gs_source_random_batches_warm": median_rate(batches(source.__getitem__, indices),
                                                       {repeats}),
         "gs_source_whole_split": median_rate(lambda: len(source[:][1]), {repeats}),
         "gs_cached_bytes": source._remote.cached_bytes,
         "tensorflow_imported": "tensorflow" in sys.modules}}
print(json.dumps(rows))
"""


def gs_rows(config: str, data_dir: str, reads: int, repeats: int) -> dict:
    """``Source`` on a copy of ``data_dir`` in a local GCS emulator (see the module doc)."""
    repo = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(repo))
    from tests.gcs_emulator import BUCKET, run_in_child, running_emulator

    remote = f"gs://{BUCKET}/tfds"
    upload = (f"from pathlib import Path\nfrom etils import epath\n"
              f"for path in Path({data_dir!r}).rglob('*'):\n"
              f"    if path.is_file() and '.lock' not in path.name:\n"
              f"        target = epath.Path({remote!r}) / path.relative_to({data_dir!r})\n"
              f"        target.write_bytes(path.read_bytes())\n")
    with running_emulator() as port:
        for code in (upload, _GS_READS.format(benchmarks=str(Path(__file__).resolve().parent),
                                              config=config, data_dir=remote, reads=reads,
                                              repeats=repeats)):
            done = run_in_child(code, port)
            if done.returncode:
                raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def benchmark(args: argparse.Namespace) -> dict:
    counts = bundle_lib.scaled_counts(args.config, args.scale)
    bundle, _ = bundle_lib.ensure_bundle(Path(args.cache_dir).resolve(), args.config, counts)
    data_dir = tempfile.mkdtemp(prefix="emnist-sources-", dir=args.tmp_dir)
    start = time.perf_counter()
    emnist_idx.Source(args.config, "train", data_dir, download=True, manual_dir=bundle / "gzip")
    rows: dict = {"prepare_s": time.perf_counter() - start}
    source = emnist_idx.Source(args.config, "train", data_dir)
    rng = np.random.default_rng(0)
    indices = rng.integers(0, len(source), args.reads).tolist()
    rows["source_random_single"] = median_rate(singles(source, indices), args.repeats)
    rows["floor_mmap_crc_single"] = median_rate(
        mmap_crc_floor(data_dir, args.config, len(source), indices), args.repeats)
    rows["source_random_batches"] = median_rate(batches(source.__getitem__, indices),
                                                args.repeats)
    rows["source_whole_split"] = median_rate(lambda: len(source[:][1]), args.repeats)
    rows["load_numpy_whole_split"] = median_rate(
        lambda: len(emnist_idx.load_numpy(args.config, "train", data_dir=data_dir)[1]),
        args.repeats)
    import tensorflow_datasets as tfds

    start = time.perf_counter()
    data_source = tfds.data_source(f"emnist_idx/{args.config}", split="train", data_dir=data_dir)
    rows["data_source_array_record_copy_s"] = time.perf_counter() - start
    few = indices[:max(1, len(indices) // 10)]  # a tenth: its random reads take far longer
    rows["data_source_random_single"] = median_rate(singles(data_source, few), args.repeats)
    rows["data_source_random_batches"] = median_rate(batches(data_source.__getitems__, few),
                                                     args.repeats)
    rows.update(torch_rows(args.config, data_dir, indices, args.repeats))
    if args.gs:
        rows.update(gs_rows(args.config, data_dir, args.reads, args.repeats))
    rows["ratios"] = {
        "whole_split_source_over_load_numpy":
            rows["source_whole_split"]["median_s"] / rows["load_numpy_whole_split"]["median_s"],
        "random_single_source_over_floor":
            rows["source_random_single"]["examples_per_s"]
            / rows["floor_mmap_crc_single"]["examples_per_s"],
        "random_single_source_over_data_source":
            rows["source_random_single"]["examples_per_s"]
            / rows["data_source_random_single"]["examples_per_s"],
    }
    return {"config": args.config, "train_examples": len(source), "repeats": args.repeats,
            "rows": rows}


def format_table(report: dict) -> str:
    lines = [f"{report['config']} train, {report['train_examples']:,} examples, median of "
             f"{report['repeats']} passes", "| row | examples/s | median s |", "|---|---|---|"]
    for name, row in report["rows"].items():
        if isinstance(row, dict) and "examples_per_s" in row:
            lines.append(f"| {name} | {row['examples_per_s']:,.0f} | {row['median_s']:.3f} |")
    for name, value in report["rows"]["ratios"].items():
        lines.append(f"| {name} | {value:.2f}x | |")
    lines.append(f"| array_record copy for tfds.data_source | | "
                 f"{report['rows']['data_source_array_record_copy_s']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="balanced")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reads", type=int, default=100_000, help="random reads per pass")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="a fraction of the config's real counts, for quick checks")
    parser.add_argument("--json", help="write every figure to this file")
    parser.add_argument("--cache-dir", default=str(Path(__file__).resolve().parent / ".cache"))
    parser.add_argument("--tmp-dir", help="where the throwaway data dir goes")
    parser.add_argument("--gs", action="store_true",
                        help="also time Source on gs:// in a local GCS emulator")
    args = parser.parse_args(argv)
    report = benchmark(args)
    print(format_table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
