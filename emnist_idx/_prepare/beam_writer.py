"""Preparing on Apache Beam: one pipeline for every split, one task per shard, written in bulk.

TFDS's ``SplitBuilder`` reuses one Beam pipeline for every split and re-runs the earlier splits'
transforms when it is entered again (train was written twice), and its per-example writer runs a
shard's generator in one worker. Here one pipeline holds every shard of every split: ``Create`` of
the shard tasks, ``Reshuffle`` (so that the runner spreads them over its workers), and a ``Map``
that seeks to the shard's first image (``image_ranges``) and writes the shard's file with the bulk
framing (``shard_writer.write_shard``). The train shards also count their pixels; the counts are
summed by ``CombineGlobally`` and written beside the shards for the driver, which removes them.
"""

from __future__ import annotations

import dataclasses
import functools
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

PIXEL_COUNTS_NAME = ".emnist_idx-train-pixel-counts.npy"  # beside the shards; removed after the run


@dataclasses.dataclass(frozen=True)
class ShardTask:
    """Everything one worker needs to write one shard (pickled to the worker)."""

    split: str
    path: str
    images: SourceFile
    gzip_index: bytes | None
    header_size: int
    start: int
    stop: int
    labels: np.ndarray  # the shard's labels, 0-based


def write_splits(*, splits: Mapping[str, checks.CheckedSplit], encoder: RecordEncoder,
                 templates: Mapping[str, tfds.core.ShardedFileTemplate],
                 file_format: tfds.core.FileFormat,
                 beam_runner: object | None, beam_options: object | None,
                 ) -> tuple[list[tfds.core.SplitInfo], PixelHistogram]:
    """Writes every split's shards in one Beam pipeline; returns the SplitInfos and the train
    split's pixel histogram. The runner is ``beam_runner``, else the one ``beam_options`` names
    (``--runner``, a name or a class path), else Beam's default (DirectRunner)."""
    import apache_beam as beam

    tasks: list[ShardTask] = []
    split_infos = []
    for name, split in splits.items():
        template = templates[name].replace(split=name)
        shards = shard_writer.plan_shards(split.count, encoder.record_size)
        index = image_ranges.gzip_index(split.images)
        header_size = checks.check_image_header(split.images).size
        paths = [template.sharded_filepath(shard_index=number, num_shards=len(shards))
                 for number in range(len(shards))]
        tasks += [ShardTask(name, str(path), split.images, index, header_size, start, stop,
                            split.labels[start:stop])
                  for path, (start, stop) in zip(paths, shards)]
        split_infos.append((name, template, shards, paths))
    counts_path = epath.Path(tasks[0].path).parent / PIXEL_COUNTS_NAME
    with beam.Pipeline(runner=beam_runner, options=beam_options) as pipeline:
        _ = (pipeline
             | "ShardTasks" >> beam.Create(tasks)
             | "SpreadOverWorkers" >> beam.Reshuffle()
             | "WriteShard" >> beam.Map(functools.partial(write_shard, encoder=encoder,
                                                          file_format=file_format))
             | "SumTrainPixelCounts" >> beam.CombineGlobally(_sum_counts)
             | "SaveCounts" >> beam.Map(_save_counts, str(counts_path)))
    histogram = PixelHistogram.from_counts(_load_counts(counts_path))
    infos = [tfds.core.SplitInfo(name=name, shard_lengths=[stop - start for start, stop in shards],
                                 num_bytes=sum(path.stat().length for path in paths),
                                 filename_template=template)
             for name, template, shards, paths in split_infos]
    return infos, histogram


def write_shard(task: ShardTask, *, encoder: RecordEncoder, file_format: tfds.core.FileFormat
                ) -> np.ndarray:
    """Writes one shard; returns the pixel counts of its images (train) or zeros (other splits)."""
    began = time.perf_counter()
    histogram = PixelHistogram()
    chunks = image_ranges.iter_upright_range(task.images, task.gzip_index, task.header_size,
                                             task.start, task.stop, shard_writer.RECORDS_PER_CHUNK)
    shard_writer.write_shard(epath.Path(task.path), chunks, task.labels, encoder, file_format,
                             on_chunk=histogram.add if task.split == "train" else None)
    logging.info("emnist_idx: wrote %s (%d examples) in %.1f s in process %d", task.path,
                 task.stop - task.start, time.perf_counter() - began, os.getpid())
    return histogram.counts


def _sum_counts(counts: Iterable[np.ndarray]) -> np.ndarray:
    return functools.reduce(np.add, counts, np.zeros(256, dtype=np.int64))


def _save_counts(counts: np.ndarray, path: str) -> None:
    with epath.Path(path).open("wb") as stream:
        np.save(stream, counts)


def _load_counts(path: epath.Path) -> np.ndarray:
    with path.open("rb") as stream:
        counts = np.load(stream)
    path.unlink()
    return counts
