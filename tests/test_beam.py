"""Preparing on Beam: a real pipeline on the runner asked for, each split written once, in bulk,
with the same bytes as the bulk path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from apache_beam.options.pipeline_options import PipelineOptions
from etils import epath

from emnist_idx import configs, synthetic
from emnist_idx._format.idx import write_idx
from emnist_idx._format.sources import SourceFile, find_config_files
from emnist_idx._prepare import beam_writer, checks, image_ranges
from tests.beam_runners import RUN_LOG_VARIABLE, RecordingRunner
from tests.bundle_factory import DUMMY_DATA, DUMMY_GZIP, REPO
from tests.test_same_bytes import shard_hashes

PIPELINE = ["ShardTasks", "SpreadOverWorkers", "WriteShard", "GatherOutcomes", "SaveOutcomes"]


def _prepare(data_dir: Path, config: str = "digits", manual_dir: Path = DUMMY_GZIP,
             **beam) -> tfds.core.DatasetBuilder:
    builder = tfds.builder(f"emnist_idx/{config}", data_dir=str(data_dir))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(manual_dir), **beam))
    return builder


@pytest.fixture(scope="module")
def bulk(tmp_path_factory: pytest.TempPathFactory) -> tfds.core.DatasetBuilder:
    return _prepare(tmp_path_factory.mktemp("bulk"))


def _assert_same_dataset(beam: tfds.core.DatasetBuilder, bulk: tfds.core.DatasetBuilder) -> None:
    assert shard_hashes(Path(beam.data_dir)) == shard_hashes(Path(bulk.data_dir))
    assert len(shard_hashes(Path(beam.data_dir))) == 2
    assert beam.info.metadata == bulk.info.metadata
    assert {name: split.shard_lengths for name, split in beam.info.splits.items()} == \
        {name: split.shard_lengths for name, split in bulk.info.splits.items()}
    assert [split.num_bytes for split in beam.info.splits.values()] == \
        [split.num_bytes for split in bulk.info.splits.values()]
    assert not list(Path(beam.data_dir).glob(f"{beam_writer.WORK_FILE_PREFIX}*"))


@pytest.mark.parametrize("how", [pytest.param("options-class-path", marks=pytest.mark.slow),
                                 "runner-object"])
def test_beam_runs_one_pipeline_for_every_split_on_the_runner_asked_for(
        tmp_path: Path, bulk: tfds.core.DatasetBuilder, how: str) -> None:
    RecordingRunner.runs.clear()
    if how == "options-class-path":  # as `tfds build --beam_pipeline_options=runner=...` gives
        beam = {"beam_options": PipelineOptions([f"--runner={RecordingRunner.__module__}."
                                                 f"{RecordingRunner.__name__}"])}
    else:
        beam = {"beam_runner": RecordingRunner()}
    builder = _prepare(tmp_path, **beam)
    assert RecordingRunner.runs == [PIPELINE]  # one pipeline, run once
    _assert_same_dataset(builder, bulk)


def test_the_pipeline_does_not_grow_with_the_data(tmp_path: Path) -> None:
    """Beam pickles and bz2-compresses Create's values into the pipeline, for every runner it
    tries and again in every worker: a split's labels and seek index stay out of it (they made
    byclass's Beam prepare 2x slower and its workers 150 MB bigger)."""
    sizes = []
    for train_count in (40, 20_000):
        bundle = synthetic.write_bundle(tmp_path / f"bundle-{train_count}",
                                        {"digits": (train_count, 40)}, make_zip=False,
                                        compresslevel=1)
        RecordingRunner.proto_sizes.clear()
        builder = _prepare(tmp_path / f"data-{train_count}", manual_dir=bundle,
                           beam_runner=RecordingRunner())
        assert builder.info.splits["train"].num_examples == train_count
        sizes += RecordingRunner.proto_sizes
    assert len(sizes) == 2 and abs(sizes[1] - sizes[0]) < 2_000, sizes  # 20k labels: 20 KB


def test_without_beam_no_pipeline_runs(tmp_path: Path) -> None:
    RecordingRunner.runs.clear()
    _prepare(tmp_path)
    assert RecordingRunner.runs == []


@pytest.mark.slow
def test_tfds_build_with_beam_pipeline_options_runs_beam_with_two_workers(
        tmp_path: Path, bulk: tfds.core.DatasetBuilder) -> None:
    """The command line, DirectRunner's multi_processing mode with 2 worker processes, under
    another hash seed than this process: same bytes as the bulk prepare here."""
    log = tmp_path / "runs.log"
    options = ("runner=tests.beam_runners.RecordingRunner,direct_num_workers=2,"
               "direct_running_mode=multi_processing")
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "3",
           RUN_LOG_VARIABLE: str(log)}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("tfds")), "build", "emnist_idx", "--imports",
         "emnist_idx", "--config", "digits", "--manual_dir", str(DUMMY_GZIP), "--data_dir",
         str(tmp_path / "data"), f"--beam_pipeline_options={options}"],
        env=env, capture_output=True, text=True, timeout=600, check=False, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    assert log.read_text().splitlines() == [",".join(PIPELINE)]
    beam = tfds.builder("emnist_idx/digits", data_dir=str(tmp_path / "data"))
    _assert_same_dataset(beam, bulk)


# --- reading a shard's images without reading the ones before ---

def _sources(tmp_path: Path) -> dict[str, SourceFile]:
    """digits' train images as a loose .gz, a stored and a deflated zip member, a raw IDX file."""
    loose = find_config_files("digits", [DUMMY_GZIP]).images["train"]
    stored = find_config_files("digits", [DUMMY_DATA / "gzip.zip"]).images["train"]
    assert stored.member and zipfile.ZipFile(stored.path).getinfo(stored.member).compress_type \
        == zipfile.ZIP_STORED
    deflated_zip = tmp_path / "deflated.zip"
    with zipfile.ZipFile(deflated_zip, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.write(loose.path, "gzip/" + loose.path.name)
    raw = tmp_path / configs.image_file("digits", "train").removesuffix(".gz")
    write_idx(raw, np.concatenate(list(checks.iter_upright(loose, 0, 40, 64))).transpose(0, 2, 1))
    return {"loose": loose, "stored": stored, "raw": SourceFile(raw),
            "deflated": SourceFile(deflated_zip, "gzip/" + loose.path.name)}


@pytest.mark.parametrize("shape", ["loose", "stored", "raw", "deflated", "no-indexed_gzip"])
def test_every_range_reads_the_images_streaming_reads(tmp_path: Path, shape: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    if shape == "no-indexed_gzip":  # the beam extra not installed: streamed from the start
        monkeypatch.setitem(sys.modules, "indexed_gzip", None)
    source = _sources(tmp_path)["loose" if shape == "no-indexed_gzip" else shape]
    expected = np.concatenate(list(checks.iter_upright(source, 0, 40, 64)))
    index = image_ranges.gzip_index(source)
    assert (index is None) == (shape in ("raw", "deflated", "no-indexed_gzip"))
    header_size = checks.check_image_header(source).size
    for start, stop in [(0, 40), (13, 38), (39, 40), (5, 5)]:
        chunks = list(image_ranges.iter_upright_range(source, index, header_size, start, stop, 7))
        got = np.concatenate(chunks) if chunks else np.empty((0, 28, 28), np.uint8)
        np.testing.assert_array_equal(got, expected[start:stop])
        assert all(len(chunk) <= 7 for chunk in chunks)


def test_a_range_past_the_file_s_end_names_the_file(tmp_path: Path) -> None:
    source = _sources(tmp_path)["loose"]
    index = image_ranges.gzip_index(source)
    with pytest.raises(Exception, match=str(source.path.name)) as raised:
        list(image_ranges.iter_upright_range(source, index, 16, 30, 45, 64))
    assert "expected 45 images" in str(raised.value)


# --- what the workers report ---

def _report(split: str, number: int, count: int) -> dict:
    return {"split": split, "number": number, "pixel_counts": None,
            "identity": {"count": count, "first_crc": 1, "last_crc": 2, "sha256": "0" * 64}}


@pytest.mark.parametrize("reports, message", [
    ([_report("train", 0, 5)], "expected .* once each"),  # shard 1 never reported
    ([_report("train", 0, 5), _report("train", 1, 3), _report("train", 1, 3)], "3 reports"),
    ([_report("train", 0, 5), _report("train", 1, 2)], r"wrote \[5, 2\] records"),
])
def test_missing_repeated_or_short_shards_are_refused(tmp_path: Path, reports: list[dict],
                                                      message: str) -> None:
    outcome = tmp_path / "outcome.json"
    outcome.write_text(json.dumps(reports))
    with pytest.raises(RuntimeError, match=message):
        beam_writer._load_outcomes(epath.Path(outcome), {"train": [5, 3]})


def test_the_reports_give_identities_in_shard_order_and_the_train_pixel_counts(
        tmp_path: Path) -> None:
    reports = [dict(_report("train", 1, 3), pixel_counts=[1] * 256), _report("test", 0, 4),
               dict(_report("train", 0, 5), pixel_counts=[2] * 256)]
    outcome = tmp_path / "outcome.json"
    outcome.write_text(json.dumps(reports))
    identities, histogram = beam_writer._load_outcomes(epath.Path(outcome),
                                                       {"train": [5, 3], "test": [4]})
    assert [identity.count for identity in identities["train"]] == [5, 3]
    assert [identity.count for identity in identities["test"]] == [4]
    assert histogram.counts.tolist() == [3] * 256
    assert not outcome.exists()  # the driver removes the run's files
