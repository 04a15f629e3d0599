"""emnist_idx: EMNIST for TensorFlow Datasets, validated, upright, named and fast.

``import emnist_idx`` registers the TFDS builder ``emnist_idx`` (configs byclass, bymerge, balanced,
letters, digits, mnist). ``load``, ``load_numpy`` and ``class_names`` import TensorFlow on first use.
"""

from typing import Any

from emnist_idx.emnist_idx_dataset_builder import Builder
from emnist_idx.errors import IdxFormatError
from emnist_idx._format.idx import IdxHeader, iter_idx, read_header, read_idx, write_idx
from emnist_idx._format.mapping import read_mapping
from emnist_idx.version import __version__

_PIPELINE_NAMES = ("class_names", "load", "load_numpy")

__all__ = [
    "Builder",
    "IdxFormatError",
    "IdxHeader",
    "__version__",
    "class_names",
    "iter_idx",
    "load",
    "load_numpy",
    "read_header",
    "read_idx",
    "read_mapping",
    "write_idx",
]


def __getattr__(name: str) -> Any:
    """Imports the tf.data pipeline (and so TensorFlow) only when one of its names is used."""
    if name in _PIPELINE_NAMES:
        from emnist_idx._pipeline import loading

        return getattr(loading, name)
    raise AttributeError(f"module 'emnist_idx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PIPELINE_NAMES))
