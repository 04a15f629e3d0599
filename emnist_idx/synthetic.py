"""Synthetic EMNIST-layout data: readable, handwriting-like glyphs in NIST's files and bundle.

Glyphs are drawn with Pillow's built-in TrueType font (Aileron) under random rotation, shear,
aspect, scale and stroke width, then fitted into the 28x28 box like EMNIST (bounding box centred,
about 20 px tall, anti-aliased, ink 255 on background 0). To be fast for full-size configs, a bank of
variants per class is rendered once with Pillow; images are then built by picking bank entries and
shifting them by up to ``MAX_SHIFT`` pixels with vectorised numpy. Everything is deterministic for a
given seed.

``write_bundle`` writes a ``gzip/`` folder (and ``gzip.zip``) laid out exactly like NIST's download,
with images stored transposed as NIST stores them.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from emnist_idx.configs import (
    CLASS_NAMES,
    SPLITS,
    FIRST_LABEL,
    CONFIGS,
    check_config,
    file_names,
    IMAGE_SIZE,
    image_file,
    label_file,
    mapping_file,
)
from emnist_idx._format.idx import write_idx, write_idx_chunks

MAX_SHIFT = 2  # random integer shift, in pixels, applied to every bank entry on use
VARIANTS_PER_CLASS = 256
CHUNK_IMAGES = 50_000  # images generated and compressed at a time by write_config_files

_BLOCK = 4096  # images sharing one augmentation random stream; chunks are whole blocks
_PADDED = IMAGE_SIZE + 2 * MAX_SHIFT
_FONT_SIZE = 48  # glyphs are drawn at about twice their final size, then downsampled
_HEIGHT_RANGE = (17.0, 22.0)  # final size of the glyph's larger side, in pixels
_MAX_ROTATION = 12.0  # degrees
_MAX_SHEAR = 0.25
_MAX_ASPECT = 0.15
_MAX_STROKE = 1.0  # extra stroke width, in final pixels (drawn as a whole number at drawing size)


def render_glyphs(
    class_names: Sequence[str],
    labels: np.ndarray,
    seed: int,
    *,
    variants_per_class: int = VARIANTS_PER_CLASS,
) -> np.ndarray:
    """Returns (N, 28, 28) uint8 upright glyph images (ink 255) for class indices ``labels``.

    ``labels`` index ``class_names``; a name of several characters (letters' "Aa") draws one of
    them at random per bank variant. ``seed`` is a non-negative int; the same arguments always
    give the same images. At most ``variants_per_class`` variants are drawn with Pillow per class
    (fewer when a class has fewer examples); examples reuse them under random shifts.
    """
    labels = np.asarray(labels)
    out = np.empty((len(labels), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    start = 0
    for chunk in iter_glyphs(class_names, labels, seed, variants_per_class=variants_per_class):
        out[start : start + len(chunk)] = chunk
        start += len(chunk)
    return out


def iter_glyphs(
    class_names: Sequence[str],
    labels: np.ndarray,
    seed: int,
    chunk_size: int = CHUNK_IMAGES,
    *,
    variants_per_class: int = VARIANTS_PER_CLASS,
) -> Iterator[np.ndarray]:
    """Yields ``render_glyphs``'s images in chunks of about ``chunk_size`` (whole blocks of 4096).

    The concatenated chunks equal ``render_glyphs(class_names, labels, seed)`` for any chunk size.
    """
    labels = _check_labels(labels, len(class_names))
    counts = np.bincount(labels, minlength=len(class_names))
    variants = max(1, min(variants_per_class, int(counts.max(initial=0))))
    bank = _render_bank(class_names, counts > 0, variants, seed)
    variant = _rank_within_class(labels, counts) % variants
    blocks_per_chunk = max(1, math.ceil(chunk_size / _BLOCK))
    for start in range(0, len(labels), blocks_per_chunk * _BLOCK):
        stop = min(start + blocks_per_chunk * _BLOCK, len(labels))
        out = np.empty((stop - start, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
        for block_start in range(start, stop, _BLOCK):
            block_stop = min(block_start + _BLOCK, stop)
            rng = np.random.default_rng([seed, 2, block_start // _BLOCK])
            _place_shifted(
                bank, labels[block_start:block_stop], variant[block_start:block_stop], rng,
                out[block_start - start : block_stop - start],
            )
        yield out


def _check_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or (labels.size and labels.dtype.kind not in "iu"):
        raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1}, found "
                         f"{labels.min()}..{labels.max()}")
    return labels.astype(np.intp, copy=False)


def _rank_within_class(labels: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """For each example, how many earlier examples share its class (so variants cycle, not repeat)."""
    order = np.argsort(labels, kind="stable")
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.empty(len(labels), dtype=np.intp)
    rank[order] = np.arange(len(labels)) - starts[labels[order]]
    return rank


def _place_shifted(
    bank: np.ndarray, labels: np.ndarray, variant: np.ndarray, rng: np.random.Generator,
    out: np.ndarray,
) -> None:
    """Fills ``out`` with bank entries, each shifted by a random integer offset of ±MAX_SHIFT.

    Entries are gathered sorted by shift, so each shift is one slice copy, then put back in order
    (``np.take`` on whole rows is far faster than multi-axis fancy indexing).
    """
    side = 2 * MAX_SHIFT + 1
    count = len(labels)
    shift = rng.integers(0, side * side, size=count)
    order = np.argsort(shift, kind="stable")
    bounds = np.searchsorted(shift[order], np.arange(side * side + 1))
    rows = bank.reshape(-1, _PADDED, _PADDED)
    gathered = np.take(rows, (labels * bank.shape[1] + variant)[order], axis=0)
    shifted = np.empty((count, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for group in range(side * side):
        start, stop = bounds[group], bounds[group + 1]
        dy, dx = divmod(group, side)
        shifted[start:stop] = gathered[start:stop, dy : dy + IMAGE_SIZE, dx : dx + IMAGE_SIZE]
    inverse = np.empty(count, dtype=np.intp)
    inverse[order] = np.arange(count)
    np.take(shifted, inverse, axis=0, out=out)


def _render_bank(
    class_names: Sequence[str], wanted: np.ndarray, variants: int, seed: int
) -> np.ndarray:
    """Renders ``variants`` padded (32x32) glyphs per wanted class; other classes stay blank.

    Each class draws from its own random stream, so a smaller bank is a prefix of a larger one.
    """
    bank = np.zeros((len(class_names), variants, _PADDED, _PADDED), dtype=np.uint8)
    for index, name in enumerate(class_names):
        if not wanted[index]:
            continue
        if not name:
            raise ValueError(f"class {index} has an empty name")
        rng = np.random.default_rng([seed, 1, index])
        for variant in range(variants):
            glyph = _render_variant(name[rng.integers(len(name))], rng)
            height, width = glyph.shape
            top = (_PADDED - height) // 2
            left = (_PADDED - width) // 2
            bank[index, variant, top : top + height, left : left + width] = glyph
    return bank


@functools.lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's built-in TrueType font (Aileron Regular) at drawing size."""
    return ImageFont.load_default(size=_FONT_SIZE)


@functools.lru_cache(maxsize=512)
def _drawn_char(char: str, stroke: int) -> Image.Image:
    """``char`` drawn with the default font at drawing size, cropped to its ink plus a margin."""
    font = _font()
    left, top, right, bottom = font.getbbox(char, stroke_width=stroke)
    image = Image.new("L", (int(right - left) + 4, int(bottom - top) + 4), 0)
    ImageDraw.Draw(image).text((2 - left, 2 - top), char, font=font, fill=255, stroke_width=stroke,
                               stroke_fill=255)
    if image.getbbox() is None:
        raise ValueError(f"the default font draws nothing for {char!r}")
    return image


def _render_variant(char: str, rng: np.random.Generator) -> np.ndarray:
    """Draws one character with random stroke, rotation, shear and aspect; fits it to the box."""
    stroke_pixels = rng.uniform(0.0, _MAX_STROKE)
    angle = math.radians(rng.uniform(-_MAX_ROTATION, _MAX_ROTATION))
    shear = rng.uniform(-_MAX_SHEAR, _MAX_SHEAR)
    aspect = 1.0 + rng.uniform(-_MAX_ASPECT, _MAX_ASPECT)
    target = rng.uniform(*_HEIGHT_RANGE)

    # Small glyphs (x-height letters) are enlarged more, so they get less stroke at drawing size.
    enlargement = target / max(_drawn_char(char, 0).size)
    source = _drawn_char(char, round(stroke_pixels / enlargement))
    size, data = _affine(source.size, angle, shear, aspect)
    image = source.transform(size, Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR)
    image = image.crop(image.getbbox())
    scale = target / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    glyph = np.asarray(image.resize(size, Image.Resampling.BICUBIC), dtype=np.float32)
    return np.round(glyph * (255.0 / max(float(glyph.max()), 1.0))).astype(np.uint8)


def _affine(
    size: tuple[int, int], angle: float, shear: float, aspect: float
) -> tuple[tuple[int, int], tuple[float, ...]]:
    """Output size and Pillow's AFFINE data (output -> input) for rotate . shear . stretch.

    The output is just large enough to hold the whole transformed source, centred.
    """
    cos, sin = math.cos(angle), math.sin(angle)
    # forward = rotation @ shear @ diag(aspect, 1 / aspect)
    a, b = cos * aspect, (cos * shear - sin) / aspect
    c, d = sin * aspect, (sin * shear + cos) / aspect
    width, height = size
    half_w = (abs(a) * width + abs(b) * height) / 2
    half_h = (abs(c) * width + abs(d) * height) / 2
    out_size = (math.ceil(2 * half_w) + 2, math.ceil(2 * half_h) + 2)
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    out_cx, out_cy = out_size[0] / 2, out_size[1] / 2
    in_cx, in_cy = width / 2, height / 2
    data = (ia, ib, in_cx - ia * out_cx - ib * out_cy, ic, id_, in_cy - ic * out_cx - id_ * out_cy)
    return out_size, data


def balanced_labels(num_classes: int, count: int, seed: int) -> np.ndarray:
    """``count`` class indices as even over the classes as possible, in a seeded random order."""
    labels = np.arange(count, dtype=np.intp) % num_classes
    return np.random.default_rng([seed, 3]).permutation(labels)


def file_seed(seed: int, config: str, split: str) -> int:
    """The seed ``write_config_files`` uses for one config's train or test file."""
    entropy = [seed, 4, CONFIGS.index(config), SPLITS.index(split)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def write_config_files(
    directory: str | os.PathLike,
    config: str,
    train_count: int,
    test_count: int,
    seed: int,
    compresslevel: int = 6,
) -> None:
    """Writes NIST's four gzip IDX files and the mapping file of ``config`` into ``directory``.

    Images are stored transposed, as NIST does; labels use the config's numbering (letters: 1..26).
    Images are generated and compressed in chunks, so memory stays bounded for full-size configs.
    """
    check_config(config)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    names = CLASS_NAMES[config]
    for split, count in zip(SPLITS, (train_count, test_count)):
        if count < 0:
            raise ValueError(f"{config} {split} count must not be negative, got {count}")
        sub_seed = file_seed(seed, config, split)
        labels = balanced_labels(len(names), count, sub_seed)
        write_idx(directory / label_file(config, split),
                  (labels + FIRST_LABEL[config]).astype(np.uint8), compresslevel=compresslevel)
        chunks = (chunk.transpose(0, 2, 1)
                  for chunk in iter_glyphs(names, labels, sub_seed, chunk_size=CHUNK_IMAGES))
        write_idx_chunks(directory / image_file(config, split), np.uint8, (count, IMAGE_SIZE, IMAGE_SIZE),
                         chunks, compresslevel)
    (directory / mapping_file(config)).write_bytes(mapping_text(config).encode("ascii"))


def mapping_text(config: str) -> str:
    """The contents of NIST's mapping file for ``config``: ``label code_point [code_point...]`` lines."""
    first = FIRST_LABEL[config]
    return "".join(
        " ".join([str(first + index), *(str(ord(char)) for char in name)]) + "\n"
        for index, name in enumerate(CLASS_NAMES[config])
    )


def write_bundle(
    directory: str | os.PathLike,
    counts: Mapping[str, tuple[int, int]],
    seed: int = 0,
    make_zip: bool = True,
    compresslevel: int = 6,
) -> Path:
    """Writes ``directory/gzip/`` with each config's files and, if asked, ``directory/gzip.zip``.

    ``counts`` maps config names to (train, test) counts. The zip's members are ``gzip/<file name>``
    with fixed timestamps, so the same arguments give byte-identical files.
    """
    directory = Path(directory)
    folder = directory / "gzip"
    members: list[str] = []
    for config, (train_count, test_count) in counts.items():
        write_config_files(folder, config, train_count, test_count, seed, compresslevel)
        mapping, *idx_files = file_names(config)
        members += [*idx_files, mapping]  # the member order dummy_data/gzip.zip was made with
    if make_zip:
        _write_zip(directory / "gzip.zip", folder, members)
    return directory


def _write_zip(path: Path, folder: Path, members: Sequence[str]) -> None:
    """Zips ``folder``'s files as ``gzip/<name>``: already-gzip'd files stored, text deflated."""
    with zipfile.ZipFile(path, "w") as archive:
        for name in members:
            source = folder / name
            info = zipfile.ZipInfo(f"gzip/{name}", date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_STORED if name.endswith(".gz") else zipfile.ZIP_DEFLATED
            info.file_size = source.stat().st_size
            with open(source, "rb") as stream, archive.open(info, "w") as member:
                shutil.copyfileobj(stream, member, 1 << 22)


# The bundle in a checkout's dummy_data/ (dummy_data/make_dummy_data.py writes it; `emnist-idx demo`
# makes the config it needs when there is no ./dummy_data): (train, test) examples per class.
DUMMY_SEED = 20170517  # EMNIST's arXiv submission date
DUMMY_PER_CLASS = {
    "byclass": (4, 2),
    "bymerge": (4, 2),
    "balanced": (24, 6),
    "letters": (4, 2),
    "digits": (4, 2),
    "mnist": (4, 2),
}
DUMMY_COUNTS = {
    config: (train * len(CLASS_NAMES[config]), test * len(CLASS_NAMES[config]))
    for config, (train, test) in DUMMY_PER_CLASS.items()
}
DUMMY_COMPRESSLEVEL = 9


def write_dummy_config(directory: str | os.PathLike, config: str) -> Path:
    """Writes ``config``'s files of the dummy_data bundle into ``directory``; returns it.

    The files are byte for byte those in a checkout's ``dummy_data/gzip/``.
    """
    check_config(config)
    write_config_files(directory, config, *DUMMY_COUNTS[config], seed=DUMMY_SEED,
                       compresslevel=DUMMY_COMPRESSLEVEL)
    return Path(directory)
