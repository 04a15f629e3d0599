"""Tests for emnist_idx.synthetic: readable glyphs, NIST's file layout, determinism."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from emnist_idx import synthetic
from emnist_idx.configs import (
    CLASS_NAMES,
    SPLITS,
    FIRST_LABEL,
    CONFIGS,
    NIST_COUNTS,
    image_file,
    label_file,
    mapping_file,
)
from emnist_idx._format.idx import read_header, read_idx
from emnist_idx._format.mapping import read_mapping
from tests.bundle_factory import DUMMY_DATA
from emnist_idx.synthetic import (
    DUMMY_COUNTS,
    DUMMY_SEED,
    file_seed,
    iter_glyphs,
    mapping_text,
    render_glyphs,
    write_bundle,
    write_config_files,
    write_dummy_config,
)



def _ink_halves(images: np.ndarray) -> dict[str, np.ndarray]:
    """Ink per image in each half of the box (row 0 is the top, column 0 the left)."""
    images = images.astype(np.int64)
    return {
        "top": images[:, :14].sum(axis=(1, 2)),
        "bottom": images[:, 14:].sum(axis=(1, 2)),
        "left": images[:, :, :14].sum(axis=(1, 2)),
        "right": images[:, :, 14:].sum(axis=(1, 2)),
    }


def _looks_like_upright_l(images: np.ndarray) -> bool:
    """An upright "L" keeps most of its ink in the bottom and left halves; mirrored or
    transposed images do not."""
    ink = _ink_halves(images)
    return bool(np.mean((ink["bottom"] > ink["top"]) & (ink["left"] > ink["right"])) >= 0.8)


def _looks_like_upright_7(images: np.ndarray) -> bool:
    """An upright "7" keeps most of its ink in the top half (its bar)."""
    ink = _ink_halves(images)
    return bool(np.mean(ink["top"] > ink["bottom"]) >= 0.9)


def test_render_is_deterministic_per_seed():
    names = CLASS_NAMES["balanced"]
    labels = np.arange(200) % len(names)
    first = render_glyphs(names, labels, seed=5)
    assert np.array_equal(first, render_glyphs(names, labels, seed=5))
    assert not np.array_equal(first, render_glyphs(names, labels, seed=6))


def test_render_shape_dtype_and_mnist_like_content():
    names = CLASS_NAMES["byclass"]
    labels = np.arange(310) % len(names)
    images = render_glyphs(names, labels, seed=1)
    assert images.shape == (310, 28, 28) and images.dtype == np.uint8
    assert (images.reshape(len(images), -1).max(axis=1) == 255).all()  # every glyph has full ink
    ink = (images > 0).mean(axis=(1, 2))
    assert (ink > 0.03).all() and (ink < 0.6).all()
    # Background 0 around the glyph: the outermost ring is almost always blank.
    ring = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)
    assert (ring > 0).mean() < 0.02
    # Anti-aliased: edges have intermediate grey levels, not just 0 and 255.
    assert ((images > 0) & (images < 255)).mean() > 0.02


def test_render_empty_and_bad_labels():
    assert render_glyphs(("A", "B"), np.zeros(0, dtype=np.int64), seed=0).shape == (0, 28, 28)
    with pytest.raises(ValueError):
        render_glyphs(("A", "B"), np.array([0, 2]), seed=0)
    with pytest.raises(ValueError):
        render_glyphs(("A", "B"), np.array([-1]), seed=0)


def test_glyphs_are_upright_and_recognisable():
    names = ("L", "7")
    labels = np.repeat(np.arange(2), 100)
    images = render_glyphs(names, labels, seed=3)
    ells, sevens = images[labels == 0], images[labels == 1]
    assert _looks_like_upright_l(ells)
    assert _looks_like_upright_7(sevens)
    # The checks do see orientation: transposed, mirrored or flipped glyphs fail them.
    assert not _looks_like_upright_l(ells.transpose(0, 2, 1))
    assert not _looks_like_upright_l(ells[:, :, ::-1])
    assert not _looks_like_upright_l(ells[:, ::-1])
    assert not _looks_like_upright_7(sevens[:, ::-1])
    # "L" and "7" differ: their mean images are far apart.
    gap = np.abs(ells.mean(axis=0) - sevens.mean(axis=0)).mean()
    assert gap > 20


def test_letters_draw_both_cases():
    images = render_glyphs(("Ll",), np.zeros(64, dtype=np.int64), seed=0)
    # An upper-case L has a foot on the right, a lower-case l has none: both must occur.
    foot = (images[:, 18:, 16:] > 128).sum(axis=(1, 2))
    assert (foot > 6).any() and (foot <= 2).any()


def test_chunks_match_whole_render():
    names = ("0", "1", "2")
    labels = np.arange(9000) % 3
    whole = render_glyphs(names, labels, seed=2, variants_per_class=8)
    chunks = list(iter_glyphs(names, labels, seed=2, chunk_size=4096, variants_per_class=8))
    assert [len(chunk) for chunk in chunks] == [4096, 4096, 808]
    assert np.array_equal(np.concatenate(chunks), whole)


def test_small_bank_is_prefix_of_large_bank():
    names = ("A",)
    labels = np.zeros(4, dtype=np.int64)
    # Four examples of one class need at most four variants, however many are allowed.
    assert np.array_equal(render_glyphs(names, labels, seed=0, variants_per_class=4),
                          render_glyphs(names, labels, seed=0, variants_per_class=256))


def test_examples_of_a_class_vary():
    images = render_glyphs(("A",), np.zeros(50, dtype=np.int64), seed=0)
    assert len({image.tobytes() for image in images}) == 50


@pytest.mark.parametrize("config", CONFIGS)
def test_write_config_files(tmp_path, config):
    names = CLASS_NAMES[config]
    train_count, test_count = 2 * len(names) + 1, len(names)
    write_config_files(tmp_path, config, train_count, test_count, seed=7)
    first = FIRST_LABEL[config]
    for split, count in zip(SPLITS, (train_count, test_count)):
        stored = read_idx(tmp_path / image_file(config, split))
        labels = read_idx(tmp_path / label_file(config, split))
        assert stored.shape == (count, 28, 28) and stored.dtype == np.uint8
        assert labels.shape == (count,) and labels.dtype == np.uint8
        assert labels.min() == first and labels.max() == first + len(names) - 1
        per_class = np.bincount(labels - first, minlength=len(names))
        assert per_class.max() - per_class.min() <= 1  # balanced
        # Stored transposed, as NIST does: transposing gives back the upright glyphs.
        upright = render_glyphs(names, labels.astype(np.int64) - first,
                                file_seed(7, config, split))
        assert np.array_equal(stored.transpose(0, 2, 1), upright)
        assert not np.array_equal(stored, upright)
    assert read_mapping(tmp_path / mapping_file(config)) == list(names)


def test_stored_images_need_transposing(tmp_path):
    # A 7 read naively from NIST's layout is not upright; transposed, it is.
    write_config_files(tmp_path, "digits", 40, 20, seed=0)
    stored = read_idx(tmp_path / image_file("digits", "train"))
    labels = read_idx(tmp_path / label_file("digits", "train"))
    sevens = stored[labels == 7]
    assert _looks_like_upright_7(sevens.transpose(0, 2, 1))
    assert not _looks_like_upright_7(sevens)


def test_train_and_test_differ(tmp_path):
    write_config_files(tmp_path, "mnist", 20, 20, seed=0)
    train = read_idx(tmp_path / image_file("mnist", "train"))
    test = read_idx(tmp_path / image_file("mnist", "test"))
    assert not {image.tobytes() for image in train} & {image.tobytes() for image in test}


@pytest.mark.slow
def test_streamed_in_several_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(synthetic, "CHUNK_IMAGES", 4096)
    write_config_files(tmp_path, "digits", 9000, 0, seed=4, compresslevel=1)
    path = tmp_path / image_file("digits", "train")
    assert read_header(path).shape == (9000, 28, 28)
    labels = read_idx(tmp_path / label_file("digits", "train")).astype(np.int64)
    expected = render_glyphs(CLASS_NAMES["digits"], labels, file_seed(4, "digits", "train"))
    assert np.array_equal(read_idx(path).transpose(0, 2, 1), expected)
    assert read_idx(tmp_path / image_file("digits", "test")).shape == (0, 28, 28)


def test_mapping_text_is_nists_format():
    assert mapping_text("letters").splitlines()[0] == "1 65 97"
    assert mapping_text("letters").splitlines()[-1] == "26 90 122"
    lines = mapping_text("byclass").splitlines()
    assert lines[0] == "0 48" and lines[10] == "10 65" and lines[61] == "61 122"
    assert mapping_text("balanced").splitlines()[36] == "36 97"
    assert len(mapping_text("bymerge").splitlines()) == 47


def test_write_bundle_zip_members_and_determinism(tmp_path):
    counts = {"mnist": (20, 10), "letters": (26, 26)}
    first = write_bundle(tmp_path / "a", counts, seed=1)
    second = write_bundle(tmp_path / "b", counts, seed=1, make_zip=True)
    assert first == tmp_path / "a"
    names = sorted(path.name for path in (first / "gzip").iterdir())
    assert len(names) == 10
    with zipfile.ZipFile(first / "gzip.zip") as archive:
        assert sorted(archive.namelist()) == [f"gzip/{name}" for name in names]
        for name in names:
            assert archive.read(f"gzip/{name}") == (first / "gzip" / name).read_bytes()
            assert archive.getinfo(f"gzip/{name}").date_time == (1980, 1, 1, 0, 0, 0)
    assert (first / "gzip.zip").read_bytes() == (second / "gzip.zip").read_bytes()
    write_bundle(tmp_path / "c", counts, seed=1, make_zip=False)
    assert not (tmp_path / "c" / "gzip.zip").exists()
    assert len(list((tmp_path / "c" / "gzip").iterdir())) == 10


def test_nist_counts_agree_with_the_configs_classes():
    """NIST's balanced configs have the same count per class; bymerge only merges byclass's classes."""
    for config in ("balanced", "digits"):
        for count in NIST_COUNTS[config]:
            assert count % len(CLASS_NAMES[config]) == 0, config
    assert NIST_COUNTS["bymerge"] == NIST_COUNTS["byclass"]
    assert set(NIST_COUNTS) == set(CONFIGS)


@pytest.mark.slow
def test_dummy_data_is_complete_and_up_to_date(tmp_path):
    """The committed dummy data is what make_dummy_data.py writes with today's generator."""
    assert set(DUMMY_COUNTS) == set(CONFIGS)
    write_bundle(tmp_path, DUMMY_COUNTS, seed=DUMMY_SEED, make_zip=False, compresslevel=1)
    with zipfile.ZipFile(DUMMY_DATA / "gzip.zip") as archive:
        members = set(archive.namelist())
    for config, (train_count, test_count) in DUMMY_COUNTS.items():
        assert train_count >= 2 * len(CLASS_NAMES[config]) and test_count >= 2 * len(CLASS_NAMES[config])
        names = [image_file(config, fs) for fs in SPLITS] + [
            label_file(config, fs) for fs in SPLITS]
        for name in names:
            assert f"gzip/{name}" in members
            assert np.array_equal(read_idx(DUMMY_DATA / "gzip" / name), read_idx(tmp_path / "gzip" / name)), (
                f"{name} is stale: run python dummy_data/make_dummy_data.py")
        assert f"gzip/{mapping_file(config)}" in members
        assert read_mapping(DUMMY_DATA / "gzip" / mapping_file(config)) == list(CLASS_NAMES[config])


@pytest.mark.parametrize("config", ["letters", "digits"])
def test_write_dummy_config_rebuilds_dummy_data_byte_for_byte(tmp_path, config):
    """What `emnist-idx demo` generates without ./dummy_data: the committed files, exactly."""
    written = sorted(path.name for path in write_dummy_config(tmp_path, config).iterdir())
    assert written == sorted([mapping_file(config)] + [
        name(config, split) for split in SPLITS for name in (image_file, label_file)])
    for name in written:
        assert (tmp_path / name).read_bytes() == (DUMMY_DATA / "gzip" / name).read_bytes(), name
