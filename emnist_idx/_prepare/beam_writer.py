"""Preparing on Apache Beam: one pipeline for every split, one task per shard, written in bulk.

TFDS's ``SplitBuilder`` reuses one Beam pipeline for every split and re-runs the earlier splits'
transforms when it is entered again (train was written twice), and its per-example writer runs a
shard's generator in one worker. Here one pipeline holds every shard of every split: ``Create`` of
the shard tasks, ``Reshuffle`` (so that the runner spreads them over its workers), and a ``Map``
that seeks to the shard's first image (``image_ranges``) and writes the shard's file with the bulk
framing (``shard_writer.write_shard``); the results (each shard's identity, the train shards'
pixel counts) are gathered into one file beside the shards that the driver reads and removes.

The tasks stay a few hundred bytes each: Beam pickles and compresses ``Create``'s values (bz2)
into the pipeline, again for every runner it tries (DirectRunner tries Prism first) and in every
worker, so a split's labels and gzip seek index (~1.8 MB for byclass train) travel in a plan file
per split, written beside the shards by the driver and read once per worker process.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from emnist_idx._format.sources import SourceFile
from emnist_idx._prepare import checks, image_ranges, shard_writer
from emnist_idx._prepare.pixel_stats import PixelHistogram
from emnist_idx._prepare.records import RecordEncoder
from emnist_idx._prepare.shard_identity import ShardIdentity

WORK_FILE_PREFIX = ".emnist_idx-beam-"  # the run's plan and outcome files, removed after it
_OUTCOME_NAME = f"{WORK_FILE_PREFIX}outcome.json"


@dataclasses.dataclass(frozen=True)
class ShardTask:
    """What one worker needs to write one shard (pickled into the pipeline: keep it small)."""

    split: str
    number: int
    path: str
    images: SourceFile
    plan: str  # the split's plan file: its labels and its images file's gzip seek index
    header_size: int
    start: int
    stop: int


@dataclasses.dataclass(frozen=True)
class ShardOutcome:
    """What a worker reports of the shard it wrote."""

    split: str
    number: int
    identity: ShardIdentity
    pixel_counts: list[int] | None  # train shards only


def write_splits(*, splits: Mapping[str, checks.CheckedSplit], encoder: RecordEncoder,
                 templates: Mapping[str, tfds.core.ShardedFileTemplate],
                 file_format: tfds.core.FileFormat,
                 beam_runner: object | None, beam_options: object | None,
                 ) -> tuple[list[tfds.core.SplitInfo], dict[str, list[ShardIdentity]],
                            PixelHistogram]:
    """Writes every split's shards in one Beam pipeline; returns the SplitInfos, each split's
    shard identities and the train split's pixel histogram. The runner is ``beam_runner``, else
    the one ``beam_options`` names (``--runner``, a name or a class path), else Beam's default
    (DirectRunner)."""
    import apache_beam as beam

    tasks: list[ShardTask] = []
    split_infos = []
    for name, split in splits.items():
        template = templates[name].replace(split=name)
        shards = shard_writer.plan_shards(split.count, encoder.record_size)
        paths = [template.sharded_filepath(shard_index=number, num_shards=len(shards))
                 for number in range(len(shards))]
        plan = epath.Path(paths[0]).parent / f"{WORK_FILE_PREFIX}{name}-plan.npz"
        _save_plan(plan, split)
        tasks += [ShardTask(name, number, os.fspath(path), split.images, os.fspath(plan),
                            split.header_size, start, stop)
                  for number, (path, (start, stop)) in enumerate(zip(paths, shards))]
        split_infos.append((name, template, shards, paths))
    outcome_path = epath.Path(tasks[0].path).parent / _OUTCOME_NAME
    with beam.Pipeline(runner=beam_runner, options=beam_options) as pipeline:
        _ = (pipeline
             | "ShardTasks" >> beam.Create(tasks)
             | "SpreadOverWorkers" >> beam.Reshuffle()
             | "WriteShard" >> beam.Map(functools.partial(write_shard, encoder=encoder,
                                                          file_format=file_format))
             | "GatherOutcomes" >> beam.combiners.ToList()
             | "SaveOutcomes" >> beam.Map(_save_outcomes, os.fspath(outcome_path)))
    identities, histogram = _load_outcomes(outcome_path, {
        name: [stop - start for start, stop in shards] for name, _, shards, _ in split_infos})
    for task in tasks:
        epath.Path(task.plan).unlink(missing_ok=True)
    infos = [tfds.core.SplitInfo(name=name, shard_lengths=[stop - start for start, stop in shards],
                                 num_bytes=sum(path.stat().length for path in paths),
                                 filename_template=template)
             for name, template, shards, paths in split_infos]
    return infos, identities, histogram


def write_shard(task: ShardTask, *, encoder: RecordEncoder, file_format: tfds.core.FileFormat
                ) -> ShardOutcome:
    """Writes one shard; returns its identity and, for train, the pixel counts of its images."""
    began = time.perf_counter()
    labels, index = _load_plan(task.plan)
    histogram = PixelHistogram() if task.split == "train" else None
    chunks = image_ranges.iter_upright_range(task.images, index, task.header_size,
                                             task.start, task.stop, shard_writer.RECORDS_PER_CHUNK)
    identity = shard_writer.write_shard(epath.Path(task.path), chunks,
                                        labels[task.start:task.stop], encoder, file_format,
                                        on_chunk=None if histogram is None else histogram.add)
    logging.info("emnist_idx: wrote %s (%d examples) in %.1f s in process %d", task.path,
                 task.stop - task.start, time.perf_counter() - began, os.getpid())
    return ShardOutcome(task.split, task.number, identity,
                        None if histogram is None else histogram.counts.tolist())


def _save_plan(path: epath.Path, split: checks.CheckedSplit) -> None:
    index = image_ranges.gzip_index(split.images)
    plan = io.BytesIO()  # whole, then written: object storage's files cannot seek while written
    np.savez(plan, labels=split.labels, gzip_index=np.frombuffer(index or b"", np.uint8),
             has_gzip_index=np.array(index is not None))
    path.write_bytes(plan.getvalue())


@functools.lru_cache(maxsize=2)  # a worker writes shards of one or two splits
def _load_plan(path: str) -> tuple[np.ndarray, bytes | None]:
    """A split's 0-based labels and its images file's gzip seek index (None: none needed)."""
    with epath.Path(path).open("rb") as stream, np.load(stream) as plan:
        labels, index = plan["labels"], plan["gzip_index"].tobytes()
        return labels, index if bool(plan["has_gzip_index"]) else None


def _save_outcomes(outcomes: Iterable[ShardOutcome], path: str) -> None:
    record = [{"split": outcome.split, "number": outcome.number,
               "identity": outcome.identity.as_json(), "pixel_counts": outcome.pixel_counts}
              for outcome in outcomes]
    epath.Path(path).write_text(json.dumps(record))


def _load_outcomes(path: epath.Path, shard_lengths: Mapping[str, list[int]]
                   ) -> tuple[dict[str, list[ShardIdentity]], PixelHistogram]:
    """Each split's shard identities in shard order, and the train split's pixel histogram; every
    shard must have reported exactly once, with as many records as planned."""
    record = json.loads(path.read_text())
    path.unlink()
    reported = {(entry["split"], entry["number"]): entry for entry in record}
    expected = {(split, number) for split, lengths in shard_lengths.items()
                for number in range(len(lengths))}
    if set(reported) != expected or len(reported) != len(record):
        raise RuntimeError(f"Beam's workers reported shards {sorted(reported)} "
                           f"({len(record)} reports), expected {sorted(expected)} once each")
    identities = {split: [ShardIdentity(**reported[split, number]["identity"])
                          for number in range(len(lengths))]
                  for split, lengths in shard_lengths.items()}
    for split, lengths in shard_lengths.items():
        found = [identity.count for identity in identities[split]]
        if found != lengths:
            raise RuntimeError(f"Beam's workers wrote {found} records in the {split} shards, "
                               f"expected {lengths}")
    counts = sum((np.array(entry["pixel_counts"], np.int64) for entry in record
                  if entry["pixel_counts"] is not None), np.zeros(256, np.int64))
    return identities, PixelHistogram.from_counts(counts)
