"""Drawing labelled grids of 28x28 images as PNG files with Pillow."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from emnist_idx import configs

SCALE = 3  # each 28x28 image is drawn 3x, 84x84 pixels
PAD = 4  # pixels around each cell
LINE_HEIGHT = 14  # pixels per caption line
_FONT_SIZE = 11
_BACKGROUND = (255, 255, 255)
_TEXT = (0, 0, 0)
GREEN = (0, 128, 0)
RED = (200, 0, 0)


def default_columns(count: int) -> int:
    """Columns of a near-square grid: 8 for 64 images, 5 for 25, at least 1."""
    return max(1, math.ceil(math.sqrt(count)))


def grid_size(count: int, columns: int, scale: int = SCALE, caption_lines: int = 1) -> tuple[int, int]:
    """(width, height) in pixels of the grid ``draw_grid`` makes for ``count`` images."""
    cell_width, cell_height = _cell_size(scale, caption_lines)
    rows = max(1, math.ceil(count / columns))
    return PAD + columns * cell_width, PAD + rows * cell_height


def draw_grid(
    images: np.ndarray,
    captions: Sequence[str],
    *,
    columns: int | None = None,
    scale: int = SCALE,
    colors: Sequence[tuple[int, int, int]] | None = None,
) -> Image.Image:
    """Draws (N, 28, 28) or (N, 28, 28, 1) uint8 images in a grid, each with its caption beneath.

    A caption may hold several lines (separated by ``\\n``); every cell gets room for the longest.
    ``colors`` gives each caption's RGB text color (black by default). Images are drawn as stored:
    ink 255 (white) on background 0 (black), each scaled up ``scale`` times without smoothing.
    """
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W) uint8 images, got shape {images.shape} and dtype "
                         f"{images.dtype}")
    if len(captions) != len(images):
        raise ValueError(f"{len(images)} images but {len(captions)} captions")
    columns = columns or default_columns(len(images))
    caption_lines = max((caption.count("\n") + 1 for caption in captions), default=1)
    canvas = Image.new("RGB", grid_size(len(images), columns, scale, caption_lines), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=_FONT_SIZE)
    cell_width, cell_height = _cell_size(scale, caption_lines)
    side = configs.IMAGE_SIZE * scale
    for index, (image, caption) in enumerate(zip(images, captions)):
        left = PAD + (index % columns) * cell_width
        top = PAD + (index // columns) * cell_height
        tile = Image.fromarray(image, mode="L").resize((side, side), Image.Resampling.NEAREST)
        canvas.paste(tile.convert("RGB"), (left, top))
        color = colors[index] if colors is not None else _TEXT
        for line_number, line in enumerate(caption.split("\n")):
            width = draw.textlength(line, font=font)
            x = left + max(0.0, (side - width) / 2)
            draw.text((x, top + side + 1 + line_number * LINE_HEIGHT), line, fill=color, font=font)
    return canvas


def save_grid(path: str | os.PathLike, images: np.ndarray, captions: Sequence[str], **kwargs) -> str:
    """Draws a grid (see ``draw_grid``) and writes it as a PNG; returns the path written."""
    path = os.fspath(path)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    draw_grid(images, captions, **kwargs).save(path, format="PNG")
    return path


def _cell_size(scale: int, caption_lines: int) -> tuple[int, int]:
    side = configs.IMAGE_SIZE * scale
    return side + PAD, side + 2 + caption_lines * LINE_HEIGHT + PAD
