"""numpy arrays handed to TensorFlow without a copy: aligned allocation and DLPack.

``tf.convert_to_tensor`` and a ``numpy_function``'s outputs copy every array into memory that
TensorFlow allocates itself. On these machines that copy runs at about 0.6 GB/s, not memcpy's
speed: every fresh 4 KB page faults, while numpy asks the kernel for huge pages. Filling byclass's
547 MB cache that way cost a second. A numpy array that is aligned as TensorFlow's kernels require
(64 bytes, Eigen's widest vectors) is instead adopted as it is through DLPack
(``tf.experimental.dlpack``): the tensor keeps the array alive and reads its memory.

Arrays of ``MAPPED_BYTES`` or more are their own anonymous memory maps (page-aligned), so that
freeing a split gives its memory back to the kernel at once. From malloc, after the first large
free glibc raises its mmap threshold (up to 32 MB) and keeps later freed splits in its heap: 20
dropped mnist-sized caches left RSS 102 MB above where it started, 11 MB as maps.
"""

from __future__ import annotations

import mmap

import numpy as np
import tensorflow as tf

# TensorFlow's kernels assume tensors start on this boundary (EIGEN_MAX_ALIGN_BYTES); one that
# does not aborts the process in the first kernel that checks, so nothing else is adopted.
ALIGNMENT = 64
MAPPED_BYTES = 1 << 20


def aligned_empty(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """An uninitialized C-contiguous array whose data starts on an ``ALIGNMENT``-byte boundary."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size >= MAPPED_BYTES:
        memory = mmap.mmap(-1, size)  # unmapped when the last array or tensor on it goes
        if hasattr(mmap, "MADV_HUGEPAGE"):  # as numpy advises for its large arrays
            memory.madvise(mmap.MADV_HUGEPAGE)
        return np.frombuffer(memory, dtype=dtype).reshape(shape)
    raw = np.empty(size + ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + size].view(dtype).reshape(shape)


def is_adoptable(array: np.ndarray) -> bool:
    """Whether ``as_tensor`` adopts ``array`` without a copy: C-contiguous, aligned, writeable."""
    return (array.flags.c_contiguous and array.flags.writeable
            and array.ctypes.data % ALIGNMENT == 0 and array.dtype.isnative)


def as_tensor(array: np.ndarray) -> tf.Tensor:
    """An eager CPU tensor holding ``array``: its own memory when adoptable, else a copy.

    The array must not be written afterwards: the tensor sees every change.
    """
    if is_adoptable(array):
        return tf.experimental.dlpack.from_dlpack(array.__dlpack__())
    return tf.convert_to_tensor(array)
