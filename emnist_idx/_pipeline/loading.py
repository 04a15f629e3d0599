"""``load()``: EMNIST as a model-ready tf.data pipeline and ``load_numpy()``.

``load()`` composes small stages in pipeline order: prepare, resolve the split (and this input
pipeline's share), read (from the in-memory cache or streamed from the files, optionally through the
tf.data service), normalize, count, repeat, prefetch; copied to a device last when one is asked for,
or, under "auto" with a GPU, prefetched to it when the result is iterated directly. Python loops over
the result run through ``iteration.FlatIterator``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from emnist_idx import configs
from emnist_idx._pipeline import (batching, devices, iteration, memory_cache, normalization,
                                  reading, splits)
from emnist_idx._pipeline.batching import no_autograph
from emnist_idx._pipeline.epochs import Epochs
from emnist_idx._pipeline.reading import SplitSource
from emnist_idx._pipeline.preparing import prepared_builder

_MAX_BATCH_SIZE = 2**31 - 1  # tf.data's batch sizes are int64, but tensors index with int32
_UNBATCHED_READ_SIZE = 1024  # examples read and normalized together for batch_size=None
_SERVICE_NOT_CHECKPOINTABLE = (
    "load(service=...)'s iterators cannot be checkpointed: the tf.data service's workers hand out "
    "pieces on demand and keep no position this process could save; save the model and restart "
    "the epoch instead")


def load(
    config: str = configs.DEFAULT_CONFIG,
    split: splits.SplitArg | Sequence[splits.SplitArg] = "train",
    *,
    batch_size: int | None = 128,
    normalize: str = "scale",
    one_hot: bool = False,
    shuffle: bool | None = None,
    seed: int | None = None,
    cache: bool | str = "auto",
    drop_remainder: bool = False,
    repeat: bool = False,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    download: bool = True,
    device: str | None = "auto",
    input_context: tf.distribute.InputContext | None = None,
    service: str | None = None,
) -> tf.data.Dataset:  # a list of them for a list of splits (tf.data is untyped: Any)
    """Loads an EMNIST split as batches ready for ``model.fit``.

    The dataset is prepared first if it is not yet in ``data_dir`` (like ``tfds.load``). The split's
    TFRecord shards (TFDS's file instructions, slices included) are read in parallel and parsed
    16,384 records per op, not one example at a time as ``tfds.load`` does; the uint8 examples are
    kept in memory when they fit. A
    dataset prepared as array_record is read through ``builder.as_data_source`` instead: the same
    examples, fetched in Python, so slower, and not through ``service``.

    Args:
      config: EMNIST split: "byclass", "bymerge", "balanced" (default), "letters", "digits" or
        "mnist".
      split: "train" or "test", with TFDS slicing: "train[:90%]", "train[90%:]", "test[:1000]",
        "train+test"; or a ``tfds.core.ReadInstruction``; or a list of these, which gives a list
        of datasets, one per split, as ``tfds.load`` does. Out-of-range and malformed slices raise
        ValueError with TFDS's own words ("percent slice boundaries should be in [-100, 100]").
      batch_size: examples per batch; the global batch size when ``input_context`` is given.
        None: single ``(image, label)`` examples, as ``tfds.load(..., batch_size=None)`` gives
        them, normalized as ``normalize`` says (image (28, 28, 1)); read and normalized in batches
        all the same, on the host (``device`` None or "auto"), without ``drop_remainder`` or
        ``input_context``.
      normalize: how images become model inputs. "scale": float32 ``x / 255`` in [0, 1] (default).
        "standardize": float32 ``(x / 255 - mean) / std`` with the train split's pixel mean and std
        from ``builder.info.metadata`` (mean 0 and std 1 over the train split). "l2": float32, each
        pixel column (the 28 pixels along the height axis) scaled to unit L2 norm, zero columns left
        zero: ``tf.keras.utils.normalize(x, axis=1)`` on (N, 28, 28) as the seed article uses it;
        values in [0, 1]. "none": the stored uint8 pixels, 0 (background) to 255 (ink).
      one_hot: labels as float32 one-hot rows of the config's class count instead of int64 ids.
      shuffle: shuffle the examples; defaults to True when ``split`` draws on "train" (so
        "train[90%:]" too) and False otherwise, which keeps file order. Every epoch has a new
        order: from the cache, a permutation of the whole split; streamed, pieces of 16,384
        records in a new order, 4 interleaved, each chunk of 16,384 examples permuted.
      seed: makes the shuffled order the same in every run (each epoch still differs from the
        last): epoch ``e``'s order is a stateless function of ``(seed, e)``. Not reproducible
        through ``service``.
      cache: "auto" (default) keeps the split's uint8 images (784 bytes an example, never float32)
        and labels in memory when they take at most a quarter of the memory available now (psutil,
        else sysconf); ``load()`` starts reading the split into it in the background, the first
        epoch waits for that read, and every epoch gathers shuffled batches from it. True always
        caches, False always streams from the files. "device" (with a ``device`` string such as
        "/gpu:0"): the whole uint8 split is read when ``load()`` is called and kept on that device
        (byclass: 547 MB); each batch is gathered and normalized there and only its indices
        cross. MemoryError when the device cannot hold it.
      drop_remainder: drop the last batch when it is smaller than ``batch_size``.
      repeat: repeat forever (infinite cardinality); otherwise one epoch per iteration with a known
        cardinality of ceil(examples / batch_size) batches (floor with ``drop_remainder``).
      data_dir: TFDS data directory (default: TFDS's, ``~/tensorflow_datasets``).
      manual_dir: where NIST's files are (``gzip.zip``, its ``gzip/`` folder or the loose files)
        when the dataset has to be prepared; without it they are downloaded.
      download: prepare the dataset when it is not prepared yet. With False and nothing prepared,
        raises FileNotFoundError.
      device: where batches end up. "auto" (default): with Keras's TensorFlow backend and a GPU,
        iterating the result directly (``model.fit(ds)``, ``for x, y in ds``) prefetches batches
        to the GPU: they cross as uint8 and are normalized there. Anything chained on the result
        (``.map``, ``.filter``, ``.take``...) composes with its host pipeline instead: the chained
        functions get model-ready batches on the host, the cardinality stays known, and Keras
        copies each batch to the GPU in its train step. tf.distribute strategies
        (``input_context``, ``strategy.scope()``) place batches on their devices themselves.
        Without a GPU the result is the host pipeline. When Keras's backend is not TensorFlow
        (``KERAS_BACKEND``, read without importing Keras), "auto" never copies and hides the GPUs
        from TensorFlow before anything initializes them, so TensorFlow takes none of the memory
        JAX or torch needs. None: on the host, a plain pipeline. A
        device string such as "/gpu:0" or "/cpu:1": batches cross to it as uint8 (a quarter of
        float32's bytes) and are normalized and one-hot encoded there, prefetched; that copy must
        be the last stage (chain nothing on this result: ops after a device copy lose the
        cardinality, which this result reports through a wrapper, and run on the device).
      input_context: a ``tf.distribute.InputContext``, as passed by
        ``strategy.distribute_datasets_from_function(lambda ctx: load(..., input_context=ctx))``
        (MirroredStrategy, MultiWorkerMirroredStrategy), for custom training loops. This pipeline
        then reads only its equal, disjoint share of the split (``tfds.even_splits(...,
        drop_remainder=True)``, so every worker runs the same number of steps) and batches
        ``input_context.get_per_replica_batch_size(batch_size)`` examples. For Keras, use
        ``model.fit(load(...))`` under ``strategy.scope()`` instead: Keras splits the global
        batches and runs exactly the steps it announces, whereas Keras 3 takes a distributed
        dataset's per-replica cardinality as its step count (twice too many with 2 replicas, then
        "Your input ran out of data").
      service: address of a tf.data service dispatcher, e.g. "grpc://host:port". The service's
        workers read and parse the files (they must see ``data_dir`` under the same path) and
        send uint8 chunks; this process batches, normalizes and prefetches them. Sharding policy
        ``DYNAMIC``: the dispatcher hands out pieces of up to 16,384 records to workers as they
        ask, so each epoch reads each example once (at most once if a worker fails). Nothing is
        cached, so no split's data is ever sent to workers. The cardinality is then unknown (not
        asserted), the order is not reproducible, and pieces are handed out in file order, so
        shuffling permutes each chunk of 16,384 records (from 4 pieces).

    Returns:
      A ``tf.data.Dataset`` of ``(images, labels)`` batches (a list of them for a list of
      splits; single examples for ``batch_size=None``). ``images``: (B, 28, 28, 1), upright,
      float32 (uint8 with ``normalize="none"``). ``labels``: (B,) int64 class ids in
      ``[0, len(class_names(config)))``, or (B, num_classes) float32 one-hot rows. B is
      ``batch_size`` except for a smaller last batch. A Python loop over it (``for x, y in ds``,
      ``iter(ds)``) runs through a ``FlatIterator``: TensorFlow's iterator minus about two thirds
      of its per-batch cost, checkpointable as a position (below).

    Raises:
      ValueError: an argument is not one of its accepted values (the message lists them), the
        split does not exist or selects no examples.
      TypeError: ``split`` is not a string.
      FileNotFoundError: the dataset is not prepared and ``download=False``, or NIST's files are
        neither in ``manual_dir`` nor downloadable.

    Example:

    ```python
    train = emnist_idx.load("balanced", "train[:90%]", seed=0)
    val = emnist_idx.load("balanced", "train[90%:]", shuffle=False)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(len(emnist_idx.class_names("balanced")), activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train, validation_data=val, epochs=5)
    ```

    When the split is cached, ``load()`` starts reading it in a background thread as it returns,
    so the read overlaps whatever runs before the first iteration, which waits for it (a damaged
    record raises there). Streamed datasets read the files on every epoch: those must stay where
    TFDS wrote them.

    Checkpoints: ``tf.train.Checkpoint(iterator=iter(ds))`` saves an iterator of the result
    itself at any point (cached, "auto" or streamed, with ``repeat`` too) as three integers (the
    base seed, the epoch, the elements served in it: under 1 KB, never the split); restored into an
    iterator of a ``load()`` with the same arguments, it yields exactly the elements the saved one
    would have yielded next, and later ``iter()`` calls of that result continue with the following
    epochs. Each epoch's order is a stateless function of the seed and the epoch number, so
    restoring replays the saved epoch's order and skips the elements already served (they are
    read again, not yielded). Exact for file order and with a ``seed``; with ``seed=None`` the
    checkpoint carries the random base seed, which the cached path replays exactly, while the
    streamed path reads pieces in whichever order they finish. ``NotCheckpointableError`` on
    save: iterators of ``service`` pipelines (the service's workers keep the position) and of
    batches copied to a device (a ``device`` string, or "auto" with a GPU: use ``device=None``
    to checkpoint). Iterators of datasets chained on the result (``ds.map(...)``) are
    TensorFlow's own, whose checkpoint fails on the epoch counter's state.

    The result, what is chained on it and their iterators keep the cached split; when the last
    of them is garbage-collected the split is freed, and a background read that has not finished
    stops at its next piece of 16,384 records. Ctrl-C, SIGTERM or the end of the script in the
    middle of an epoch is safe: at exit, before Python finalizes, the pipelines' Python readers
    are refused new work and the exit waits (at most 2 s) until none is running.
    """
    arguments = dict(locals())
    if isinstance(split, (list, tuple)):  # tfds.load's convention: a dataset per split
        return [load(**{**arguments, "split": part}) for part in split]
    if batch_size is None:
        return _examples(arguments)
    _check_arguments(config=config, batch_size=batch_size, normalize=normalize, seed=seed,
                     cache=cache, service=service, device=device, input_context=input_context)
    _check_bool(one_hot=one_hot, drop_remainder=drop_remainder, repeat=repeat, download=download)
    if shuffle is not None:
        _check_bool(shuffle=shuffle)
    # First, before any op initializes TensorFlow's devices: "auto" hides GPUs from it under JAX.
    target = devices.target_device(device)
    # tf.distribute places an input_context pipeline's batches on its replicas' devices itself.
    prefetch_to = devices.auto_prefetch_device(device) if input_context is None else None
    builder = prepared_builder(config, data_dir=data_dir, manual_dir=manual_dir,
                               download=download)
    source = reading.split_source(builder, split, input_context)
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    if shuffle is None:
        shuffle = "train" in splits.split_names(builder, split)
    steps = batching.num_batches(source.num_examples, batch_size, drop_remainder)
    if steps == 0:
        raise ValueError(f"split={source.split!r} has {source.num_examples} examples, fewer than "
                         f"batch_size={batch_size}, and drop_remainder=True leaves no batch")
    model_ready = _model_ready(builder, normalize, one_hot)
    epochs = Epochs(seed)  # each epoch's order: a stateless function of (seed, epoch)
    if cache == "device" and target is not None:  # the split kept on the device: indices cross
        batches, on_device = devices.resident_batches(
            source, batch_size, target, shuffle=shuffle, epochs=epochs,
            drop_remainder=drop_remainder, transform=model_ready)
    else:  # copied to a device, batches cross as uint8 and become model-ready there
        on_host = target is None and prefetch_to is None
        batches = _read_batches(source, batch_size, model_ready if on_host else None,
                                shuffle=shuffle, seed=seed, epochs=epochs, cache=cache,
                                drop_remainder=drop_remainder, service=service)
        on_device = model_ready
    if service is None:  # through the service the count is only "at most once" per example
        batches = batches.apply(tf.data.experimental.assert_cardinality(steps))
    if repeat:
        batches = batches.repeat()
    batches = batches.with_options(_options(input_context)).prefetch(tf.data.AUTOTUNE)
    if target is not None:
        return devices.copied_to(batches, target, no_autograph(on_device))
    if prefetch_to is None:
        if service is not None:
            return iteration.FlatBatches(batches, uncheckpointable=_SERVICE_NOT_CHECKPOINTABLE)
        return iteration.FlatBatches(batches, iteration.Progress(epochs, steps, repeat))
    host = batches.map(no_autograph(model_ready), num_parallel_calls=tf.data.AUTOTUNE,
                       deterministic=True).prefetch(tf.data.AUTOTUNE)
    return devices.PrefetchedToDevice(host, batches, prefetch_to, no_autograph(model_ready))


def load_numpy(
    config: str = configs.DEFAULT_CONFIG,
    split: splits.SplitArg = "train",
    *,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    download: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Loads one EMNIST split, or a TFDS slice of it, as numpy arrays in TFDS's layout.

    For ``keras.datasets``' convention (both splits, (N, 28, 28) images, uint8 labels) use
    ``load_data()``; this keeps the channel axis and int64 labels, as ``tfds.load`` gives them.

    Args:
      config: EMNIST split, as for ``load()``.
      split: "train" or "test", with TFDS's slicing ("train[:10%]", "test[100:200]").
      data_dir: TFDS data directory, as for ``load()``.
      manual_dir: where NIST's files are, as for ``load()``.
      download: prepare the dataset when it is not prepared yet, as for ``load()``.

    Returns:
      ``(x, y)`` in file order: ``x`` uint8 (N, 28, 28, 1), upright, 0 (background) to 255 (ink);
      ``y`` int64 (N,) class ids in ``[0, len(class_names(config)))``.

    Example:

    ```python
    x_train, y_train = emnist_idx.load_numpy("digits", "train")
    ```
    """
    configs.check_config(config)
    _check_bool(download=download)
    source = reading.split_source(
        prepared_builder(config, data_dir=data_dir, manual_dir=manual_dir, download=download),
        split)
    return reading.read_split(source)


def _examples(arguments: dict) -> tf.data.Dataset:
    """``load(**arguments)`` with ``batch_size=None``: its batches, unbatched, with their count."""
    if arguments["drop_remainder"] or arguments["input_context"] is not None or arguments[
            "device"] not in (None, "auto"):
        raise ValueError("batch_size=None gives single examples on the host: it cannot be "
                         "combined with drop_remainder=True, input_context or a device")
    batches = load(**{**arguments, "batch_size": _UNBATCHED_READ_SIZE, "device": None})
    examples = batches.unbatch()
    if arguments["service"] is not None:
        return iteration.FlatBatches(examples, uncheckpointable=batches.uncheckpointable)
    builder = prepared_builder(arguments["config"], data_dir=arguments["data_dir"],
                               download=False)
    per_epoch = splits.split_info(builder, arguments["split"]).num_examples
    if not arguments["repeat"]:
        examples = examples.apply(tf.data.experimental.assert_cardinality(per_epoch))
    return iteration.FlatBatches(examples, iteration.Progress(
        batches.progress.epochs, per_epoch, arguments["repeat"]))


# --- stages, in pipeline order ---

def _read_batches(source: SplitSource, batch_size: int, model_ready: Callable[..., tuple] | None,
                  *, shuffle: bool, seed: int | None, epochs: Epochs, cache: bool | str,
                  drop_remainder: bool, service: str | None) -> tf.data.Dataset:
    """One epoch of batches, from the cache or streamed, each passed through ``model_ready``;
    shuffled in ``epochs``' orders (through the service: from ``seed``)."""
    if service is None and (cache is True or (
            cache == "auto" and memory_cache.fits_in_memory(source.num_examples))):
        return memory_cache.cached_batches(source, batch_size, shuffle=shuffle, epochs=epochs,
                                           drop_remainder=drop_remainder, transform=model_ready)
    if service is None:
        chunks = reading.read_chunks(source, epochs if shuffle else None)
    elif not source.is_tfrecord:
        raise ValueError(
            f"service={service!r} needs TFRecord shards, but {source.builder.info.full_name} was "
            f"prepared as {source.builder.info.file_format.value}: its reader runs Python code "
            "that cannot be sent to the service's workers")
    else:
        # DYNAMIC sharding hands the pieces (the source dataset's elements) to workers on demand.
        chunks = reading.service_chunks(source, shuffle=shuffle, seed=seed).apply(
            tf.data.experimental.service.distribute(
                processing_mode=tf.data.experimental.service.ShardingPolicy.DYNAMIC,
                service=service))
    # Batches keep their order (deterministic) so that the smaller remainder batch comes last.
    batches = chunks.rebatch(batch_size, drop_remainder=drop_remainder)
    if model_ready is None:
        return batches
    return batches.map(no_autograph(model_ready), num_parallel_calls=tf.data.AUTOTUNE,
                       deterministic=True)


def _model_ready(builder: tfds.core.DatasetBuilder, normalize: str, one_hot: bool):
    images_to = normalization.normalizer(normalize, builder.info.metadata)
    num_classes = builder.info.features["label"].num_classes

    def model_ready(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        if one_hot:
            labels = tf.one_hot(labels, num_classes, dtype=tf.float32)
        return images_to(images), labels

    return model_ready


def _options(input_context: tf.distribute.InputContext | None) -> tf.data.Options:
    options = tf.data.Options()
    if input_context is not None:  # already sharded by split_source: tf.distribute must not again
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return options


# --- argument checks ---

def _check_arguments(*, config: str, batch_size: int, normalize: str, seed: int | None,
                     cache: bool | str, service: str | None, device: str | None,
                     input_context: tf.distribute.InputContext | None) -> None:
    """Raises ValueError for the first argument that load() cannot take, saying what it accepts."""
    configs.check_config(config)
    if not _is_integer(batch_size) or not 1 <= batch_size <= _MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be a positive integer no larger than 2**31-1, "
                         f"got {batch_size!r}")
    normalization.check_normalize(normalize)
    if seed is not None and not _is_integer(seed):
        raise ValueError(f"seed must be an integer or None, got {seed!r}")
    if not (cache is True or cache is False or cache in ("auto", "device")):
        raise ValueError(f"cache={cache!r} is not supported: use 'auto', True or False "
                         "(or 'device' with a device such as '/gpu:0')")
    if cache == "device" and (device in (None, "auto") or service is not None):
        raise ValueError("cache='device' keeps the split on the device that batches are copied "
                         f"to: give device='/gpu:0' (or another device), got device={device!r}"
                         + (" and a service" if service is not None else ""))
    if service is not None:
        if not isinstance(service, str) or not service:
            raise ValueError(f"service must be a dispatcher address such as 'grpc://host:5050', "
                             f"got {service!r}")
        if cache is True:
            raise ValueError("cache=True cannot be combined with service: the service's workers "
                             "stream the files; use cache='auto' or False")
    if input_context is not None and not isinstance(input_context, tf.distribute.InputContext):
        raise ValueError(
            f"input_context must be a tf.distribute.InputContext, got {input_context!r}")
    if device is not None and device != "auto":
        if input_context is not None:
            raise ValueError(f"device={device!r} cannot be combined with input_context: "
                             "tf.distribute copies each replica's batches to its device itself; "
                             "use device='auto' or None")
        _check_device(device)


def _check_bool(**flags: object) -> None:
    """Raises ValueError for a flag that is not a bool (or numpy bool): "no" or 2 is no answer."""
    for name, value in flags.items():
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False (a bool), got {value!r}")


def _is_integer(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_device(device: str) -> None:
    try:
        spec = tf.DeviceSpec.from_string(device)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"device={device!r} is not a device name such as '/gpu:0' or '/cpu:1'; "
                         "use 'auto' or None to let load() decide") from exc
    if spec.job is not None or spec.device_type is None:
        return  # a remote or partial name: TensorFlow resolves it
    local = tf.config.list_logical_devices(spec.device_type)
    if not any(spec.device_index in (None, tf.DeviceSpec.from_string(d.name).device_index)
               for d in local):
        names = [d.name for d in tf.config.list_logical_devices()]
        raise ValueError(f"device={device!r} is not one of this process's devices: {names}")
