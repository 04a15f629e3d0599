"""Silencing the known, harmless start-up and read chatter of TensorFlow, TFDS and Beam.

Only these exact messages are dropped; every other warning and error still shows:

- TensorFlow's C++ INFO lines ("This TensorFlow binary is optimized...",
  TFRecordDataset's buffer size): ``TF_CPP_MIN_LOG_LEVEL=1`` when TensorFlow is not imported yet
  and the variable is unset (C++ warnings and errors still print; set it to 0 to see everything;
  the ``emnist-idx`` command uses 2);
- TFDS's "`FeatureConnector.dtype` is deprecated", logged by TFDS's own reading code;
- TFDS's "Variant folder ... has no dataset_info.json", logged before every first prepare;
- TFDS's "Dataset is an ordered dataset ... because `shuffle_files=True`", logged when
  ``tfds.load(..., shuffle_files=True)`` reads shards in a shuffled order, as asked (``Builder``);
- Beam's "apitools not found", logged when TFDS imports Beam (BigQuery is never used here).

Not ours to hide: TensorFlow's oneDNN banner ("oneDNN custom operations are on"), printed before
its logging starts, whatever ``TF_CPP_MIN_LOG_LEVEL`` says, on CPUs with AVX512_VNNI/BF16 or with
``TF_ENABLE_ONEDNN_OPTS=1``; turning oneDNN off would change numerics, so it stays as TensorFlow
chose. TFDS's "Downloading and preparing dataset Unknown size" line is replaced by the builder's own.
"""

from __future__ import annotations

import logging
import os
import sys

# (logger name, the start of the message as logged, before %-formatting)
_KNOWN_NOISE = (
    ("absl", "`FeatureConnector.dtype` is deprecated"),
    ("absl", "Variant folder %s has no %s"),
    ("absl", "Dataset is an ordered dataset ('disable_shuffling=True'), but examples will not be "
             "read in order because `shuffle_files=True`."),
    ("root", "apitools not found, and bigquery client libraries are not available"),
)


class _DropKnownNoise(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(self.prefixes))


LIBRARY_LEVEL = "1"  # TensorFlow's C++ INFO lines hidden; its warnings and errors print
CLI_LEVEL = "2"  # also its C++ warnings: the CLI reports every failure itself, in one line


def quiet_tensorflow_startup(level: str = LIBRARY_LEVEL) -> None:
    """Sets TensorFlow's C++ log level (``TF_CPP_MIN_LOG_LEVEL``), if TensorFlow is not imported
    yet and the user has not chosen a level."""
    if "tensorflow" not in sys.modules:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", level)


def drop_known_noise() -> None:
    """Adds (once) a filter for the known messages to the loggers that emit them."""
    for name in {name for name, _ in _KNOWN_NOISE}:
        logger = logging.getLogger() if name == "root" else logging.getLogger(name)
        if not any(isinstance(existing, _DropKnownNoise) for existing in logger.filters):
            logger.addFilter(_DropKnownNoise(
                tuple(prefix for logger_name, prefix in _KNOWN_NOISE if logger_name == name)))


def quiet() -> None:
    """Both of the above."""
    quiet_tensorflow_startup()
    drop_known_noise()
