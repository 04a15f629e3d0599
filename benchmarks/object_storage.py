"""Preparing to and reading from a local GCS emulator against local disk.

    python benchmarks/object_storage.py [--config mnist] [--repeats 3] [--scale 1.0]
                                        [--json out.json]

Prepares the config (full-size synthetic files; ``--scale`` for a fraction) on local disk, copies the version folder to a
``gcp-storage-emulator`` on 127.0.0.1 (in memory), then times ``load_numpy`` of the train split
from each, alternating, each read in a fresh process reaching the emulator through epath and gcsfs
(``tests/gcs_emulator.py``). Then times whole prepares (the builder's download_and_prepare from the
local synthetic files) to a fresh local folder and a fresh gs:// folder, alternating, each in a
fresh process. Reports the medians and the ratios.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from tests.gcs_emulator import BUCKET, run_in_child, running_emulator  # noqa: E402

_READ = """
import time, emnist_idx
start = time.perf_counter()
x, y = emnist_idx.load_numpy({config!r}, "train", data_dir={data_dir!r}, download=False)
print(time.perf_counter() - start, len(y))
"""
_PREPARE = """
import time
import tensorflow_datasets as tfds
from emnist_idx.emnist_idx_dataset_builder import Builder
builder = Builder(config={config!r}, data_dir={data_dir!r})
start = time.perf_counter()
builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir={manual!r}))
print(time.perf_counter() - start, 0)
"""
_UPLOAD = """
import time
from pathlib import Path
from etils import epath
start = time.perf_counter()
source, target = Path({source!r}), epath.Path({target!r})
for path in source.rglob("*"):
    if path.is_file():
        (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
        (target / path.relative_to(source)).write_bytes(path.read_bytes())
print(time.perf_counter() - start, 0)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="mnist")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of NIST's counts")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import beam  # the bundle's counts
    import run  # machine facts and load, as in run.py's reports

    work = Path(tempfile.mkdtemp(prefix="object-storage-bench-"))
    load_start = run.load_average()
    try:
        report = {"benchmark": "object_storage", "machine": run.machine_facts(),
                  "load_avg_start": load_start, "repeats": args.repeats, "scale": args.scale,
                  "counts": beam.scaled_counts(args.config, args.scale),
                  **_measure(args, work, beam.scaled_counts(args.config, args.scale))}
        report["load_avg_end"] = run.load_average()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for task in ("load_numpy", "prepare"):
        what = "train load_numpy" if task == "load_numpy" else "prepare (every split)"
        print(f"{args.config} {what}: local median {report[f'{task}_local_median_s']:.2f} s, "
              f"gs:// on gcp-storage-emulator (gcsfs via epath) median "
              f"{report[f'{task}_emulator_median_s']:.2f} s "
              f"({report[f'{task}_emulator_over_local']:.1f}x)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


def _measure(args: argparse.Namespace, work: Path, counts: tuple[int, int]) -> dict:
    from emnist_idx import load_numpy, synthetic

    bundle = synthetic.write_bundle(work / "bundle", {args.config: counts}, make_zip=False)
    local = work / "data"
    load_numpy(args.config, "train", data_dir=str(local), manual_dir=str(bundle))
    remote = f"gs://{BUCKET}/tfds"
    seconds: dict[str, dict[str, list[float]]] = {
        task: {"local": [], "emulator": []} for task in ("load_numpy", "prepare")}
    with running_emulator() as port:
        upload_s = _seconds_in_child(_UPLOAD.format(source=str(local), target=remote), port)
        for repeat in range(args.repeats):
            for where, data_dir in (("local", str(local)), ("emulator", remote)):
                seconds["load_numpy"][where].append(_seconds_in_child(
                    _READ.format(config=args.config, data_dir=data_dir), port))
            for where, data_dir in (("local", str(work / f"prepared-{repeat}")),
                                    ("emulator", f"gs://{BUCKET}/prepared-{repeat}")):
                seconds["prepare"][where].append(_seconds_in_child(
                    _PREPARE.format(config=args.config, data_dir=data_dir, manual=str(bundle)), port))
    report: dict = {"config": args.config, "seconds": seconds, "upload_s": upload_s}
    for task, by_place in seconds.items():
        for where, values in by_place.items():
            report[f"{task}_{where}_median_s"] = statistics.median(values)
        report[f"{task}_emulator_over_local"] = (report[f"{task}_emulator_median_s"]
                                                 / report[f"{task}_local_median_s"])
    return report


def _seconds_in_child(code: str, port: int) -> float:
    """Runs ``code`` in a fresh process; the seconds it printed before its last word."""
    done = run_in_child(code, port)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return float(done.stdout.split()[-2])


if __name__ == "__main__":
    main()
