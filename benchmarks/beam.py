"""Bulk prepare against the Beam prepare (DirectRunner, 2 workers, multi_processing).

    python benchmarks/beam.py [--config byclass] [--repeats 3] [--scale 1.0]
                              [--cache-dir benchmarks/.cache] [--json out.json]

Generates (once, cached) a synthetic bundle for the config (full size; ``--scale`` for a
fraction), then prepares it
``--repeats`` times each way, alternating, every prepare in a fresh process. Reports the median
seconds of each, and for Beam the peak RSS of each SDK worker process above a worker's baseline
(a fresh process that imported Beam's worker and emnist_idx, which is what a worker holds before
its first task).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_CACHE = HERE / ".cache"
_BEAM_ARGS = ["--runner=DirectRunner", "--direct_num_workers=2",
              "--direct_running_mode=multi_processing"]
_WORKER_IMPORTS = "import apache_beam.runners.worker.sdk_worker_main, emnist_idx"


def scaled_counts(config: str, scale: float) -> tuple[int, int]:
    """``scale`` times NIST's (train, test) counts of ``config``."""
    from emnist_idx import configs

    train, test = (max(1, round(count * scale)) for count in configs.NIST_COUNTS[config])
    return train, test


def bundle_for(config: str, cache_dir: Path, scale: float = 1.0) -> Path:
    """The synthetic bundle of ``config`` (loose .gz files) with ``scale`` times NIST's counts,
    written once."""
    from emnist_idx import synthetic

    directory = cache_dir / (f"bundle-{config}" if scale == 1 else f"bundle-{config}-x{scale:g}")
    if not (directory / "gzip").is_dir():
        synthetic.write_bundle(directory, {config: scaled_counts(config, scale)}, make_zip=False)
    return directory


def prepare(mode: str, config: str, bundle: Path, data_dir: Path) -> dict:
    """One prepare in this process: its seconds, and the peak RSS of each Beam SDK worker."""
    import psutil
    import tensorflow_datasets as tfds

    import emnist_idx  # noqa: F401 - registers the builder

    options = None
    if mode == "beam":
        from apache_beam.options.pipeline_options import PipelineOptions
        options = PipelineOptions(_BEAM_ARGS)
    peaks: dict[int, int] = {}
    stop = threading.Event()

    def poll() -> None:
        me = psutil.Process()
        while not stop.is_set():
            for child in me.children(recursive=True):
                try:
                    command = child.cmdline()  # Beam's SDK workers (not the shells that start them)
                    if child.name().startswith("python") and "sdk_worker_main" in " ".join(command):
                        peaks[child.pid] = max(peaks.get(child.pid, 0), child.memory_info().rss)
                except psutil.Error:
                    pass
            stop.wait(0.05)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    builder = tfds.builder(f"emnist_idx/{config}", data_dir=str(data_dir))
    start = time.perf_counter()
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(bundle), beam_options=options))
    seconds = time.perf_counter() - start
    stop.set()
    poller.join()
    return {"mode": mode, "seconds": seconds, "worker_peak_rss": sorted(peaks.values())}


def run_child(mode: str, config: str, bundle: Path, data_dir: Path) -> dict:
    """``prepare`` in a fresh process (``mode``: "bulk" or "beam")."""
    args = [mode, config, str(bundle), str(data_dir)]
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True,
                          text=True, check=False, cwd=REPO)
    if done.returncode:
        raise RuntimeError(f"child {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def worker_baseline() -> int:
    """RSS of a fresh process that imported what a Beam worker imports before its first task."""
    import psutil

    script = f"{_WORKER_IMPORTS}\nimport psutil; print(psutil.Process().memory_info().rss)"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, cwd=REPO)
    del psutil
    return int(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="byclass")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of NIST's counts")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", nargs=4, metavar=("MODE", "CONFIG", "BUNDLE", "DATA_DIR"))
    args = parser.parse_args()
    if args.child:
        mode, config, bundle, data_dir = args.child
        print(json.dumps(prepare(mode, config, Path(bundle), Path(data_dir))))
        return
    sys.path.insert(0, str(HERE))
    import run  # machine facts and load, as in run.py's reports

    bundle = bundle_for(args.config, args.cache_dir, args.scale)
    load_start = run.load_average()
    runs: dict[str, list[dict]] = {"bulk": [], "beam": []}
    for _ in range(args.repeats):
        for mode in runs:
            data_dir = Path(tempfile.mkdtemp(prefix=f"beam-bench-{mode}-"))
            try:
                runs[mode].append(run_child(mode, args.config, bundle, data_dir))
            finally:
                shutil.rmtree(data_dir, ignore_errors=True)
    baseline = worker_baseline()
    worker_growth = [peak - baseline for run in runs["beam"] for peak in run["worker_peak_rss"]]
    report = {
        "benchmark": "beam",
        "machine": run.machine_facts(),
        "load_avg_start": load_start,
        "load_avg_end": run.load_average(),
        "config": args.config,
        "scale": args.scale,
        "counts": scaled_counts(args.config, args.scale),
        "repeats": args.repeats,
        "bulk_seconds": [run["seconds"] for run in runs["bulk"]],
        "beam_seconds": [run["seconds"] for run in runs["beam"]],
        "bulk_median_s": statistics.median(run["seconds"] for run in runs["bulk"]),
        "beam_median_s": statistics.median(run["seconds"] for run in runs["beam"]),
        "worker_baseline_mb": baseline / 2**20,
        "worker_peak_growth_mb": [growth / 2**20 for growth in worker_growth],
    }
    report["beam_minus_bulk_s"] = report["beam_median_s"] - report["bulk_median_s"]
    print(f"{args.config}: bulk median {report['bulk_median_s']:.1f} s, Beam (DirectRunner, 2 "
          f"workers, multi_processing) median {report['beam_median_s']:.1f} s "
          f"(+{report['beam_minus_bulk_s']:.1f} s); worker peak RSS above a worker's baseline "
          f"({report['worker_baseline_mb']:.0f} MB): max "
          f"{max(report['worker_peak_growth_mb'], default=0):.0f} MB")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
