"""emnist_idx.load(): model-ready batches, the same examples as TFDS, reproducible shuffling,
devices, tf.distribute and the tf.data service. Data: the dummy bundle, prepared once a session."""

from __future__ import annotations

import hashlib
import math
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import emnist_idx
from emnist_idx import configs
from emnist_idx._pipeline import memory_cache, reading
from emnist_idx._pipeline.epochs import Epochs
from emnist_idx import class_names
from emnist_idx._pipeline.frames import RecordLayout
from emnist_idx._pipeline.loading import load, load_numpy

TRAIN, TEST = 1128, 282  # dummy balanced: 24 train and 6 test examples for each of 47 classes
NUM_CLASSES = 47
BATCH = 100



@pytest.fixture(scope="module")
def train_arrays(data_dir: str) -> tuple[np.ndarray, np.ndarray]:
    return load_numpy("balanced", "train", data_dir=data_dir)


def _collect(dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    batches = list(dataset.as_numpy_iterator())
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


def _hashes(images: np.ndarray, labels: np.ndarray) -> list[str]:
    """One digest per example, in order: equal lists mean the same examples in the same order."""
    return [hashlib.sha1(image.tobytes() + int(label).to_bytes(8, "little")).hexdigest()
            for image, label in zip(images, labels)]


def _tfds_hashes(data_dir: str, config: str, split: str) -> list[str]:
    data = tfds.as_numpy(tfds.load(f"emnist_idx/{config}", split=split, data_dir=data_dir,
                                   as_supervised=True, batch_size=-1))
    return sorted(_hashes(*data))


def _small_model(num_classes: int = NUM_CLASSES) -> keras.Model:
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Flatten(),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


# Read paths: the in-memory cache, the streamed files, and the streamed files cut into many small
# pieces and chunks (so piece shuffling, interleaving and chunk boundaries are exercised).
READ_PATHS = ["cached", "streamed", "streamed-small-pieces"]


@pytest.fixture(params=READ_PATHS)
def read_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> dict:
    if request.param == "streamed-small-pieces":
        monkeypatch.setattr(reading, "PIECE_RECORDS", 150)
        monkeypatch.setattr(reading, "CHUNK_RECORDS", 256)
    return {"cache": request.param == "cached"}


# --- Keras ---

@pytest.mark.slow
def test_model_fit_one_epoch_with_validation_slice(data_dir: str) -> None:
    train = load("balanced", "train[:90%]", batch_size=32, seed=0, data_dir=data_dir)
    val = load("balanced", "train[90%:]", batch_size=32, shuffle=False, data_dir=data_dir)
    assert int(train.cardinality()) == math.ceil(0.9 * TRAIN / 32)
    model = _small_model()
    history = model.fit(train, validation_data=val, epochs=1, verbose=0)
    assert set(history.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert np.isfinite([history.history["loss"][0], history.history["val_loss"][0]]).all()
    loss, _ = model.evaluate(load("balanced", "test", data_dir=data_dir), verbose=0)
    assert np.isfinite(loss)


# --- what the batches hold ---

def test_none_and_scale_are_the_stored_pixels(data_dir: str,
                                              train_arrays: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = train_arrays
    assert x.dtype == np.uint8 and x.shape == (TRAIN, 28, 28, 1) and y.dtype == np.int64
    raw_x, raw_y = _collect(load("balanced", batch_size=BATCH, normalize="none", shuffle=False,
                                 data_dir=data_dir))
    assert raw_x.dtype == np.uint8
    np.testing.assert_array_equal(raw_x, x)
    np.testing.assert_array_equal(raw_y, y)
    scaled, _ = _collect(load("balanced", batch_size=BATCH, shuffle=False, data_dir=data_dir))
    assert scaled.dtype == np.float32
    assert scaled.min() == 0.0 and scaled.max() == 1.0  # glyphs have full-ink (255) pixels
    np.testing.assert_allclose(scaled, x.astype(np.float32) / 255.0, rtol=1e-7)


def test_standardize_gives_mean_zero_std_one_over_train(data_dir: str) -> None:
    images, _ = _collect(load("balanced", batch_size=BATCH, normalize="standardize",
                              data_dir=data_dir))
    assert images.dtype == np.float32 and images.shape == (TRAIN, 28, 28, 1)
    assert abs(images.astype(np.float64).mean()) < 1e-4
    assert abs(images.astype(np.float64).std() - 1.0) < 1e-4
    pixels = tfds.builder("emnist_idx/balanced", data_dir=data_dir).info.metadata["pixels"]
    assert images.min() == pytest.approx(-pixels["mean"] / pixels["std"], rel=1e-5)


def test_l2_matches_keras_normalize_axis_1(data_dir: str,
                                           train_arrays: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = train_arrays
    images, _ = _collect(load("balanced", batch_size=BATCH, normalize="l2", shuffle=False,
                              data_dir=data_dir))
    assert images.dtype == np.float32 and images.min() >= 0.0 and images.max() <= 1.0
    expected = keras.utils.normalize(x[..., 0].astype(np.float64), axis=1)
    np.testing.assert_allclose(images[..., 0], expected, atol=1e-6)
    norms = np.linalg.norm(images[..., 0].astype(np.float64), axis=1)  # (N, 28): one per column
    empty = ~x[..., 0].any(axis=1)
    assert empty.any() and (~empty).any()
    np.testing.assert_allclose(norms[~empty], 1.0, atol=1e-5)
    assert (norms[empty] == 0).all()


def test_one_hot_rows_of_the_config_class_count(data_dir: str) -> None:
    sparse = next(iter(load("balanced", batch_size=BATCH, seed=3, data_dir=data_dir)))[1].numpy()
    dense = next(iter(load("balanced", batch_size=BATCH, seed=3, one_hot=True,
                           data_dir=data_dir)))[1].numpy()
    assert dense.dtype == np.float32 and dense.shape == (BATCH, NUM_CLASSES)
    np.testing.assert_array_equal(dense.sum(axis=1), 1.0)
    np.testing.assert_array_equal(dense.argmax(axis=1), sparse)
    letters = load("letters", batch_size=8, one_hot=True, data_dir=data_dir)
    assert letters.element_spec[1].shape.as_list() == [None, 26]  # not TFDS emnist's 37
    assert class_names("letters")[0] == "Aa" and len(class_names("letters")) == 26
    assert class_names("balanced") == list(configs.CLASS_NAMES["balanced"])


# --- cardinality ---

@pytest.mark.parametrize("drop_remainder", [False, True])
def test_cardinality_is_known(data_dir: str, read_path: dict, drop_remainder: bool) -> None:
    dataset = load("balanced", batch_size=BATCH, drop_remainder=drop_remainder, data_dir=data_dir,
                   **read_path)
    expected = TRAIN // BATCH if drop_remainder else math.ceil(TRAIN / BATCH)
    assert int(dataset.cardinality()) == expected
    sizes = [int(tf.shape(y)[0]) for _, y in dataset]
    assert len(sizes) == expected
    assert sizes[-1] == (BATCH if drop_remainder else TRAIN % BATCH)
    if drop_remainder:
        assert dataset.element_spec[0].shape.as_list() == [BATCH, 28, 28, 1]


def test_repeat_is_infinite_and_keeps_reshuffling(data_dir: str) -> None:
    dataset = load("balanced", batch_size=TRAIN, repeat=True, seed=1, data_dir=data_dir)
    assert int(dataset.cardinality()) == tf.data.INFINITE_CARDINALITY
    first, second = [y.numpy() for _, y in dataset.take(2)]
    assert sorted(first) == sorted(second) and not np.array_equal(first, second)


# --- shuffling ---

@pytest.mark.slow
def test_seed_fixes_the_order_and_every_epoch_reshuffles(data_dir: str, read_path: dict) -> None:
    def epochs(dataset: tf.data.Dataset, count: int) -> list[list[str]]:
        return [_hashes(*_collect(dataset)) for _ in range(count)]

    def seeded(seed: int) -> tf.data.Dataset:
        return load("balanced", batch_size=BATCH, seed=seed, data_dir=data_dir, **read_path)

    first_run, second_run = epochs(seeded(7), 2), epochs(seeded(7), 2)
    other_seed = epochs(seeded(8), 1)
    assert first_run == second_run
    assert first_run[0] != first_run[1] and sorted(first_run[0]) == sorted(first_run[1])
    assert other_seed[0] != first_run[0]


@pytest.mark.slow
def test_shuffle_defaults_to_train_only(data_dir: str) -> None:
    x_test, y_test = load_numpy("balanced", "test", data_dir=data_dir)
    test_batches = _collect(load("balanced", "test", batch_size=BATCH, normalize="none",
                                 data_dir=data_dir))
    assert _hashes(*test_batches) == _hashes(x_test, y_test)  # file order
    x_train, y_train = load_numpy("balanced", "train[:20%]", data_dir=data_dir)
    train_batches = _collect(load("balanced", "train[:20%]", batch_size=BATCH, normalize="none",
                                  data_dir=data_dir))
    assert _hashes(*train_batches) != _hashes(x_train, y_train)


# --- the vectorized read path against TFDS ---

@pytest.mark.parametrize("split", ["train", "train[10%:65%]", "test"])
def test_same_examples_as_tfds_load(data_dir: str, read_path: dict, split: str) -> None:
    images, labels = _collect(load("balanced", split, batch_size=64, normalize="none",
                                   data_dir=data_dir, **read_path))
    assert sorted(_hashes(images, labels)) == _tfds_hashes(data_dir, "balanced", split)


def test_load_numpy_equals_tfds_in_file_order(data_dir: str) -> None:
    x, y = load_numpy("letters", "test", data_dir=data_dir)
    expected = tfds.as_numpy(tfds.load("emnist_idx/letters", split="test", data_dir=data_dir,
                                       as_supervised=True, batch_size=-1))
    np.testing.assert_array_equal(x, expected[0])
    np.testing.assert_array_equal(y, expected[1])
    assert y.min() == 0 and y.max() == 25  # NIST's letters labels 1..26, shifted to class ids


def test_array_record_falls_back_to_the_data_source(tmp_path: Path, manual_dir: Path,
                                                    data_dir: str) -> None:
    builder = tfds.builder("emnist_idx/digits", data_dir=str(tmp_path), file_format="array_record")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    expected = sorted(_hashes(*load_numpy("digits", "train", data_dir=data_dir)))
    for cache in (True, False):
        dataset = load("digits", batch_size=16, normalize="none", cache=cache, seed=0,
                       data_dir=str(tmp_path))
        assert int(dataset.cardinality()) == 3
        assert sorted(_hashes(*_collect(dataset))) == expected
    x, y = load_numpy("digits", "train", data_dir=str(tmp_path))
    assert sorted(_hashes(x, y)) == expected
    with pytest.raises(ValueError, match="needs TFRecord shards"):
        load("digits", data_dir=str(tmp_path), service="grpc://localhost:5050")


def test_cache_auto_follows_the_memory_budget(data_dir: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert memory_cache.available_memory() > 0
    cached = []
    real = memory_cache.cached_batches
    monkeypatch.setattr(memory_cache, "cached_batches",
                        lambda *args, **kwargs: cached.append(True) or real(*args, **kwargs))
    budget = memory_cache.cache_bytes(TRAIN) / memory_cache.CACHE_FRACTION
    for memory, cache, expected in [(budget, "auto", 1), (budget - 1, "auto", 1),
                                    (budget - 1, True, 2), (budget, False, 2)]:
        monkeypatch.setattr(memory_cache, "available_memory", lambda memory=memory: memory)
        load("balanced", cache=cache, data_dir=data_dir)
        assert len(cached) == expected, (memory, cache)


@pytest.mark.slow
def test_cache_holds_a_byclass_sized_split(tmp_path: Path) -> None:
    """697,932 examples (547 MB of uint8 pixels) through the cache: no 2 GB GraphDef limit hit."""
    count = configs.NIST_COUNTS["byclass"][0]
    pixels = bytes(range(256)) * 3 + bytes(16)  # 784
    record = tf.train.Example(features=tf.train.Features(feature={
        "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[pixels])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[5])),
    })).SerializeToString()
    path = tmp_path / "big.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for _ in range(count):
            writer.write(record)

    class _Instruction:
        filename, skip, take, examples_in_shard = str(path), 0, count, count

    class _TFRecordBuilder:
        class info:  # noqa: N801 - stands in for builder.info
            file_format = tfds.core.FileFormat.TFRECORD

    layout = RecordLayout.of(emnist_idx.Builder(config="balanced").info.features)
    source = reading.SplitSource(builder=_TFRecordBuilder(), split="big", num_examples=count,
                                 instructions=(_Instruction(),), layout=layout)
    dataset = memory_cache.cached_batches(source, 4096, shuffle=True, epochs=Epochs(0),
                                            drop_remainder=False)
    for epoch in range(2):
        batches = 0
        for images, labels in dataset:
            batches += 1
        assert batches == math.ceil(count / 4096)
        assert images.dtype == tf.uint8 and images.shape[1:] == (28, 28, 1)
        assert int(images[0, 0, 5, 0]) == 5 and (labels.numpy() == 5).all()


# --- devices and distribution ---

@pytest.mark.slow
@pytest.mark.usefixtures("two_cpus")
def test_prefetch_to_a_device_and_fit(data_dir: str) -> None:
    dataset = load("balanced", batch_size=64, seed=0, device="/cpu:1", data_dir=data_dir)
    images, labels = next(iter(dataset))
    assert images.device.endswith("CPU:1") and labels.device.endswith("CPU:1")
    assert int(dataset.cardinality()) == math.ceil(TRAIN / 64)  # kept through the device copy
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. Keras's "ran out of data"
        warnings.filterwarnings("ignore", "`shuffle=True` was passed", UserWarning)
        history = _small_model().fit(dataset, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert int(load("balanced", device="/cpu:1", repeat=True, data_dir=data_dir).cardinality()) \
        == tf.data.INFINITE_CARDINALITY


def test_device_auto_without_gpu_and_none_stay_on_the_host(data_dir: str) -> None:
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("a GPU is visible: device='auto' prefetches to it")
    for device in ("auto", None):
        images, _ = next(iter(load("balanced", batch_size=8, device=device, data_dir=data_dir)))
        assert images.device.endswith("CPU:0")


@pytest.mark.slow
@pytest.mark.usefixtures("two_cpus")
def test_mirrored_strategy_on_two_cpu_devices(data_dir: str) -> None:
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    distributed = strategy.distribute_datasets_from_function(
        lambda context: load("balanced", batch_size=64, seed=0, data_dir=data_dir,
                             input_context=context))
    images, labels = next(iter(distributed))
    parts = strategy.experimental_local_results(images)
    assert [tuple(part.shape) for part in parts] == [(32, 28, 28, 1)] * 2
    assert [part.device[-5:] for part in parts] == ["CPU:0", "CPU:1"]
    with strategy.scope():
        model = _small_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras counts per-replica batches as steps, see below
        # tf.distribute reports the per-pipeline cardinality (36 per-replica batches), not the 18
        # global steps, so the step count is given.
        history = model.fit(distributed, epochs=1, steps_per_epoch=math.ceil(TRAIN / 64), verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_input_context_gives_equal_disjoint_shares(data_dir: str) -> None:
    shares = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id,
                                             num_replicas_in_sync=4)
        dataset = load("balanced", batch_size=64, normalize="none", seed=0, data_dir=data_dir,
                       input_context=context)
        images, labels = _collect(dataset)
        assert int(dataset.cardinality()) == math.ceil(TRAIN / 2 / 16)
        assert dataset.element_spec[0].shape.as_list() == [None, 28, 28, 1]
        assert next(iter(dataset))[0].shape[0] == 16  # 64 over 4 replicas
        shares.append(set(_hashes(images, labels)))
    assert len(shares[0]) == len(shares[1]) == TRAIN // 2
    assert not shares[0] & shares[1]
    assert sorted(shares[0] | shares[1]) == _tfds_hashes(data_dir, "balanced", "train")


@pytest.mark.slow
def test_tf_data_service_round_trip(data_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reading, "PIECE_RECORDS", 150)  # 8 pieces for 2 workers to share
    service = tf.data.experimental.service
    dispatcher = service.DispatchServer()
    address = dispatcher.target.split("://")[1]
    workers = [service.WorkerServer(service.WorkerConfig(dispatcher_address=address))
               for _ in range(2)]
    try:
        dataset = load("balanced", batch_size=BATCH, seed=0, data_dir=data_dir,
                       service=dispatcher.target)
        assert int(dataset.cardinality()) == tf.data.UNKNOWN_CARDINALITY
        assert dataset.element_spec[0].dtype == tf.float32  # normalized here, after the service
        raw = load("balanced", batch_size=BATCH, normalize="none", data_dir=data_dir,
                   service=dispatcher.target)
        for _ in range(2):  # each iteration is a new job: a full epoch again
            images, labels = _collect(raw)
            assert images.shape == (TRAIN, 28, 28, 1) and images.dtype == np.uint8
            assert sorted(_hashes(images, labels)) == _tfds_hashes(data_dir, "balanced", "train")
        assert len(list(dataset)) == math.ceil(TRAIN / BATCH)  # rebatched to full batches
    finally:
        for worker in workers:
            worker._stop()  # noqa: SLF001 - in-process servers have no public stop
        dispatcher._stop()  # noqa: SLF001


# --- errors ---

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"config": "emnist"}, "'byclass', 'bymerge', 'balanced'"),
    ({"normalize": "minmax"}, "'scale', 'standardize', 'l2', 'none'"),
    ({"split": "validation"}, "'train' or 'test'"),
    ({"split": "train[:abc]"}, "train[:90%]"),
    ({"split": "train[:0]"}, "selects no examples"),
    ({"batch_size": 0}, "positive integer"),
    ({"batch_size": True}, "positive integer"),
    ({"cache": "yes"}, "'auto', True or False"),
    ({"device": "/gpu:7"}, "not one of this process's devices"),
    ({"device": "nonsense"}, "not a device name"),
    ({"service": "grpc://localhost:1", "cache": True}, "cannot be combined with service"),
    ({"device": "/cpu:0", "input_context": tf.distribute.InputContext()}, "input_context"),
    ({"split": "test[:10]", "batch_size": 64, "drop_remainder": True}, "leaves no batch"),
    ({"split": "train[5:3]"}, "'train[5:3]' selects no examples"),
    ({"split": "test+train[90%:10%]", "drop_remainder": True}, "'train[90%:10%]' selects no"),
    ({"split": "train[5:5]", "drop_remainder": True}, "'train[5:5]' selects no examples"),
    ({"batch_size": 2**63}, "no larger than 2**31-1"),
    ({"batch_size": 2**31}, "no larger than 2**31-1"),
    ({"shuffle": "no"}, "shuffle must be True or False"),
    ({"drop_remainder": "no"}, "drop_remainder must be True or False"),
    ({"repeat": 2}, "repeat must be True or False"),
    ({"one_hot": 1}, "one_hot must be True or False"),
    ({"download": "yes"}, "download must be True or False"),
])
def test_bad_arguments_are_clear_errors(data_dir: str, kwargs: dict, message: str) -> None:
    arguments = {"config": "balanced", "data_dir": data_dir, **kwargs}
    with pytest.raises(ValueError) as raised:
        load(arguments.pop("config"), **arguments)
    assert message in str(raised.value)


def test_flags_accept_numpy_bools_and_numpy_rejects_a_string_download(data_dir: str) -> None:
    dataset = load("balanced", "test", data_dir=data_dir, shuffle=np.bool_(False),
                   drop_remainder=np.True_, repeat=np.False_, one_hot=np.False_,
                   download=np.True_, batch_size=np.int64(100), device=None)
    assert int(dataset.cardinality()) == TEST // 100
    with pytest.raises(ValueError, match="download must be True or False"):
        load_numpy("balanced", "test", data_dir=data_dir, download="no")


def test_bad_config_for_numpy_and_class_names() -> None:
    with pytest.raises(ValueError, match="'digits', 'mnist'"):
        load_numpy("emnist")
    with pytest.raises(ValueError, match="'digits', 'mnist'"):
        class_names("emnist")


@pytest.mark.slow
def test_prepares_when_needed_unless_download_is_false(tmp_path: Path, manual_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not prepared") as raised:
        load("mnist", data_dir=str(tmp_path), download=False)
    assert "manual_dir" in str(raised.value) and "tfds build" in str(raised.value)
    dataset = load("mnist", "test", batch_size=8, data_dir=str(tmp_path),
                   manual_dir=str(manual_dir))
    assert int(dataset.cardinality()) == 3  # 20 test examples
    assert tfds.builder("emnist_idx/mnist", data_dir=str(tmp_path)).is_prepared()
    _, labels = _collect(load("mnist", "test", data_dir=str(tmp_path), download=False))
    assert len(labels) == 20
