"""Where ``load()``'s batches go: Keras's backend, TensorFlow's GPUs and the copy to a device.

``device="auto"`` (the default) under Keras's TensorFlow backend, with a GPU present, returns a
``PrefetchedToDevice``: two pipelines over the same uint8 batches (and the same in-memory cache).
Iterated directly (``model.fit(ds)``, ``for x, y in ds``), its batches cross to the GPU as uint8 (a
quarter of float32's bytes), are normalized there and arrive prefetched. Anything chained on it
(``.map``, ``.filter``, ``.take``, ``strategy.experimental_distribute_dataset``) composes with
its host pipeline instead: model-ready batches made on the host, so the chained functions run on
the host and the cardinality stays known, and Keras copies each chained batch to the GPU in its
train step (0.1 MB of uint8, 0.4 MB of float32 for 128 examples). A copy to a device must be a
pipeline's last stage (ops after it run on the device and lose the cardinality), which is why
"auto" keeps the copy out of what users compose with. Without a GPU "auto" returns the host
pipeline itself. With Keras on JAX or torch TensorFlow only reads data, so "auto" hides the GPUs
from it before anything initializes them (as TFDS advises JAX users): TensorFlow would otherwise
take most of their memory.

An explicit device (``device="/gpu:0"``) asks for the copy as the last stage: batches cross as
uint8 and are normalized on the device. With ``cache="device"`` the whole uint8 split is copied to
the device once (byclass: 547 MB of images) and only each batch's indices cross: the batch is
gathered and normalized on the device. That dataset reports its cardinality through a wrapper, not
through its ops, so nothing should be chained on it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf
from tensorflow.python.data.experimental.ops import prefetching_ops

from emnist_idx._pipeline import memory_cache, reading
from emnist_idx._pipeline.epochs import Epochs
from emnist_idx._pipeline.iteration import FlatBatches, SameOps
from emnist_idx._pipeline.reading import SplitSource

AUTO = "auto"
_TENSORFLOW = "tensorflow"


def keras_backend() -> str:
    """Keras's backend as Keras picks it, without importing Keras.

    An imported Keras answers itself (``keras.config.backend()``); otherwise the ``KERAS_BACKEND``
    environment variable, then the "backend" key of ``keras.json`` under ``KERAS_HOME`` (default
    ``~/.keras``), then "tensorflow", in Keras's own order.
    """
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "config"):
        return str(keras.config.backend())
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    config = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "keras.json"
    try:
        return str(json.loads(config.read_text())["backend"])
    except (OSError, ValueError, KeyError, TypeError):
        return _TENSORFLOW


def hide_gpus_from_tensorflow() -> bool:
    """Makes TensorFlow's GPUs invisible to it, unless its devices are initialized already.

    Listing physical devices does not initialize them (``list_logical_devices`` and any op do).
    Returns whether TensorFlow now sees no GPU.
    """
    if not tf.config.list_physical_devices("GPU"):
        return True
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # initialized before load() was called: too late to hide them
        return False
    return True


def target_device(device: str | None) -> str | None:
    """The device ``load()`` copies batches to as its last stage; None for "auto" and None.

    Under "auto" with a Keras backend other than TensorFlow, hides TensorFlow's GPUs first.
    """
    if device != AUTO:
        return device
    if keras_backend() != _TENSORFLOW:
        hide_gpus_from_tensorflow()
    return None


def auto_prefetch_device(device: str | None) -> str | None:
    """The GPU that ``device="auto"`` prefetches to when iterated directly, or None.

    A GPU only under Keras's TensorFlow backend (call after ``target_device``, which hides the GPUs
    under the others). Listing physical devices initializes none.
    """
    if device != AUTO or keras_backend() != _TENSORFLOW:
        return None
    return first_gpu()


def first_gpu() -> str | None:
    """"/gpu:0" when TensorFlow sees a GPU, else None."""
    return "/gpu:0" if tf.config.list_physical_devices("GPU") else None


def device_type(device: str) -> str:
    """"GPU", "CPU", ... for a device string such as "/gpu:0" ("CPU" when it names no type)."""
    return (tf.DeviceSpec.from_string(device).device_type or "CPU").upper()


def copied_to(batches: tf.data.Dataset, device: str,
              on_device: Callable[..., tuple] | None = None) -> tf.data.Dataset:
    """``batches`` copied to ``device`` as they are, then ``on_device`` mapped there, prefetched.

    The result must be the pipeline's last stage; it reports ``batches``' cardinality (the copy
    loses it). On a GPU the map is TensorFlow's ``map_on_gpu`` (the dataset ops after a copy must
    run where the tensors are); on another CPU device an ordinary map placed on it.
    """
    copied = batches.apply(prefetching_ops.copy_to_device(device))
    with tf.device(device):
        if on_device is not None:
            if device_type(device) == "GPU":
                copied = copied.apply(prefetching_ops.map_on_gpu(on_device))
            else:
                copied = copied.map(on_device)
        copied = copied.prefetch(1)
    return WithCardinality(copied, batches.cardinality())


def resident_batches(source: SplitSource, batch_size: int, device: str, *, shuffle: bool,
                     epochs: Epochs, drop_remainder: bool, transform: Callable[..., tuple]
                     ) -> tuple[tf.data.Dataset, Callable[[tf.Tensor], tuple]]:
    """One epoch of index batches (host) and the function making each batch on ``device``.

    The whole uint8 split is read now (not on first iteration) and copied to ``device`` once, as
    two variables. Only each batch's int64 indices cross per step (``copied_to``); the function
    gathers them from the variables and applies ``transform`` there. Raises MemoryError, naming the
    sizes, when the device cannot hold the split.
    """
    images, labels = reading.read_split(source)  # exactly the split, every record checked
    try:
        with tf.device(device):
            resident_images = tf.Variable(images, trainable=False, name="emnist_idx_images")
            resident_labels = tf.Variable(labels, trainable=False, name="emnist_idx_labels")
    except tf.errors.ResourceExhaustedError as exc:
        raise MemoryError(
            f"cache='device': {source.builder.info.full_name} split={source.split!r} needs "
            f"{memory_cache.cache_bytes(source.num_examples) / 1e6:,.0f} MB on {device}, which "
            "does not have them free; use cache=True (host memory) instead") from exc
    indices = memory_cache.each_epoch(
        source.num_examples, lambda order: tf.data.Dataset.from_tensor_slices(order).batch(
            batch_size, drop_remainder=drop_remainder), shuffle=shuffle, epochs=epochs)

    def gather(batch_indices: tf.Tensor) -> tuple:
        return transform(tf.gather(resident_images, batch_indices),
                         tf.gather(resident_labels, batch_indices))

    return indices, gather


_NOT_CHECKPOINTABLE = (
    "iterators of batches copied to a device (load(device='/gpu:0'), or device='auto' with a GPU) "
    "cannot be checkpointed: their prefetched batches live on the device; checkpoint an iterator "
    "of load(..., device=None) instead, whose batches Keras copies to the device itself")


class WithCardinality(FlatBatches):
    """A dataset reporting a cardinality its ops cannot: the copy to a device loses it.

    Keras reads ``cardinality()`` to count the steps of an epoch; without it the first epoch has
    no progress total and ends with a "ran out of data" warning. No op is added (an
    assert_cardinality after the copy would run on the host with a dataset made on the device).
    Python loops over it run through ``iteration.FlatIterator``, which refuses to be checkpointed
    (``NotCheckpointableError``).
    """

    def __init__(self, dataset: tf.data.Dataset, cardinality: tf.Tensor) -> None:
        self._cardinality = cardinality
        super().__init__(dataset, uncheckpointable=_NOT_CHECKPOINTABLE)

    def cardinality(self) -> tf.Tensor:
        return self._cardinality


class PrefetchedToDevice(SameOps):
    """The host pipeline, except that iterating it directly yields batches prefetched to a device.

    Its ops, ``cardinality()`` and anything chained on it are ``host``'s (model-ready batches made on
    the host). ``iter()`` in eager mode instead iterates ``host``'s uint8 batches copied to
    ``device`` and made model-ready there by ``on_device`` (see the module doc). Both read the same
    uint8 batches, hence the same in-memory cache.
    """

    def __init__(self, host: tf.data.Dataset, uint8_batches: tf.data.Dataset, device: str,
                 on_device: Callable[..., tuple]) -> None:
        self._uint8_batches, self._device, self._on_device = uint8_batches, device, on_device
        self._to_device: tf.data.Dataset | None = None  # made on first iteration
        super().__init__(host)

    @property
    def device(self) -> str:
        """Where directly iterated batches arrive."""
        return self._device

    def __iter__(self):
        if not tf.executing_eagerly():  # inside tf.function: the host pipeline's own ops
            return super().__iter__()
        if self._to_device is None:
            self._to_device = copied_to(self._uint8_batches, self._device, self._on_device)
        return iter(self._to_device)
