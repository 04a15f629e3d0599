"""One prepare, in a process of its own, with its time and peak RSS growth.

Run by ``run.py --child``. TensorFlow, TFDS and the builder's module are imported first and the
process's RSS then is the baseline; the figure reported is the peak RSS while preparing (psutil
polled every few ms, cross-checked with ``ru_maxrss``) minus that baseline.

For ``emnist_idx`` the same process also measures the floor of any prepare, before and after it:
gunzip the two images files (isal) and write those bytes, with fsync, next to the data dir.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from pathlib import Path


class PeakRss:
    """Polls this process's RSS in a thread; ``peak`` is the largest value seen (bytes)."""

    def __init__(self, interval: float = 0.005) -> None:
        import psutil

        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._poll, name="rss-poll", daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(self._interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def _max_rss_bytes() -> int:
    # Linux reports kilobytes, macOS bytes.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def gunzip_write_floor(bundle: Path, config: str, directory: Path) -> dict:
    """The floor of any prepare: gunzip (isal) the config's two images files and write those
    bytes to ``directory`` (the disk the prepare writes to), with fsync; the files are removed."""
    from isal import igzip

    from emnist_idx import configs

    directory.mkdir(parents=True, exist_ok=True)
    block = bytearray(1 << 22)
    view = memoryview(block)
    written = 0
    cpu = time.process_time()
    start = time.perf_counter()
    for split in configs.SPLITS:
        target = directory / f"floor-{split}.raw"
        with igzip.open(bundle / "gzip" / configs.image_file(config, split), "rb") as source, \
                open(target, "wb") as sink:
            while got := source.readinto(block):
                sink.write(view[:got])
                written += got
            sink.flush()
            os.fsync(sink.fileno())
    seconds = time.perf_counter() - start
    cpu_s = time.process_time() - cpu
    for split in configs.SPLITS:
        (directory / f"floor-{split}.raw").unlink()
    return {"seconds": seconds, "cpu_s": cpu_s, "bytes": written,
            "mb_per_s": written / 2**20 / seconds}


def _local_bundle_download_manager(zip_path: Path) -> None:
    """Makes TFDS's DownloadManager hand out ``zip_path`` for every URL (this process only).

    TFDS's ``emnist`` calls ``dl_manager.download_and_extract(URL)`` and joins ``gzip`` to the
    result, then ``dl_manager.extract(...)`` on each ``.gz``. Here "download" returns the local
    zip, and extraction is TFDS's own, so everything but the network transfer is measured.
    """
    import tensorflow_datasets as tfds

    def local(urls):
        if isinstance(urls, dict):
            return {key: local(value) for key, value in urls.items()}
        if isinstance(urls, (list, tuple)):
            return type(urls)(local(value) for value in urls)
        return zip_path

    def download(self, url_or_urls):
        return local(url_or_urls)

    def download_and_extract(self, url_or_urls):
        return self.extract(local(url_or_urls))

    tfds.download.DownloadManager.download = download
    tfds.download.DownloadManager.download_and_extract = download_and_extract


def prepare(builder_name: str, config: str, bundle: Path, data_dir: Path,
            counts: tuple[int, int]) -> dict:
    """Prepares ``builder_name/config`` in ``data_dir`` from ``bundle``; returns the figures."""
    import psutil
    import tensorflow as tf  # noqa: F401 - imported before the baseline on purpose
    import tensorflow_datasets as tfds

    if builder_name == "emnist":
        from tensorflow_datasets.image_classification import mnist  # noqa: F401

        _local_bundle_download_manager(bundle / "gzip.zip")
    elif builder_name == "emnist_idx":
        import emnist_idx  # noqa: F401 - registers the builder
    else:
        raise ValueError(f"unknown builder {builder_name!r}")

    floors = []
    if builder_name == "emnist_idx":
        floors.append(gunzip_write_floor(bundle, config, data_dir.parent / "floor"))
    baseline = psutil.Process().memory_info().rss
    max_rss_before = _max_rss_bytes()
    with PeakRss() as peak:
        cpu = time.process_time()
        start = time.perf_counter()
        builder = tfds.builder(f"{builder_name}/{config}", data_dir=str(data_dir))
        if builder_name == "emnist":
            # TFDS's emnist reads exactly the example counts it declares; a scaled bundle has fewer.
            object.__setattr__(builder.builder_config, "train_examples", counts[0])
            object.__setattr__(builder.builder_config, "test_examples", counts[1])
            builder.download_and_prepare()
        else:
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=str(bundle))
            )
        seconds = time.perf_counter() - start
        cpu_s = time.process_time() - cpu
    max_rss_after = _max_rss_bytes()
    if floors:
        floors.append(gunzip_write_floor(bundle, config, data_dir.parent / "floor"))
    # ru_maxrss is exact when the prepare set a new lifetime peak; otherwise the polled peak.
    peak_bytes = max(peak.peak, max_rss_after if max_rss_after > max_rss_before else 0)
    examples = sum(info.num_examples for info in builder.info.splits.values())
    return {
        "builder": builder_name,
        "config": config,
        "seconds": seconds,
        "cpu_s": cpu_s,
        "examples": examples,
        "examples_per_s": examples / seconds,
        "baseline_rss_mb": baseline / 2**20,
        "peak_rss_mb": peak_bytes / 2**20,
        "peak_rss_growth_mb": (peak_bytes - baseline) / 2**20,
        "data_dir": str(data_dir),
        "pid": os.getpid(),
        "floors": floors,
    }


def main(builder_name: str, config: str, bundle: str, data_dir: str, counts: str,
         result: str) -> int:
    train, test = (int(value) for value in counts.split(","))
    figures = prepare(builder_name, config, Path(bundle), Path(data_dir), (train, test))
    Path(result).write_text(json.dumps(figures))
    return 0
