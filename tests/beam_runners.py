"""A Beam runner for tests that proves a pipeline really ran on it."""

from __future__ import annotations

import os

from apache_beam.runners.direct.direct_runner import DirectRunner

# Set to a file path: every pipeline run appends a line there (for runs in other processes).
RUN_LOG_VARIABLE = "EMNIST_IDX_TEST_RUNNER_LOG"


class RecordingRunner(DirectRunner):
    """DirectRunner that records each pipeline it runs: the transforms' labels, and the size of
    the pipeline as the runner receives it (Beam's proto, with every transform pickled in)."""

    runs: list[list[str]] = []
    proto_sizes: list[int] = []

    def run_pipeline(self, pipeline, options):
        labels = [transform.full_label for transform in pipeline.transforms_stack[0].parts]
        RecordingRunner.runs.append(labels)
        RecordingRunner.proto_sizes.append(pipeline.to_runner_api().ByteSize())
        if log := os.environ.get(RUN_LOG_VARIABLE):
            with open(log, "a", encoding="utf-8") as stream:
                stream.write(",".join(labels) + "\n")
        return super().run_pipeline(pipeline, options)
