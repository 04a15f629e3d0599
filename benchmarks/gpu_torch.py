"""What ``load()``'s GPU design buys, measured with PyTorch on a GPU machine without TensorFlow.

    python benchmarks/gpu_torch.py [--json OUT.json] [--examples 697932]

The device machines lent to this project carry PyTorch and CUDA 13 but no TensorFlow, and cannot
reach the package index; TensorFlow's GPU wheel and its CUDA 12 libraries are several GB, far more
than can be carried there. So ``benchmarks/run.py``'s GPU rows cannot run on them. This script
measures, with the same shapes and the same byte counts, the three choices the GPU path rests on:

* host-to-device copies of a 128-example batch as uint8 (what ``device="/gpu:0"`` and "auto" send)
  against float32 (what a host-normalized pipeline sends), from pageable and from pinned memory;
* a GPU-resident split (``cache="device"``): each batch gathered by index and normalized on the GPU;
* a small CNN's training steps/s (the demo's network, without augmentation) fed from each of them,
  against the same steps on batches already on the GPU (the ceiling).

Every figure is the median of ``--repeats`` timed runs after a warm-up. Images are random uint8,
byclass's train size by default (547 MB): pixel values do not change copy or gather times.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

BYCLASS_TRAIN = 697_932
CLASSES = 62
BATCH = 128
IMAGE = (28, 28, 1)


def median_seconds(run: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    """Median wall time of ``run`` over ``repeats`` runs after one warm-up, device synchronized."""
    run()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def host_batches(images: np.ndarray, count: int, dtype: type, pinned: bool,
                 rng: np.random.Generator) -> list[torch.Tensor]:
    """``count`` shuffled 128-example batches in host memory: uint8 as stored, or float32 / 255."""
    batches = []
    for _ in range(count):
        batch = images[rng.integers(0, len(images), BATCH)]
        tensor = torch.from_numpy(batch if dtype is np.uint8 else batch.astype(np.float32) / 255)
        batches.append(tensor.pin_memory() if pinned else tensor)
    return batches


def cnn(device: torch.device) -> torch.nn.Module:
    """The demo's network without its augmentation layers (channels-first)."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Dropout(0.3), torch.nn.Linear(64 * 7 * 7, 128),
        torch.nn.ReLU(), torch.nn.Linear(128, CLASSES)).to(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=BYCLASS_TRAIN)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=400, help="batches per timed run")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.examples, *IMAGE), dtype=np.uint8)
    labels = rng.integers(0, CLASSES, args.examples)
    steps, repeats = args.steps, args.repeats
    rows: dict[str, dict[str, float]] = {}

    def record(name: str, seconds: float, bytes_per_batch: int = 0) -> None:
        rows[name] = {"batches_per_s": steps / seconds, "examples_per_s": steps * BATCH / seconds,
                      "gb_per_s": steps * bytes_per_batch / seconds / 1e9}

    # Host to device: one copy per batch, as a pipeline that prefetches to the GPU does.
    sources = {}
    for dtype, name in ((np.uint8, "uint8"), (np.float32, "float32")):
        for pinned in (False, True):
            ring = host_batches(images, 64, dtype, pinned and device.type == "cuda", rng)
            sources[name, pinned] = ring
            record(f"copy {name} {'pinned' if pinned else 'pageable'}", median_seconds(
                lambda ring=ring, pinned=pinned: [ring[i % 64].to(device, non_blocking=pinned)
                                                  for i in range(steps)], repeats, sync),
                ring[0].numel() * ring[0].element_size())

    # GPU-resident split: indices cross (or are drawn there), the batch is gathered and normalized.
    resident = torch.from_numpy(images).to(device)
    resident_labels = torch.from_numpy(labels).to(device)
    order = torch.randperm(args.examples, device=device)

    def gathered(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        indices = order[(step * BATCH) % (args.examples - BATCH):][:BATCH]
        return resident[indices].permute(0, 3, 1, 2).float().div_(255), resident_labels[indices]

    record("resident gather+normalize", median_seconds(
        lambda: [gathered(step) for step in range(steps)], repeats, sync))

    # A small CNN's steps/s fed each way; the ceiling reuses one batch already on the GPU.
    model = cnn(device)
    optimizer = torch.optim.Adam(model.parameters())
    loss_fn = torch.nn.CrossEntropyLoss()
    fixed = gathered(0)
    host_labels = [torch.from_numpy(labels[:BATCH]).pin_memory() if device.type == "cuda"
                   else torch.from_numpy(labels[:BATCH])] * 64

    def train(batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]]) -> None:
        for step in range(steps):
            x, y = batch(step)
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            optimizer.step()

    def from_host(name: str, pinned: bool) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
        ring = sources[name, pinned]

        def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
            x = ring[step % 64].to(device, non_blocking=pinned).permute(0, 3, 1, 2)
            if x.dtype == torch.uint8:
                x = x.float().div_(255)
            return x, host_labels[step % 64].to(device, non_blocking=pinned)

        return batch

    feeds = {
        "CNN step, batch already on GPU (ceiling)": lambda step: fixed,
        "CNN step, resident gather+normalize": gathered,
        "CNN step, uint8 pinned copy+normalize": from_host("uint8", True),
        "CNN step, float32 pinned copy": from_host("float32", True),
        "CNN step, float32 pageable copy": from_host("float32", False),
    }
    for name, feed in feeds.items():
        record(name, median_seconds(lambda feed=feed: train(feed), repeats, sync))

    title = torch.cuda.get_device_name() if device.type == "cuda" else "CPU (no GPU)"
    print(f"{title}; torch {torch.__version__}; {args.examples:,} examples resident "
          f"({images.nbytes / 1e6:,.0f} MB); batch {BATCH}; {steps} batches a run, median of "
          f"{repeats} runs")
    print(f"{'what':48} {'batches/s':>12} {'examples/s':>14} {'GB/s':>8}")
    for name, row in rows.items():
        print(f"{name:48} {row['batches_per_s']:>12,.0f} {row['examples_per_s']:>14,.0f} "
              f"{row['gb_per_s']:>8.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"device": title, "torch": torch.__version__, "examples": args.examples,
                       "steps": steps, "repeats": repeats, "rows": rows}, out, indent=1)


if __name__ == "__main__":
    main()
