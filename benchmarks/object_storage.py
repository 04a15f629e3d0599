"""Reading a prepared split from a local GCS emulator against reading it from local disk.

    python benchmarks/object_storage.py [--config mnist] [--repeats 3] [--json out.json]

Prepares the config (full-size synthetic files) on local disk, copies the version folder to a
``gcp-storage-emulator`` on 127.0.0.1 (in memory), then times ``load_numpy`` of the train split
from each, alternating, each read in a fresh process reaching the emulator through epath and gcsfs
(``tests/gcs_emulator.py``). Reports the medians and the ratio.
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

from tests.gcs_emulator import BUCKET, run_in_child, running_emulator  # noqa: E402

_READ = """
import time, emnist_idx
start = time.perf_counter()
x, y = emnist_idx.load_numpy({config!r}, "train", data_dir={data_dir!r}, download=False)
print(time.perf_counter() - start, len(y))
"""
_UPLOAD = """
from pathlib import Path
from etils import epath
source, target = Path({source!r}), epath.Path({target!r})
for path in source.rglob("*"):
    if path.is_file():
        (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
        (target / path.relative_to(source)).write_bytes(path.read_bytes())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="mnist")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="object-storage-bench-"))
    try:
        report = _measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.config} train load_numpy: local median {report['local_median_s']:.2f} s, "
          f"gs:// on gcp-storage-emulator (gcsfs via epath) median "
          f"{report['emulator_median_s']:.2f} s ({report['emulator_over_local']:.1f}x)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


def _measure(args: argparse.Namespace, work: Path) -> dict:
    from emnist_idx import load_numpy, synthetic

    bundle = synthetic.write_bundle(work / "bundle", {args.config: synthetic.FULL_COUNTS[args.config]},
                                    make_zip=False)
    local = work / "data"
    load_numpy(args.config, "train", data_dir=str(local), manual_dir=str(bundle))
    remote = f"gs://{BUCKET}/tfds"
    seconds: dict[str, list[float]] = {"local": [], "emulator": []}
    with running_emulator() as port:
        done = run_in_child(_UPLOAD.format(source=str(local), target=remote), port)
        if done.returncode:
            raise RuntimeError(done.stderr[-3000:])
        for _ in range(args.repeats):
            for where, data_dir in (("local", str(local)), ("emulator", remote)):
                done = run_in_child(_READ.format(config=args.config, data_dir=data_dir), port)
                if done.returncode:
                    raise RuntimeError(done.stderr[-3000:])
                seconds[where].append(float(done.stdout.split()[-2]))
    report = {"config": args.config, "seconds": seconds,
              **{f"{where}_median_s": statistics.median(values) for where, values in seconds.items()}}
    report["emulator_over_local"] = report["emulator_median_s"] / report["local_median_s"]
    return report


if __name__ == "__main__":
    main()
