"""emnist_idx side by side with TFDS's own ``emnist`` and with the in-memory numpy pipeline.

    python benchmarks/run.py --config balanced [--epochs 3] [--json out.json] [--chart out.png]
                             [--cache-dir benchmarks/.cache] [--scale 1.0] [--tfds-from run.json]

Generates (once, cached) a full-size synthetic bundle in NIST's layout for the config, then in one
run on that bundle, each in fresh data dirs under a temporary directory:
  * prepare with TFDS's ``emnist`` (its download pointed at the local gzip.zip) and with
    ``emnist_idx``, each in a child process that reports time and peak RSS growth over the RSS
    after importing TensorFlow, TFDS and the builder;
  * the same ``emnist_idx`` prepare through Beam (DirectRunner, 2 workers, multi_processing; as
    benchmarks/beam.py runs it, which also repeats it against the bulk path), with the largest
    SDK worker's peak RSS above a fresh worker's (``--no-beam`` leaves it out);
  * TFDS's standard pipeline over ``emnist`` for two epochs;
  * ``emnist_idx.load`` for ``--epochs`` epochs (the first includes the load() call);
  * the hand-written in-memory numpy pipeline over the same arrays (median of ``--epochs``);
  * each of those (TFDS: epoch 1 only) and the ceiling consumed twice: by a Python loop, and
    in-graph (``Dataset.reduce``), the pipeline's own throughput;
  * with a GPU, images/s reaching it through ``load(..., device="/gpu:0")`` (uint8 across,
    normalized there) and with the split resident on it (``cache="device"``);
  * the floors: gunzip+write+fsync of the images files (isal, in the emnist_idx prepare's own
    process, before and after it; the faster counts), a raw read of the prepared train shards, and
    the pipeline's ceiling (a tf.data pipeline that only yields precomputed batches), iterated as
    ``load()``'s results are and, in a Python loop, also through TensorFlow's own iterator.
Prints a table with ratios to the matching TFDS row and to each row's floor, and PASS/MISS per
target of issue #13; ``--json`` writes every figure, ``--chart`` draws them (see chart.py).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import bundle as bundle_lib  # noqa: E402

BATCH_SIZE = 128
SHUFFLE_BUFFER = 10_000
DEFAULT_CACHE = HERE / ".cache"

# (key, label) of the table's rows, in order.
ROWS = [
    ("prepare_emnist", "prepare emnist (TFDS)"),
    ("prepare_emnist_idx", "prepare emnist_idx"),
    ("prepare_emnist_idx_beam", "prepare emnist_idx, Beam (RSS: per worker)"),
    ("epoch1_emnist", "epoch 1 emnist (TFDS)"),
    ("epoch2_emnist", "epoch 2 emnist (TFDS)"),
    ("epoch1_emnist_idx", "epoch 1 emnist_idx (incl. load())"),
    ("cached_emnist_idx", "cached epochs emnist_idx"),
    ("numpy_in_memory", "in-memory numpy pipeline"),
    ("device_emnist_idx", "to GPU, emnist_idx device=/gpu:0"),
    ("resident_emnist_idx", "GPU-resident, cache=device"),
    ("floor_prepare", "floor: gunzip+write+fsync (isal)"),
    ("floor_raw_read", "floor: raw read of the train shards"),
    ("ceiling_pipeline", "ceiling: tf.data of ready batches"),
    ("ceiling_tf_iterator", "ceiling, TensorFlow's own iterator"),
]
# The same epochs consumed in-graph (Dataset.reduce): each pipeline's own throughput, without the
# Python loop's per-batch cost (a separate section of the table).
GRAPH_ROWS = [
    ("epoch1_emnist_graph", "epoch 1 emnist (TFDS)"),
    ("epoch1_emnist_idx_graph", "epoch 1 emnist_idx (incl. load())"),
    ("cached_emnist_idx_graph", "cached epochs emnist_idx"),
    ("numpy_in_memory_graph", "in-memory numpy pipeline"),
    ("ceiling_pipeline_graph", "ceiling: tf.data of ready batches"),
]
# Rows an earlier run's JSON can provide (--tfds-from): TFDS's, which take most of a run's time.
TFDS_ROWS = ("prepare_emnist", "epoch1_emnist", "epoch2_emnist", "epoch1_emnist_graph")
# Each row's floor: the least time any implementation of that step could take here.
FLOOR_OF = {
    "prepare_emnist": "floor_prepare",
    "prepare_emnist_idx": "floor_prepare",
    "prepare_emnist_idx_beam": "floor_prepare",
    "epoch1_emnist": "floor_raw_read",
    "epoch2_emnist": "floor_raw_read",
    "epoch1_emnist_idx": "floor_raw_read",
    "cached_emnist_idx": "ceiling_pipeline",
    "numpy_in_memory": "ceiling_tf_iterator",
    "device_emnist_idx": "ceiling_pipeline",
    "resident_emnist_idx": "ceiling_pipeline",
    "epoch1_emnist_graph": "floor_raw_read",
    "epoch1_emnist_idx_graph": "floor_raw_read",
    "cached_emnist_idx_graph": "ceiling_pipeline_graph",
    "numpy_in_memory_graph": "ceiling_pipeline_graph",
}

# Issue #13's targets. name, row, reference row, kind, bound: "speedup" is the row's examples/s
# over the reference's (at least bound); "vs floor" is the row's time over its floor's (at most).
SPEED_TARGETS = [
    ("prepare emnist_idx vs the gunzip+write floor", "prepare_emnist_idx", "floor_prepare",
     "vs floor", 1.5),
    ("epoch 1 (incl. load()) vs TFDS epoch 1, Python loop", "epoch1_emnist_idx", "epoch1_emnist",
     "speedup", 30.0),
    ("epoch 1 (incl. load()) vs TFDS epoch 1, in-graph", "epoch1_emnist_idx_graph",
     "epoch1_emnist_graph", "speedup", 30.0),
    ("cached epochs vs in-memory numpy, Python loop", "cached_emnist_idx", "numpy_in_memory",
     "speedup", 3.0),
    ("cached epochs vs in-memory numpy, in-graph", "cached_emnist_idx_graph",
     "numpy_in_memory_graph", "speedup", 3.0),
]
RSS_LIMIT_MB = 100.0
# Targets the issue states for one config only (by their row); other configs' runs say so.
STATED_FOR = {"prepare_emnist_idx": "byclass"}


def log(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Machine facts


def machine_facts() -> dict:
    import numpy as np
    import psutil
    import tensorflow as tf
    import tensorflow_datasets as tfds

    cpu_model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(device)
        except Exception:  # noqa: BLE001 - details are best effort
            details = {}
        gpus.append(details.get("device_name", device.name))
    try:
        import emnist_idx

        emnist_idx_version = emnist_idx.__version__
    except Exception:  # noqa: BLE001
        emnist_idx_version = None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "tensorflow_datasets": tfds.__version__,
        "numpy": np.__version__,
        "emnist_idx": emnist_idx_version,
        "gpus": gpus,
        "git_commit": _git_commit(),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, text=True,
                             capture_output=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=HERE,
                               text=True, capture_output=True, timeout=10).stdout.strip()
        return out + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


# ---------------------------------------------------------------------------------------------
# Measurements


def run_prepare_child(builder: str, config: str, bundle: Path, data_dir: Path,
                      counts: tuple[int, int], workdir: Path) -> dict:
    """Runs one prepare in a child process (this script's hidden ``--child`` mode)."""
    result = workdir / f"{builder}-prepare.json"
    child_log = workdir / f"{builder}-prepare.log"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", builder,
               "--config", config, "--bundle", str(bundle), "--data-dir", str(data_dir),
               "--counts", f"{counts[0]},{counts[1]}", "--result", str(result)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    with open(child_log, "w") as stream:
        code = subprocess.run(command, stdout=stream, stderr=subprocess.STDOUT, env=env).returncode
    if code != 0 or not result.exists():
        tail = child_log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"prepare of {builder} failed (exit {code}):\n{tail}")
    return json.loads(result.read_text())


def measure_beam_prepare(config: str, bundle: Path, data_dir: Path, examples: int) -> dict:
    """The emnist_idx prepare through Beam (DirectRunner, 2 workers, multi_processing) in a fresh
    process; ``peak_rss_growth_mb`` is the largest SDK worker's peak over a worker's baseline."""
    import beam

    result = beam.run_child("beam", config, bundle, data_dir)
    peaks = result["worker_peak_rss"]
    if not peaks:
        raise RuntimeError("the Beam prepare ran, but no SDK worker process was seen")
    growth = max(peaks) - beam.worker_baseline()
    return epoch_figures(result["seconds"], examples, peak_rss_growth_mb=growth / 2**20,
                         workers=len(peaks), runner="DirectRunner, 2 workers, multi_processing")


def consume(dataset) -> int:
    """Iterates every batch of ``dataset`` in a Python loop; returns the number of examples seen.

    What ``for x, y in ds`` sees; each batch costs the loop a few hundred microseconds here, which
    bounds every pipeline (the ceiling row shows by how much).
    """
    examples = 0
    for _, labels in dataset:
        examples += int(labels.shape[0])
    return examples


def consume_in_graph(dataset) -> int:
    """Every batch of ``dataset`` consumed inside TensorFlow (``Dataset.reduce``, no Python per
    batch): the pipeline's own throughput, what ``model.fit`` approaches with a large
    ``steps_per_execution``. Returns the number of examples seen."""
    import tensorflow as tf

    return int(dataset.reduce(tf.constant(0, tf.int64), lambda count, batch: count + tf.shape(
        batch[1], out_type=tf.int64)[0]))


CONSUMERS = {"python": consume, "graph": consume_in_graph}


_LAST_CPU: list[float] = [0.0]


def timed_epoch(make_or_iterate) -> tuple[float, int]:
    """Wall seconds and examples of one call; its CPU seconds (all threads) go to ``_LAST_CPU``."""
    cpu = time.process_time()
    start = time.perf_counter()
    examples = make_or_iterate()
    seconds = time.perf_counter() - start
    _LAST_CPU[0] = time.process_time() - cpu
    return seconds, examples


def epoch_figures(seconds: float, examples: int, cpu_s: float | None = None, **extra) -> dict:
    figures = {"seconds": seconds, "examples": examples, "examples_per_s": examples / seconds}
    if cpu_s is not None:
        figures["cpu_s"] = cpu_s
    return {**figures, **extra}


def median_figures(times: list[float], examples: int, cpu: list[float] | None = None,
                   **extra) -> dict:
    seconds = statistics.median(times)
    cpu_s = statistics.median(cpu) if cpu else None
    return epoch_figures(seconds, examples, cpu_s, epochs_s=times, **extra)


def measure_tfds_epochs(config: str, data_dir: Path, consumer: str = "python",
                        epochs: int = 2) -> tuple[dict, dict | None]:
    """TFDS's standard pipeline over its ``emnist``: epoch 1 (incl. building it) and epoch 2
    (``epochs=1``: epoch 1 only, None for epoch 2)."""
    consume_all = CONSUMERS[consumer]
    import tensorflow as tf
    import tensorflow_datasets as tfds

    state = {}

    def first_epoch() -> int:
        builder = tfds.builder(f"emnist/{config}", data_dir=str(data_dir))
        state["ds"] = (
            builder.as_dataset(split="train", as_supervised=True)
            .map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y),
                 num_parallel_calls=tf.data.AUTOTUNE)
            .shuffle(SHUFFLE_BUFFER)
            .batch(BATCH_SIZE)
            .prefetch(tf.data.AUTOTUNE)
        )
        state["builder"] = builder
        return consume_all(state["ds"])

    seconds1, examples1 = timed_epoch(first_epoch)
    cpu1 = _LAST_CPU[0]
    if epochs == 1:
        return epoch_figures(seconds1, examples1, cpu1, consumer=consumer), None
    seconds2, examples2 = timed_epoch(lambda: consume_all(state["ds"]))
    builder = state["builder"]
    try:  # TFDS's own rule: it caches datasets under 250 MiB in memory after the first pass
        cached = bool(builder._should_cache_ds(  # noqa: SLF001
            split="train", shuffle_files=False, read_config=tfds.ReadConfig()))
    except Exception:  # noqa: BLE001 - a private helper; the figure is informative only
        cached = None
    return (epoch_figures(seconds1, examples1, cpu1),
            epoch_figures(seconds2, examples2, _LAST_CPU[0], tfds_auto_cached=cached,
                          tfds_dataset_mib=builder.info.dataset_size / 2**20))


def _import_load():
    try:
        from emnist_idx._pipeline.loading import load
    except ImportError as error:
        raise SystemExit(f"emnist_idx.load is not available: {error}") from error
    return load


def measure_emnist_idx_epochs(config: str, data_dir: Path, epochs: int,
                              warm_repeats: int = 2, consumer: str = "python"
                              ) -> tuple[dict, dict]:
    """``load()`` + epoch 1, then the median of epochs 2..N over the same dataset.

    Epoch 1 is the process's first ``load()`` (cold, what a training script sees). It is then
    measured ``warm_repeats`` more times with fresh ``load()`` calls, reported apart (``warm_*``):
    on a busy machine one cold figure is noisy.
    """
    load = _import_load()
    consume_all = CONSUMERS[consumer]
    state = {}

    def first_epoch() -> int:
        # Batches stay on the host, like the TFDS and numpy rows (the GPU rows name a device).
        state["ds"] = load(config, "train", data_dir=str(data_dir), seed=0, device=None)
        return consume_all(state["ds"])

    seconds1, examples1 = timed_epoch(first_epoch)
    cpu1 = _LAST_CPU[0]
    times, cpu, examples = [], [], None
    for _ in range(epochs - 1):
        seconds, count = timed_epoch(lambda: consume_all(state["ds"]))
        times.append(seconds)
        cpu.append(_LAST_CPU[0])
        examples = count if examples is None else examples
        if count != examples:
            raise RuntimeError(f"cached epochs saw {examples} then {count} examples")
    del state["ds"]
    warm = []
    for _ in range(warm_repeats):
        warm.append(timed_epoch(first_epoch)[0])
        del state["ds"]
    extra = {}
    if warm:
        extra = {"warm_repeats_s": warm, "warm_median_s": statistics.median(warm),
                 "warm_median_examples_per_s": examples1 / statistics.median(warm)}
    return (epoch_figures(seconds1, examples1, cpu1, consumer=consumer, **extra),
            median_figures(times, examples, cpu, epochs_measured=f"2..{epochs}",
                           consumer=consumer))


def read_train_arrays(bundle: Path, config: str):
    """The train split's upright (N, 28, 28, 1) uint8 images and int64 0-based labels."""
    import numpy as np

    from emnist_idx import configs
    from emnist_idx._format.idx import read_idx

    images = read_idx(bundle / "gzip" / configs.image_file(config, "train"))
    labels = read_idx(bundle / "gzip" / configs.label_file(config, "train"))
    images = np.ascontiguousarray(images.transpose(0, 2, 1))[..., None]
    return images, labels.astype(np.int64) - configs.FIRST_LABEL[config]


def measure_numpy_epochs(bundle: Path, config: str, epochs: int, consumer: str = "python") -> dict:
    """The hand-written in-memory pipeline: the practical upper bound of naive tf.data."""
    import tensorflow as tf

    images, labels = read_train_arrays(bundle, config)

    def scale(x, y):
        return tf.cast(x, tf.float32) / 255.0, y

    dataset = (
        tf.data.Dataset.from_tensor_slices((images, labels))
        .shuffle(SHUFFLE_BUFFER)
        .batch(BATCH_SIZE)
        .map(scale, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    del images, labels
    return _median_epochs(dataset, epochs, consumer)


def _median_epochs(dataset, epochs: int, consumer: str) -> dict:
    """The median of ``epochs`` passes over ``dataset``."""
    times, cpu, examples = [], [], None
    for _ in range(epochs):
        seconds, examples = timed_epoch(lambda: CONSUMERS[consumer](dataset))
        times.append(seconds)
        cpu.append(_LAST_CPU[0])
    return median_figures(times, examples, cpu, epochs_measured=f"1..{epochs}", consumer=consumer)


def measure_device(config: str, data_dir: Path, epochs: int, cache: bool | str = "auto") -> dict:
    """Images/s reaching the GPU through ``load(..., device="/gpu:0")``; skipped without a GPU.

    Batches cross as uint8 and are normalized on the GPU; with ``cache="device"`` the whole split
    is kept on the GPU and only each batch's indices cross.
    """
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        return {"skipped": "no GPU visible to TensorFlow"}
    load = _import_load()
    state = {}

    def on_device(dataset) -> int:
        examples = 0
        for images, labels in dataset:
            if "GPU" not in images.device:
                raise RuntimeError(f"batch arrived on {images.device}, not on a GPU")
            examples += int(labels.shape[0])
        return examples

    def first_epoch() -> int:
        state["ds"] = load(config, "train", data_dir=str(data_dir), seed=0, device="/gpu:0",
                           cache=cache)
        return on_device(state["ds"])

    seconds1, examples1 = timed_epoch(first_epoch)
    times, examples = [], examples1
    for _ in range(max(1, epochs - 1)):
        seconds, examples = timed_epoch(lambda: on_device(state["ds"]))
        times.append(seconds)
    return median_figures(times, examples, epochs_measured=f"2..{len(times) + 1}",
                          first_epoch_s=seconds1, first_epoch_examples_per_s=examples1 / seconds1)


def floor_prepare_row(prepare_row: dict) -> dict:
    """The gunzip+write floor measured in the emnist_idx prepare's process (the faster of two)."""
    floors = prepare_row.get("floors") or []
    if not floors:
        return {"skipped": "the prepare child measured no floor"}
    best = min(floors, key=lambda floor: floor["seconds"])
    return epoch_figures(best["seconds"], prepare_row["examples"], best["cpu_s"],
                         floor_runs_s=[floor["seconds"] for floor in floors], bytes=best["bytes"])


def measure_raw_read(config: str, data_dir: Path, train_examples: int, repeats: int = 3) -> dict:
    """Reading the prepared train shards' bytes (no parsing): the floor of a first epoch."""
    shards = sorted(data_dir.glob(f"emnist_idx/{config}/*/*-train.tfrecord-*"))
    if not shards:
        return {"skipped": f"no train shards under {data_dir}"}
    block = bytearray(1 << 22)

    def read_all() -> int:
        for shard in shards:
            with open(shard, "rb", buffering=0) as stream:
                while stream.readinto(block):
                    pass
        return train_examples

    times, cpu = [], []
    for _ in range(repeats):
        seconds, _ = timed_epoch(read_all)
        times.append(seconds)
        cpu.append(_LAST_CPU[0])
    return median_figures(times, train_examples, cpu, epochs_measured=f"1..{repeats}",
                          bytes=sum(shard.stat().st_size for shard in shards))


def measure_ceiling(train_examples: int, epochs: int, consumer: str = "python",
                    flat: bool = True) -> dict:
    """A tf.data pipeline that only yields precomputed batches: what the consumer loop costs.

    Iterated as ``load()``'s results are (``iteration.FlatBatches``: in a Python loop, through
    ``FlatIterator``), or with ``flat=False`` through TensorFlow's own iterator, as the numpy
    pipeline and TFDS's are.
    """
    from emnist_idx._pipeline import iteration, memory_cache

    batches = memory_cache.ceiling_batches(train_examples, BATCH_SIZE)
    return _median_epochs(iteration.FlatBatches(batches) if flat else batches, epochs, consumer)


def measure_crc32c(records: int = 8192, record_size: int = 822) -> dict:
    """CRC32C of ``records`` random records: google-crc32c against the numpy fallback."""
    import numpy as np

    from emnist_idx._prepare import tfrecord_frames

    rows = np.random.default_rng(0).integers(0, 256, size=(records, record_size), dtype=np.uint8)
    figures = {"records": records, "record_size": record_size}
    results = {}
    for name, function in (("numpy", tfrecord_frames.numpy_crc32c_rows),
                           ("google-crc32c", tfrecord_frames.library_crc32c_rows)):
        try:
            best = min(timed_epoch(lambda: len(results.setdefault(name, function(rows))))[0]
                       for _ in range(3))
        except RuntimeError as error:  # the library is missing
            figures[name] = {"skipped": str(error)}
            continue
        figures[name] = {"us_per_record": best / records * 1e6}
    if len(results) == 2:
        figures["identical"] = bool((results["numpy"] == results["google-crc32c"]).all())
        figures["speedup"] = (figures["numpy"]["us_per_record"]
                              / figures["google-crc32c"]["us_per_record"])
    return figures


# ---------------------------------------------------------------------------------------------
# Ratios, targets and the table


def speedup(rows: dict, row: str, reference: str) -> float | None:
    mine, theirs = rows.get(row, {}), rows.get(reference, {})
    if "examples_per_s" not in mine or "examples_per_s" not in theirs:
        return None
    return mine["examples_per_s"] / theirs["examples_per_s"]


def add_ratios(rows: dict) -> None:
    references = {
        "prepare_emnist": {"vs_tfds": "prepare_emnist"},
        "prepare_emnist_idx": {"vs_tfds": "prepare_emnist"},
        "prepare_emnist_idx_beam": {"vs_tfds": "prepare_emnist"},
        "epoch1_emnist": {"vs_tfds": "epoch1_emnist"},
        "epoch2_emnist": {"vs_tfds": "epoch1_emnist"},
        "epoch1_emnist_idx": {"vs_tfds": "epoch1_emnist"},
        "cached_emnist_idx": {"vs_tfds": "epoch1_emnist", "vs_tfds_epoch2": "epoch2_emnist",
                              "vs_numpy": "numpy_in_memory"},
        "numpy_in_memory": {"vs_tfds": "epoch1_emnist", "vs_tfds_epoch2": "epoch2_emnist"},
        "device_emnist_idx": {"vs_tfds": "epoch1_emnist", "vs_tfds_epoch2": "epoch2_emnist",
                              "vs_numpy": "numpy_in_memory"},
        "resident_emnist_idx": {"vs_tfds": "epoch1_emnist", "vs_tfds_epoch2": "epoch2_emnist",
                                "vs_numpy": "numpy_in_memory"},
        "epoch1_emnist_graph": {"vs_tfds": "epoch1_emnist_graph"},
        "epoch1_emnist_idx_graph": {"vs_tfds": "epoch1_emnist_graph"},
        "cached_emnist_idx_graph": {"vs_tfds": "epoch1_emnist_graph",
                                    "vs_numpy": "numpy_in_memory_graph"},
        "numpy_in_memory_graph": {"vs_tfds": "epoch1_emnist_graph"},
    }
    for row, refs in references.items():
        if row in rows and "examples_per_s" in rows[row]:
            rows[row]["ratios"] = {name: speedup(rows, row, ref) for name, ref in refs.items()}
    for row, floor in FLOOR_OF.items():
        ratio = speedup(rows, floor, row)  # the row's time over its floor's, per example
        if ratio is not None:
            rows[row].setdefault("ratios", {})["vs_floor"] = ratio


def evaluate_targets(rows: dict, config: str) -> list[dict]:
    targets = []
    for name, row, reference, kind, bound in SPEED_TARGETS:
        if kind == "speedup":
            value = speedup(rows, row, reference)
            passed = value is not None and value >= bound
        else:
            value = speedup(rows, reference, row)
            passed = value is not None and value <= bound
        targets.append({"name": _named_for(name, config, STATED_FOR.get(row)), "value": value,
                        "unit": "x", "kind": kind, "bound": bound, "passed": passed})
    growth = rows.get("prepare_emnist_idx", {}).get("peak_rss_growth_mb")
    targets.append({
        "name": _named_for("emnist_idx prepare peak RSS growth", config, "byclass"),
        "value": growth, "unit": "MB", "kind": "at most", "bound": RSS_LIMIT_MB,
        "passed": growth is not None and growth < RSS_LIMIT_MB,
    })
    return targets


def _named_for(name: str, config: str, stated_for: str | None) -> str:
    """A target's name, saying so when the issue states it for another config than this run's."""
    if stated_for is None or stated_for == config:
        return name
    return f"{name} ({config}; the target is stated for {stated_for})"


def _fmt(value, spec: str, empty: str = "") -> str:
    return empty if value is None else format(value, spec)


def _row_line(label: str, row: dict) -> str:
    """One row of the table: its figures, then its ratios."""
    if "skipped" in row:
        return f"{label:<50} {'skipped: ' + row['skipped']}"
    if "epochs_measured" in row:
        label = f"{label} (median {row['epochs_measured']})"
    elif row.get("tfds_auto_cached") is not None:
        label = label[:-1] + (", auto-cached)" if row["tfds_auto_cached"] else ", not cached)")
    if row.get("from_run"):
        label += " *"
    ratios = row.get("ratios", {})
    return (
        f"{label:<50} {row['seconds']:>8.2f} {_fmt(row.get('cpu_s'), '>6.2f', ' ' * 6)} "
        f"{row['examples_per_s']:>11,.0f} "
        f"{_fmt(row.get('peak_rss_growth_mb'), '>11,.1f', ' ' * 11)} "
        f"{_fmt(ratios.get('vs_tfds'), '>6.2f', ' ' * 6)}"
        f"{'x' if ratios.get('vs_tfds') is not None else ' '} "
        f"{_fmt(ratios.get('vs_tfds_epoch2'), '>9.2f', ' ' * 9)}"
        f"{'x' if ratios.get('vs_tfds_epoch2') is not None else ' '} "
        f"{_fmt(ratios.get('vs_numpy'), '>7.2f', ' ' * 7)}"
        f"{'x' if ratios.get('vs_numpy') is not None else ' '} "
        f"{_fmt(ratios.get('vs_floor'), '>7.2f', ' ' * 7)}"
        f"{'x' if ratios.get('vs_floor') is not None else ' '}".rstrip()
    )


def format_table(report: dict) -> str:
    rows, machine = report["rows"], report["machine"]
    counts = report["counts"]
    lines = [
        f"EMNIST {report['config']} (synthetic bundle, train {counts[0]:,} / test {counts[1]:,}),"
        f" batch {BATCH_SIZE}, {report['epochs']} emnist_idx epochs, {machine['date']}",
        f"machine: {machine['cpu_count']} CPUs ({machine['cpu_model']}), {machine['ram_gb']} GB RAM,"
        f" GPU: {', '.join(machine['gpus']) or 'none'}; Python {machine['python']},"
        f" TF {machine['tensorflow']}, TFDS {machine['tensorflow_datasets']},"
        f" numpy {machine['numpy']}; load avg {report['load_avg_start']} -> {report['load_avg_end']}",
        "",
    ]
    header = (f"{'row':<50} {'seconds':>8} {'CPU s':>6} {'examples/s':>11} {'peak RSS MB':>11} "
              f"{'x TFDS':>7} {'x TFDS ep2':>10} {'x numpy':>8} {'x floor':>8}")
    lines += [header, "-" * len(header)]
    lines += [_row_line(label, rows[key]) for key, label in ROWS if key in rows]
    if any(key in rows for key, _ in GRAPH_ROWS):
        lines += ["consumed in-graph (Dataset.reduce, no Python per batch):"]
        lines += [_row_line("  " + label, rows[key]) for key, label in GRAPH_ROWS if key in rows]
    first = rows.get("epoch1_emnist_idx", {})
    if "warm_median_s" in first:
        tfds_first = rows.get("epoch1_emnist", {}).get("examples_per_s")
        ratio = (f", {first['warm_median_examples_per_s'] / tfds_first:.2f}x TFDS epoch 1"
                 if tfds_first else "")
        lines += ["", f"epoch 1 emnist_idx again, fresh load() in the warm process (median of "
                      f"{len(first['warm_repeats_s'])}): {first['warm_median_s']:.2f} s, "
                      f"{first['warm_median_examples_per_s']:,.0f} examples/s{ratio}"]
    crc = report.get("crc32c") or {}
    if "speedup" in crc:
        lines += ["", f"CRC32C of {crc['records']:,} records of {crc['record_size']} bytes: "
                      f"google-crc32c {crc['google-crc32c']['us_per_record']:.2f} us/record, numpy "
                      f"{crc['numpy']['us_per_record']:.2f} us/record: {crc['speedup']:.1f}x, "
                      f"{'identical' if crc['identical'] else 'DIFFERENT'} values"]
    lines += [
        "",
        "prepare rows: train+test examples/s; peak RSS MB: growth over the RSS after importing"
        " TF+TFDS+builder (child process). CPU s: process CPU time, all threads (insensitive to"
        " other processes). x TFDS/ep2/numpy: speedup (examples/s ratio). x floor: the row's time"
        " over its floor's (1.00x is the floor itself): prepare rows over gunzip+write+fsync,"
        " epoch 1 and 2 over the raw read of the shards, cached epochs and numpy over the"
        " pipeline's ceiling consumed the same way (in a Python loop, numpy's with TensorFlow's"
        " own iterator, emnist_idx's with its FlatIterator). Python loop: `for x, y in ds`;"
        " in-graph: `ds.reduce(...)`, the pipeline's own throughput (what model.fit approaches"
        " with a large steps_per_execution).",
        "",
    ]
    reused = sorted({row["from_run"] for row in rows.values() if row.get("from_run")})
    if reused:
        lines += [f"* TFDS's row taken from the earlier run of {', '.join(reused)} (--tfds-from),"
                  " same config, bundle and machine; its ratios compare across runs.", ""]
    lines += [
        "targets (issue #13):",
    ]
    for target in report["targets"]:
        verdict = "PASS" if target["passed"] else "MISS"
        if target["unit"] == "x":
            bound = (f">= {target['bound']:g}x" if target["kind"] == "speedup"
                     else f"<= {target['bound']:g}x the floor's time")
            value = _fmt(target["value"], ".2f", "n/a") + "x"
        else:
            bound = f"< {target['bound']:g} MB"
            value = _fmt(target["value"], ".1f", "n/a") + " MB"
        lines.append(f"  {verdict}  {target['name']}: {value}  [{bound}]")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Driver


def benchmark(args: argparse.Namespace) -> dict:
    counts = bundle_lib.scaled_counts(args.config, args.scale)
    cache_dir = Path(args.cache_dir).resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    bundle, generated_s = bundle_lib.ensure_bundle(cache_dir, args.config, counts, log=log)
    log(f"bundle {bundle}" + (f" (generated in {generated_s:.1f} s)" if generated_s else " (cached)"))

    load_avg_start = load_average()
    machine = machine_facts()
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="emnist-bench-", dir=args.tmp_dir) as tmp:
        workdir = Path(tmp)
        tfds_dir, idx_dir = workdir / "data_emnist", workdir / "data_emnist_idx"

        earlier = _tfds_rows_from(args.tfds_from, args.config, counts) if args.tfds_from else {}
        rows.update(earlier)
        if not earlier:
            log("prepare emnist (TFDS) in a child process")
            rows["prepare_emnist"] = run_prepare_child("emnist", args.config, bundle, tfds_dir,
                                                       counts, workdir)
            log(f"  {rows['prepare_emnist']['seconds']:.1f} s")
        log("prepare emnist_idx in a child process")
        rows["prepare_emnist_idx"] = run_prepare_child("emnist_idx", args.config, bundle, idx_dir,
                                                       counts, workdir)
        log(f"  {rows['prepare_emnist_idx']['seconds']:.1f} s")
        if args.no_beam:
            rows["prepare_emnist_idx_beam"] = {"skipped": "--no-beam"}
        else:
            log("prepare emnist_idx through Beam in a child process")
            rows["prepare_emnist_idx_beam"] = measure_beam_prepare(
                args.config, bundle, workdir / "data_beam", sum(counts))
            log(f"  {rows['prepare_emnist_idx_beam']['seconds']:.1f} s")

        if not earlier:
            log("TFDS emnist: 2 epochs, then epoch 1 again consumed in-graph")
            rows["epoch1_emnist"], rows["epoch2_emnist"] = measure_tfds_epochs(args.config,
                                                                               tfds_dir)
            rows["epoch1_emnist_graph"], _ = measure_tfds_epochs(args.config, tfds_dir, "graph",
                                                                 epochs=1)
        log(f"emnist_idx load(): {args.epochs} epochs, Python loop then in-graph")
        rows["epoch1_emnist_idx"], rows["cached_emnist_idx"] = measure_emnist_idx_epochs(
            args.config, idx_dir, args.epochs)
        rows["epoch1_emnist_idx_graph"], rows["cached_emnist_idx_graph"] = (
            measure_emnist_idx_epochs(args.config, idx_dir, args.epochs, warm_repeats=0,
                                      consumer="graph"))
        log(f"in-memory numpy pipeline: {args.epochs} epochs, Python loop then in-graph")
        rows["numpy_in_memory"] = measure_numpy_epochs(bundle, args.config, args.epochs)
        rows["numpy_in_memory_graph"] = measure_numpy_epochs(bundle, args.config, args.epochs,
                                                             "graph")
        log("device path")
        rows["device_emnist_idx"] = measure_device(args.config, idx_dir, args.epochs)
        rows["resident_emnist_idx"] = measure_device(args.config, idx_dir, args.epochs,
                                                     cache="device")
        log("floors: gunzip+write (from the prepare child), raw read, pipeline ceiling")
        rows["floor_prepare"] = floor_prepare_row(rows["prepare_emnist_idx"])
        rows["floor_raw_read"] = measure_raw_read(args.config, idx_dir, counts[0])
        rows["ceiling_pipeline"] = measure_ceiling(counts[0], args.epochs)
        rows["ceiling_tf_iterator"] = measure_ceiling(counts[0], args.epochs, flat=False)
        rows["ceiling_pipeline_graph"] = measure_ceiling(counts[0], args.epochs, "graph")
        crc = measure_crc32c()

    add_ratios(rows)
    return {
        "command": " ".join(["python", "benchmarks/run.py", *sys.argv[1:]]),
        "config": args.config,
        "scale": args.scale,
        "counts": list(counts),
        "epochs": args.epochs,
        "batch_size": BATCH_SIZE,
        "bundle": str(bundle),
        "bundle_generated_s": generated_s,
        "machine": machine,
        "load_avg_start": load_avg_start,
        "load_avg_end": load_average(),
        "rows": rows,
        "crc32c": crc,
        "targets": evaluate_targets(rows, args.config),
    }


def _tfds_rows_from(path: str, config: str, counts: tuple[int, int]) -> dict:
    """TFDS's rows from an earlier run's JSON (same config and counts), each marked with its date.

    TFDS's byclass prepare and epochs take most of a run (20 minutes here); repeated runs of the
    other rows can compare against one measurement of them.
    """
    earlier = json.loads(Path(path).read_text())
    if earlier["config"] != config or list(earlier["counts"]) != list(counts):
        raise SystemExit(f"--tfds-from {path}: a run of {earlier['config']} {earlier['counts']},"
                         f" not {config} {list(counts)}")
    rows = {}
    for key in TFDS_ROWS:
        if key not in earlier["rows"]:
            raise SystemExit(f"--tfds-from {path}: the run has no {key!r} row")
        row = dict(earlier["rows"][key])
        row.pop("ratios", None)
        rows[key] = {**row, "from_run": earlier["machine"]["date"]}
    return rows


def load_average() -> str | None:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="balanced",
                        choices=["byclass", "bymerge", "balanced", "letters", "digits", "mnist"])
    parser.add_argument("--epochs", type=int, default=3,
                        help="emnist_idx and numpy epochs (>= 2; TFDS always runs 2)")
    parser.add_argument("--json", metavar="PATH", help="write every figure to this JSON file")
    parser.add_argument("--chart", metavar="PNG", help="draw this run's figures (chart.py draws"
                                                         " several runs' JSON files in one chart)")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE),
                        help="where generated bundles are kept between runs")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of the real example counts (1.0: full size)")
    parser.add_argument("--tmp-dir", default=None,
                        help="parent of the run's temporary data dirs (default: the system's)")
    parser.add_argument("--tfds-from", metavar="JSON",
                        help="take TFDS's rows from this earlier run (same config and scale) "
                             "instead of measuring them again; marked * in the table")
    parser.add_argument("--no-beam", action="store_true",
                        help="leave out the Beam prepare (benchmarks/beam.py measures it alone)")
    # Hidden: one prepare in a child process.
    parser.add_argument("--child", choices=["emnist", "emnist_idx"], help=argparse.SUPPRESS)
    parser.add_argument("--bundle", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--counts", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (epoch 1, then cached epochs)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        import prepare_child

        return prepare_child.main(args.child, args.config, args.bundle, args.data_dir,
                                  args.counts, args.result)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    report = benchmark(args)
    print(format_table(report), flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
        log(f"figures written to {args.json}")
    if args.chart:
        import chart

        Path(args.chart).parent.mkdir(parents=True, exist_ok=True)
        chart.draw_chart([report], Path(args.chart))
        log(f"chart written to {args.chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
