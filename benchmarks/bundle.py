"""The benchmark's synthetic EMNIST bundle: generated once per config and scale, then reused."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from emnist_idx import configs, synthetic

MARKER = "bundle.json"


def scaled_counts(config: str, scale: float) -> tuple[int, int]:
    """The (train, test) counts of ``config`` times ``scale`` (at least one example each)."""
    configs.check_config(config)
    if not 0 < scale <= 1:
        raise ValueError(f"--scale must lie in (0, 1], got {scale}")
    train, test = configs.NIST_COUNTS[config]
    return max(1, round(train * scale)), max(1, round(test * scale))


def bundle_files(config: str) -> list[str]:
    """The bundle's files, relative to its directory."""
    return ["gzip.zip", *(f"gzip/{name}" for name in configs.file_names(config))]


def _is_complete(directory: Path, config: str, counts: tuple[int, int], seed: int) -> bool:
    try:
        marker = json.loads((directory / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if (marker.get("config"), tuple(marker.get("counts", ())), marker.get("seed")) != (
        config, counts, seed
    ):
        return False
    sizes = marker.get("sizes", {})
    return all(
        (directory / name).is_file() and (directory / name).stat().st_size == sizes.get(name)
        for name in bundle_files(config)
    )


def ensure_bundle(cache_dir: Path, config: str, counts: tuple[int, int], seed: int = 0,
                  log=print) -> tuple[Path, float | None]:
    """Returns the bundle directory (holding ``gzip/`` and ``gzip.zip``) and the seconds spent
    generating it (None when a complete bundle was already cached)."""
    directory = cache_dir / f"{config}-{counts[0]}x{counts[1]}-seed{seed}"
    if _is_complete(directory, config, counts, seed):
        return directory, None
    partial = directory.with_name(directory.name + ".partial")
    for stale in (directory, partial):
        if stale.exists():
            shutil.rmtree(stale)
    log(f"generating the {config} bundle ({counts[0]:,} train + {counts[1]:,} test) in {directory}")
    start = time.perf_counter()
    synthetic.write_bundle(partial, {config: counts}, seed=seed)
    marker = {
        "config": config,
        "counts": list(counts),
        "seed": seed,
        "sizes": {name: (partial / name).stat().st_size for name in bundle_files(config)},
    }
    (partial / MARKER).write_text(json.dumps(marker, indent=1))
    partial.rename(directory)
    return directory, time.perf_counter() - start
