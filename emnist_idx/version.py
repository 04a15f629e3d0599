"""The emnist_idx version."""

__version__ = "0.1.0"
