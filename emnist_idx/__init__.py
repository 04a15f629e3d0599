"""emnist_idx: EMNIST for TensorFlow Datasets, validated, upright, named and fast.

``import emnist_idx`` registers the TFDS builder ``emnist_idx`` (configs byclass, bymerge, balanced,
letters, digits, mnist) without importing TensorFlow, and so does ``Source`` (random access to a
prepared split). ``load``, ``load_data``, ``load_numpy``
and ``show_examples`` import it on first use; type checkers see their signatures
through the imports under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from emnist_idx.emnist_idx_dataset_builder import Builder
from emnist_idx.errors import IdxFormatError, NotCheckpointableError, PreparedDataError
from emnist_idx._format.idx import IdxHeader, iter_idx, read_header, read_idx, write_idx
from emnist_idx._format.mapping import read_mapping
from emnist_idx.configs import class_names
from emnist_idx.source import Source
from emnist_idx.version import __version__

if TYPE_CHECKING:
    from emnist_idx._pipeline.arrays import load_data
    from emnist_idx._pipeline.loading import load, load_numpy
    from emnist_idx.visualization import show_examples

# Names whose modules import TensorFlow: loaded from these modules on first use.
_LAZY = {
    "load": "emnist_idx._pipeline.loading",
    "load_numpy": "emnist_idx._pipeline.loading",
    "load_data": "emnist_idx._pipeline.arrays",
    "show_examples": "emnist_idx.visualization",
}

__all__ = [
    "Builder",
    "IdxFormatError",
    "IdxHeader",
    "NotCheckpointableError",
    "PreparedDataError",
    "Source",
    "__version__",
    "class_names",
    "iter_idx",
    "load",
    "load_data",
    "load_numpy",
    "read_header",
    "read_idx",
    "read_mapping",
    "show_examples",
    "write_idx",
]


def __getattr__(name: str) -> Any:
    """Imports the module of a TensorFlow-using name only when that name is used."""
    if name in _LAZY:
        from emnist_idx._pipeline import quiet

        quiet.quiet()  # before TensorFlow is imported: its C++ start-up lines depend on it
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emnist_idx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
