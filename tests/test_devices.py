"""Where load()'s batches go: Keras's backend, TensorFlow's GPUs (mocked), the uint8 copy to a device
(conftest's second logical CPU device), Keras on JAX. Data: the dummy bundle, prepared once."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from emnist_idx._pipeline import devices, iteration
from emnist_idx._pipeline.loading import load

TRAIN = 1128  # dummy balanced: 24 train examples for each of 47 classes
REPO = Path(__file__).resolve().parent.parent



def _collect(dataset: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    batches = list(dataset.as_numpy_iterator())
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


@pytest.fixture
def keras_not_imported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """As in a process that has not imported Keras, with an empty KERAS_HOME; returns KERAS_HOME."""
    monkeypatch.delitem(sys.modules, "keras", raising=False)
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def one_mocked_gpu(monkeypatch: pytest.MonkeyPatch) -> list:
    """TensorFlow lists one physical GPU; hiding it is recorded; initializing devices fails."""
    gpu = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    listed = tf.config.list_physical_devices
    hidden = []
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: [gpu] if kind == "GPU" else listed(kind))
    monkeypatch.setattr(tf.config, "set_visible_devices",
                        lambda found, kind=None: hidden.append((list(found), kind)))

    def initializes(*_):
        raise AssertionError("list_logical_devices initializes TensorFlow's devices")

    monkeypatch.setattr(tf.config, "list_logical_devices", initializes)
    return hidden


# --- Keras's backend and TensorFlow's GPUs ---

def test_keras_backend_is_read_as_keras_reads_it(keras_not_imported: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert devices.keras_backend() == "tensorflow"  # nothing configured
    (keras_not_imported / "keras.json").write_text(json.dumps({"backend": "torch"}))
    assert devices.keras_backend() == "torch"
    monkeypatch.setenv("KERAS_BACKEND", "jax")  # the variable wins over keras.json, as in Keras
    assert devices.keras_backend() == "jax"
    assert "keras" not in sys.modules  # read without importing Keras
    import keras  # noqa: PLC0415 - this process's Keras (TensorFlow) answers for itself

    monkeypatch.setitem(sys.modules, "keras", keras)
    assert devices.keras_backend() == keras.config.backend() == "tensorflow"


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_auto_under_jax_or_torch_hides_gpus_before_initializing_them(
        data_dir: str, keras_not_imported: Path, one_mocked_gpu: list,
        monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    monkeypatch.setenv("KERAS_BACKEND", backend)
    dataset = load("balanced", batch_size=64, data_dir=data_dir)
    assert one_mocked_gpu == [([], "GPU")]
    assert int(dataset.cardinality()) == math.ceil(TRAIN / 64)
    images, _ = next(iter(dataset))
    assert images.device.endswith("CPU:0") and images.dtype == tf.float32


def test_auto_under_tensorflow_without_a_gpu_is_the_host_pipeline(
        data_dir: str, keras_not_imported: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: [] if kind == "GPU" else [None])
    dataset = load("balanced", batch_size=64, data_dir=data_dir)
    assert not isinstance(dataset, devices.PrefetchedToDevice)
    images, _ = next(iter(dataset))
    assert images.device.endswith("CPU:0") and images.dtype == tf.float32


def test_auto_under_tensorflow_with_a_gpu_initializes_nothing_until_iterated(
        data_dir: str, keras_not_imported: Path, one_mocked_gpu: list,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    dataset = load("balanced", batch_size=64, data_dir=data_dir)
    assert one_mocked_gpu == []  # nothing hidden, and no device initialized by load()
    assert isinstance(dataset, devices.PrefetchedToDevice) and dataset.device == "/gpu:0"
    assert int(dataset.cardinality()) == math.ceil(TRAIN / 64)


@pytest.fixture
def auto_gpu_is_cpu1(keras_not_imported: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Keras on TensorFlow, and "auto" finds conftest's second CPU device as its GPU."""
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setattr(devices, "first_gpu", lambda: "/cpu:1")
    return "/cpu:1"


@pytest.mark.usefixtures("two_cpus")
@pytest.mark.parametrize(("normalize", "one_hot", "cache"), [
    ("scale", False, True), ("standardize", True, False)])
def test_auto_with_a_gpu_prefetches_there_and_chaining_composes_on_the_host(
        data_dir: str, auto_gpu_is_cpu1: str, normalize: str, one_hot: bool, cache: bool) -> None:
    arguments = dict(batch_size=100, normalize=normalize, one_hot=one_hot, cache=cache,
                     shuffle=False, data_dir=data_dir)
    dataset = load("balanced", **arguments)
    expected = _collect(load("balanced", device=None, **arguments))
    steps = math.ceil(TRAIN / 100)
    assert isinstance(dataset, devices.PrefetchedToDevice)
    assert int(dataset.cardinality()) == steps
    # Iterated directly: on the device, uint8 across, the same values as the host path, twice.
    for _ in range(2):
        batches = list(dataset)
        assert len(batches) == steps
        assert all(x.device.endswith("CPU:1") and y.device.endswith("CPU:1") for x, y in batches)
        np.testing.assert_allclose(np.concatenate([x.numpy() for x, _ in batches]), expected[0],
                                   rtol=1e-6)
        np.testing.assert_array_equal(np.concatenate([y.numpy() for _, y in batches]),
                                      expected[1])
    assert _input_of_the_copy(dataset._to_device).element_spec[0].dtype == tf.uint8  # noqa: SLF001
    # Chained: the host pipeline's model-ready batches, cardinality known, functions on the host.
    doubled = dataset.map(lambda images, labels: (images * 2.0, labels))
    assert int(doubled.cardinality()) == steps
    assert int(dataset.take(5).cardinality()) == 5
    assert int(dataset.map(lambda images, labels: images).filter(
        lambda images: True).cardinality()) == tf.data.UNKNOWN_CARDINALITY  # filter's own doing
    chained = list(doubled)
    assert all(x.device.endswith("CPU:0") for x, _ in chained)
    np.testing.assert_allclose(np.concatenate([x.numpy() for x, _ in chained]),
                               expected[0] * 2.0, rtol=1e-6)


@pytest.mark.usefixtures("two_cpus")
def test_auto_with_a_gpu_reads_the_files_once_for_both_pipelines(
        data_dir: str, auto_gpu_is_cpu1: str, tmp_path: Path) -> None:
    shutil.copytree(Path(data_dir) / "emnist_idx" / "digits", tmp_path / "emnist_idx" / "digits")
    dataset = load("digits", batch_size=16, shuffle=False, cache=True, data_dir=str(tmp_path))
    on_device = [x.numpy() for x, _ in dataset]  # fills the in-memory cache
    for shard in (tmp_path / "emnist_idx" / "digits").glob("*/*.tfrecord-*"):
        shard.unlink()  # from now on only the cache can deliver
    on_host = [x.numpy() for x, _ in dataset.map(lambda images, labels: (images, labels))]
    np.testing.assert_array_equal(np.concatenate(on_host), np.concatenate(on_device))
    assert len(on_host) == math.ceil(40 / 16)


@pytest.mark.slow
@pytest.mark.usefixtures("two_cpus")
def test_auto_with_a_gpu_fits_a_model_on_batches_from_the_device(
        data_dir: str, auto_gpu_is_cpu1: str, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = load("balanced", batch_size=64, seed=0, data_dir=data_dir)
    iterated = []
    direct_iter = devices.PrefetchedToDevice.__iter__
    monkeypatch.setattr(devices.PrefetchedToDevice, "__iter__",
                        lambda self: iterated.append(self) or direct_iter(self))
    _fit_two_epochs_counting_steps(dataset, tf.distribute.get_strategy(), math.ceil(TRAIN / 64))
    assert iterated and all(each is dataset for each in iterated)  # Keras iterated it directly


def test_hiding_gpus_after_they_were_initialized_reports_it(
        monkeypatch: pytest.MonkeyPatch, one_mocked_gpu: list) -> None:
    def too_late(*_):
        raise RuntimeError("Visible devices cannot be modified after being initialized")

    monkeypatch.setattr(tf.config, "set_visible_devices", too_late)
    assert devices.hide_gpus_from_tensorflow() is False
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    assert devices.hide_gpus_from_tensorflow() is True  # no GPU: nothing to hide


# --- an explicit device: uint8 across, normalized there ---

def _input_of_the_copy(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """The dataset that copy_to_device copies, found by walking the inputs back from the end."""
    while type(dataset).__name__ != "_CopyToDeviceDataset":
        (dataset,) = dataset._inputs()  # noqa: SLF001 - the pipeline's structure is under test
    return dataset._input_dataset  # noqa: SLF001


@pytest.mark.usefixtures("two_cpus")
@pytest.mark.parametrize(("normalize", "one_hot", "cache"), [
    ("scale", False, True), ("standardize", True, True), ("l2", False, False),
    ("none", True, False)])
def test_device_copy_crosses_as_uint8_and_equals_the_host_path(
        data_dir: str, normalize: str, one_hot: bool, cache: bool) -> None:
    arguments = {"batch_size": 100, "normalize": normalize, "one_hot": one_hot, "seed": 3,
                 "cache": cache, "data_dir": data_dir}
    on_device = load("balanced", device="/cpu:1", **arguments)
    crossing = _input_of_the_copy(on_device).element_spec
    assert crossing[0].dtype == tf.uint8 and crossing[1].dtype == tf.int64
    assert int(on_device.cardinality()) == math.ceil(TRAIN / 100)
    iterator = iter(on_device)
    assert type(iterator) is iteration.FlatIterator  # Python loops skip tf.nest's rebuild there too
    images, labels = next(iterator)
    assert images.device.endswith("CPU:1") and labels.device.endswith("CPU:1")
    host = load("balanced", device=None, **arguments)
    assert on_device.element_spec == host.element_spec
    next(iter(host))  # an iteration each, so both are at the same epoch of their seeded orders
    for epoch in range(2):  # the same reshuffled order on both paths, epoch by epoch
        device_x, device_y = _collect(on_device)
        host_x, host_y = _collect(host)
        np.testing.assert_array_equal(device_x, host_x)
        np.testing.assert_array_equal(device_y, host_y)


@pytest.mark.usefixtures("two_cpus")
@pytest.mark.parametrize(("normalize", "one_hot", "drop_remainder"), [
    ("scale", False, False), ("standardize", True, True)])
def test_split_resident_on_the_device_equals_the_host_path(
        data_dir: str, normalize: str, one_hot: bool, drop_remainder: bool) -> None:
    arguments = {"batch_size": 100, "normalize": normalize, "one_hot": one_hot, "seed": 5,
                 "drop_remainder": drop_remainder, "data_dir": data_dir}
    resident = load("balanced", device="/cpu:1", cache="device", **arguments)
    crossing = _input_of_the_copy(resident).element_spec
    assert crossing.dtype == tf.int64 and crossing.shape.as_list() == [100 if drop_remainder
                                                                      else None]
    steps = TRAIN // 100 if drop_remainder else math.ceil(TRAIN / 100)
    assert int(resident.cardinality()) == steps
    host = load("balanced", device=None, cache=True, **arguments)
    assert resident.element_spec == host.element_spec
    for epoch in range(2):  # the same reshuffled order on both paths, epoch by epoch
        images, labels = _collect(resident)
        host_images, host_labels = _collect(host)
        assert len(images) == (steps * 100 if drop_remainder else TRAIN)
        np.testing.assert_array_equal(images, host_images)
        np.testing.assert_array_equal(labels, host_labels)
    images, _ = next(iter(resident))
    assert images.device.endswith("CPU:1")


def test_split_resident_needs_a_device_and_says_when_it_does_not_fit(
        data_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for device in ("auto", None):
        with pytest.raises(ValueError, match="cache='device' keeps the split on the device"):
            load("balanced", cache="device", device=device, data_dir=data_dir)

    def exhausted(*_, **__):
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")

    monkeypatch.setattr(tf, "Variable", exhausted)
    with pytest.raises(MemoryError, match=r"emnist_idx/balanced.*'train'.*1 MB on /cpu:0.*cache=True"):
        load("balanced", cache="device", device="/cpu:0", data_dir=data_dir)


# --- tf.distribute: the README's two recipes, steps counted ---

class _CountSteps(keras.callbacks.Callback):
    """Records the steps Keras announces per epoch and the steps it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.announced, self.ran = [], 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.announced.append(self.params["steps"])

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.ran += 1


def _fit_two_epochs_counting_steps(dataset: tf.data.Dataset, strategy: tf.distribute.Strategy,
                                   steps: int) -> None:
    """model.fit for 2 epochs under ``strategy``: ``steps`` announced and run each, no warning."""
    with strategy.scope():
        model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                  keras.layers.Dense(47, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy")
    counted = _CountSteps()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(dataset, epochs=2, verbose=0, callbacks=[counted])
    assert counted.announced == [steps] * 2 and counted.ran == 2 * steps
    assert not [w for w in caught if "ran out of data" in str(w.message)]
    assert np.isfinite(history.history["loss"]).all()


@pytest.mark.slow
@pytest.mark.usefixtures("two_cpus")
def test_model_fit_under_strategy_scope_runs_exactly_the_announced_steps(data_dir: str) -> None:
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    _fit_two_epochs_counting_steps(load("balanced", batch_size=64, seed=0, data_dir=data_dir),
                                   strategy, math.ceil(TRAIN / 64))


@pytest.mark.slow
@pytest.mark.usefixtures("two_cpus")
def test_split_resident_on_the_device_fits_a_model(data_dir: str) -> None:
    resident = load("balanced", batch_size=64, device="/cpu:1", cache="device", data_dir=data_dir)
    _fit_two_epochs_counting_steps(resident, tf.distribute.get_strategy(), math.ceil(TRAIN / 64))


@pytest.mark.usefixtures("two_cpus")
def test_custom_loop_over_input_context_pipelines_sees_every_example_once(data_dir: str) -> None:
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    distributed = strategy.distribute_datasets_from_function(
        lambda context: load("balanced", batch_size=64, normalize="none", data_dir=data_dir,
                             input_context=context))
    steps, examples, per_replica = 0, 0, set()
    for _ in range(2):  # two epochs, each a new iteration
        for images, labels in distributed:
            sizes = strategy.experimental_local_results(
                strategy.run(lambda x, y: tf.shape(y)[0], args=(images, labels)))
            per_replica.update(int(size) for size in sizes)
            examples += sum(int(size) for size in sizes)
            steps += 1
    assert steps == 2 * math.ceil(TRAIN / 64)  # global steps, as README says to count them
    assert examples == 2 * TRAIN
    assert max(per_replica) == 32  # 64 split over 2 replicas


# --- Keras on JAX ---

@pytest.mark.slow
def test_model_fit_with_keras_on_jax(data_dir: str) -> None:
    try:
        import jax  # noqa: F401, PLC0415
    except ImportError:
        pytest.skip("jax is not installed: pip install 'jax[cpu]' (the test extra has it)")
    script = textwrap.dedent(f"""
        import keras, tensorflow as tf
        import emnist_idx
        assert keras.config.backend() == "jax", keras.config.backend()
        train = emnist_idx.load("balanced", batch_size=64, seed=0, data_dir={data_dir!r})
        assert tf.config.get_visible_devices("GPU") == []
        steps = []
        class Count(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                steps.append(batch)
        model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                  keras.layers.Dense(47, activation="softmax")])
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        history = model.fit(train, epochs=2, verbose=0, callbacks=[Count()])
        print("steps", len(steps), "loss", history.history["loss"][-1])
    """)
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    words = result.stdout.split()
    assert words[:2] == ["steps", str(2 * math.ceil(TRAIN / 64))], result.stdout
    assert np.isfinite(float(words[3]))
    assert "ran out of data" not in result.stderr
