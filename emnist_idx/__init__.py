"""emnist_idx: EMNIST for TensorFlow Datasets, validated, upright, named and fast.

``import emnist_idx`` registers the TFDS builder ``emnist_idx`` (configs byclass, bymerge, balanced,
letters, digits, mnist).
"""

from emnist_idx.emnist_idx_dataset_builder import Builder
from emnist_idx.errors import IdxFormatError
from emnist_idx.idx import IdxHeader, iter_idx, read_header, read_idx, write_idx
from emnist_idx.mapping import read_mapping
from emnist_idx.version import __version__

__all__ = [
    "Builder",
    "IdxFormatError",
    "IdxHeader",
    "__version__",
    "iter_idx",
    "read_header",
    "read_idx",
    "read_mapping",
    "write_idx",
]
