"""Small EMNIST-layout bundles for tests, written exactly as NIST stores them."""

from __future__ import annotations

import gzip
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np

from emnist_idx import configs
from emnist_idx._format.idx import write_idx
from emnist_idx.synthetic import mapping_text

REPO = Path(__file__).resolve().parent.parent
DUMMY_DATA = REPO / "dummy_data"  # the committed bundle: gzip.zip and its extracted gzip/ folder
DUMMY_GZIP = DUMMY_DATA / "gzip"


def idx_header(code: int, shape: tuple[int, ...]) -> bytes:
    """An IDX header: two zero bytes, the type ``code`` (0x08: uint8), the rank, big-endian sizes."""
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def upright_l_glyph() -> np.ndarray:
    """A 28x28 "L": ink down the left and along the bottom, asymmetric under transposition."""
    image = np.zeros(configs.IMAGE_SHAPE[:2], dtype=np.uint8)
    image[4:24, 6:9] = 255
    image[21:24, 6:21] = 200
    return image


def random_upright_images(count: int, seed: int) -> np.ndarray:
    """Distinct, sparse images (most pixels 0) so that gzip has something realistic to do."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, *configs.IMAGE_SHAPE[:2]), dtype=np.uint8)
    images[rng.random((count, *configs.IMAGE_SHAPE[:2])) < 0.7] = 0
    return images


def write_config(directory: Path, config: str, splits: dict[str, tuple[np.ndarray, np.ndarray]],
                gz: bool = True) -> Path:
    """Writes a config's four IDX files (images transposed, as NIST does) and its mapping file.

    ``splits`` maps "train"/"test" to (upright images, labels in the file's numbering).
    """
    directory.mkdir(parents=True, exist_ok=True)
    for split, (images, labels) in splits.items():
        write_idx(_name(directory, configs.image_file(config, split), gz), images.transpose(0, 2, 1))
        write_idx(_name(directory, configs.label_file(config, split), gz), labels.astype(np.uint8))
    (directory / configs.mapping_file(config)).write_text(mapping_text(config))
    return directory


def default_splits(config: str, train: int = 40, test: int = 12, seed: int = 0
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Random images with every class present, labels in the file's numbering."""
    num_classes = len(configs.CLASS_NAMES[config])
    first = configs.FIRST_LABEL[config]
    splits = {}
    for offset, (split, count) in enumerate((("train", train), ("test", test))):
        labels = (np.arange(count) % num_classes + first).astype(np.uint8)
        splits[split] = (random_upright_images(count, seed + offset), labels)
    return splits


def _name(directory: Path, gz_name: str, gz: bool) -> Path:
    return directory / (gz_name if gz else gz_name[: -len(".gz")])


def zip_folder(folder: Path, zip_path: Path) -> Path:
    """Zips ``folder``'s files as members ``gzip/<name>``, like NIST's gzip.zip."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(folder.iterdir()):
            bundle.write(path, f"gzip/{path.name}")
    return zip_path


def copy_config(source_folder: Path, config: str, destination: Path) -> Path:
    """Copies one config's five files (NIST names) into ``destination``."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in configs.file_names(config):
        shutil.copy(source_folder / name, destination / name)
    return destination


def _gunzip_into(source: Path, destination: Path, config: str, dotted: bool = False) -> Path:
    destination.mkdir(parents=True, exist_ok=True)
    for name in configs.file_names(config):
        target = name[:-3] if name.endswith(".gz") else name
        if dotted:
            target = target.replace("-idx", ".idx")
        data = (source / name).read_bytes()
        (destination / target).write_bytes(gzip.decompress(data) if name.endswith(".gz") else data)
    return destination


def every_source_shape(folder: Path, root: Path, config: str) -> dict[str, Path]:
    """Every accepted shape of the same files, each in its own manual dir."""
    loose = copy_config(folder, config, root / "loose")
    zipped = root / "zipped"
    zipped.mkdir()
    zip_folder(copy_config(folder, config, root / "zip-source"), zipped / "gzip.zip")
    return {
        "extracted gzip/ folder": copy_config(folder, config, root / "extracted" / "gzip").parent,
        "loose .gz files": loose,
        "NIST's gzip.zip": zipped,
        "the zip file itself": zipped / "gzip.zip",
        "gunzipped IDX files": _gunzip_into(folder, root / "raw", config),
        "gunzipped, dotted names": _gunzip_into(folder, root / "dotted", config, dotted=True),
    }
