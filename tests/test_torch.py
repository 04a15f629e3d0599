"""emnist_idx.torch.EMNIST: torchvision's EMNIST, upright, in forked DataLoader workers after TF ran.

torchvision itself is not used: PyPI's torchvision wheels for Linux x86_64 link against CUDA torch
(libtorch_cuda.so), so with torch's CPU wheel their import fails ("operator torchvision::nms does
not exist"). Transforms here are plain callables, which is all ``transform`` asks for.
"""

from __future__ import annotations

import collections
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

import emnist_idx
from emnist_idx import configs
from emnist_idx._format.idx import read_idx
from tests.bundle_factory import DUMMY_GZIP
from tests.example_runs import run_example

torch = pytest.importorskip("torch", reason="torch is an optional extra (emnist-idx[torch])")
from emnist_idx.torch import EMNIST  # noqa: E402
from PIL import Image  # noqa: E402


def test_items_are_upright_pil_images_and_int_labels(prepared_data_dir: Path) -> None:
    dataset = EMNIST(root=prepared_data_dir, split="letters", train=False)
    nist_images = read_idx(DUMMY_GZIP / configs.image_file("letters", "test"))
    nist_labels = read_idx(DUMMY_GZIP / configs.label_file("letters", "test"))
    assert len(dataset) == len(nist_labels)
    for index in range(len(dataset)):
        image, target = dataset[index]
        assert isinstance(image, Image.Image) and image.mode == "L" and image.size == (28, 28)
        np.testing.assert_array_equal(np.asarray(image), nist_images[index].T)  # upright
        assert type(target) is int and target == nist_labels[index] - 1  # 0..25, no "N/A"
    assert dataset.classes == ["Aa", "Bb", *emnist_idx.class_names("letters")[2:]]
    assert len(dataset.classes) == 26 and dataset.class_to_idx["Zz"] == 25
    np.testing.assert_array_equal(dataset.data.numpy(), nist_images.transpose(0, 2, 1))
    assert dataset.targets.dtype == torch.int64
    assert "Split: letters (test)" in repr(dataset)


def test_transforms_and_train_flag(prepared_data_dir: Path) -> None:
    def to_tensor(image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.array(image)).unsqueeze(0).float() / 255

    dataset = EMNIST(str(prepared_data_dir), "digits", train=True, transform=to_tensor,
                     target_transform=lambda target: target + 100)
    x, y = emnist_idx.load_numpy("digits", "train", data_dir=prepared_data_dir)
    image, target = dataset[5]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    np.testing.assert_allclose(image.numpy()[0], x[5, ..., 0] / 255, rtol=1e-6)
    assert target == y[5] + 100 and len(dataset) == len(y)


def test_download_prepares_from_manual_dir(tmp_path: Path, manual_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match="is not prepared"):
        EMNIST(root=tmp_path, split="mnist")
    dataset = EMNIST(root=tmp_path, split="mnist", train=False, download=True,
                     manual_dir=manual_dir)
    assert len(dataset) == 20 and (tmp_path / "emnist_idx" / "mnist").is_dir()
    with pytest.raises(ValueError, match="config='EMNIST' is not an EMNIST config"):
        EMNIST(root=tmp_path, split="EMNIST")


def _pixels(images: torch.Tensor) -> list[bytes]:
    return [image.numpy().tobytes() for image in images]


def test_forked_workers_after_tensorflow_read_every_example_once(prepared_data_dir: Path) -> None:
    assert multiprocessing.get_start_method() == "fork"  # DataLoader's default here
    ran = sum(int(len(labels)) for _, labels in emnist_idx.load(
        "digits", "train", batch_size=8, data_dir=prepared_data_dir))  # TensorFlow has run
    dataset = EMNIST(root=prepared_data_dir, split="digits",
                     transform=lambda image: torch.from_numpy(np.array(image)))
    loader = torch.utils.data.DataLoader(dataset, batch_size=16, shuffle=True, num_workers=2,
                                         persistent_workers=True,
                                         generator=torch.Generator().manual_seed(0))
    x, y = emnist_idx.load_numpy("digits", "train", data_dir=prepared_data_dir)
    expected = collections.Counter(zip(_pixels(torch.from_numpy(x[..., 0])), y.tolist()))
    orders = []
    for _ in range(2):
        batches = list(loader)
        assert [len(labels) for _, labels in batches] == [16, 16, 8] and ran == 40
        labels = torch.cat([labels for _, labels in batches])
        seen = collections.Counter(zip(_pixels(torch.cat([images for images, _ in batches])),
                                       labels.tolist()))
        assert seen == expected  # every example exactly once
        orders.append(labels.tolist())
    assert orders[0] != orders[1] and orders[0] != y.tolist()  # shuffled, anew each epoch


@pytest.mark.slow
def test_torch_example_prepares_into_tfds_default_data_dir(tmp_path: Path) -> None:
    done = run_example("torch_emnist.py", tmp_path, "--config", "digits", "--workers", "2",
                       "--batch_size", "16")
    assert ("Read 40 digits train examples with a torch DataLoader, 2 workers; last batch: images "
            "torch.float32 (8, 1, 28, 28), labels torch.int64 (8,)") in done.stdout
    assert (tmp_path / "tensorflow_datasets" / "emnist_idx" / "digits").is_dir()
