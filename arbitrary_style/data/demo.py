"""The embedded demo set: nothing to download.

Content: photographs that scikit-image ships inside its wheel (in
``skimage/data/``, read without network access; the grayscale one is
repeated to RGB). Their licences, from scikit-image's docstrings:

  astronaut            NASA, public domain (no known copyright restrictions)
  chelsea              CC0, Stefan van der Walt
  coffee               CC0, Rachel Michetti
  rocket               SpaceX, released into the public domain
  hubble_deep_field    NASA, public domain
  immunohistochemistry CMMI, no known copyright restrictions
  retina               Wikimedia Commons, CC0 1.0
  camera               CC0, Lav Varshney (grayscale)

Styles: procedurally generated, deterministic images from six visually
distinct families (brush strokes, stripes, cells, fractal noise, dots,
marbling). ``'train'`` and ``'heldout'`` draw from disjoint random seeds, so
held-out styles are never training styles but come from the same families:
the evaluation's "unobserved styles" (docs/reference-model.md §5).
"""

from __future__ import annotations

import colorsys
import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from arbitrary_style import images

CONTENT_NAMES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "camera",
)
STYLE_SIZE = 256
FAMILIES = ("strokes", "stripes", "cells", "noise", "dots", "marble")
STYLES_PER_FAMILY = {"train": 4, "heldout": 1}
# Disjoint seed namespaces: a held-out style can never equal a training one.
_SPLIT_SEED = {"train": 1, "heldout": 2}


def square(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 HxWx3 -> float32 size x size x 3 in [0, 1]: shorter side resized
    to ``size``, centre crop (``arbitrary_style.images``, the resize of every
    stage); the demo's grids and scores."""
    x = image.astype(np.float32) / 255.0
    return images.center_crop(images.resize_shorter_side(x, size), size)


def content_images() -> list[np.ndarray]:
    """The demo's content photos: uint8 [H, W, 3], in ``CONTENT_NAMES`` order."""
    # Deferred: scikit-image is needed only for the photos, not the styles.
    import skimage.data  # noqa: PLC0415

    photos = []
    for name in CONTENT_NAMES:
        image = np.asarray(getattr(skimage.data, name)())
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        photos.append(np.ascontiguousarray(image[..., :3].astype(np.uint8)))
    return photos


def style_images(split: str) -> np.ndarray:
    """uint8 [N, 256, 256, 3] procedurally generated styles; split 'train' or 'heldout'.

    Order: family by family (``FAMILIES``), ``STYLES_PER_FAMILY[split]`` each.
    """
    if split not in _SPLIT_SEED:
        raise ValueError(f"unknown demo style split {split!r}; valid: heldout, train")
    return _style_images(split).copy()


def style_names(split: str) -> list[str]:
    """Names of ``style_images(split)``, e.g. 'train/cells_2'."""
    return [f"{split}/{f}_{k}" for f in FAMILIES for k in range(STYLES_PER_FAMILY[split])]


@functools.cache
def _style_images(split: str) -> np.ndarray:
    styles = []
    for family_index, family in enumerate(FAMILIES):
        for k in range(STYLES_PER_FAMILY[split]):
            rng = np.random.default_rng([20261123, _SPLIT_SEED[split], family_index, k])
            styles.append(_GENERATORS[family](rng, STYLE_SIZE))
    stacked = np.stack(styles)
    stacked.setflags(write=False)
    return stacked


def _palette(rng: np.random.Generator, n: int) -> np.ndarray:
    """n colours around a random hue, with varied saturation and value."""
    base = rng.random()
    colours = []
    for _ in range(n):
        hue = (base + rng.normal(0, 0.18)) % 1.0
        colours.append(colorsys.hsv_to_rgb(hue, rng.uniform(0.35, 1.0), rng.uniform(0.25, 1.0)))
    return (np.array(colours) * 255).astype(np.float64)


def _fractal_noise(rng: np.random.Generator, size: int, octaves: int = 5) -> np.ndarray:
    """Sum of bilinearly upsampled random grids (value noise), in [0, 1]."""
    total = np.zeros((size, size))
    amplitude, weight = 1.0, 0.0
    for octave in range(octaves):
        cells = 2 ** (octave + 2)
        grid = rng.random((cells, cells)).astype(np.float32)
        up = np.asarray(Image.fromarray(grid, mode="F").resize((size, size), Image.BILINEAR))
        total += amplitude * up
        weight += amplitude
        amplitude *= 0.55
    total /= weight
    return (total - total.min()) / max(total.max() - total.min(), 1e-6)


def _map_palette(t: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """t in [0, 1] -> colours interpolated along the palette."""
    positions = np.linspace(0, 1, len(palette))
    channels = [np.interp(t, positions, palette[:, c]) for c in range(3)]
    return np.clip(np.stack(channels, axis=-1), 0, 255).astype(np.uint8)


def _strokes(rng, size):
    palette = _palette(rng, 5).astype(int)
    image = Image.new("RGB", (size, size), tuple(palette[0]))
    draw = ImageDraw.Draw(image)
    flow = _fractal_noise(rng, size, octaves=3) * np.pi * rng.uniform(1, 3) + rng.uniform(0, np.pi)
    length, width = rng.uniform(8, 30), int(rng.integers(2, 7))
    for _ in range(int(rng.integers(500, 900))):
        x, y = rng.uniform(0, size, 2)
        angle = flow[int(y) % size, int(x) % size]
        dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
        colour = tuple(int(c) for c in np.clip(palette[rng.integers(1, 5)] + rng.normal(0, 12, 3), 0, 255))
        draw.line([(x - dx, y - dy), (x + dx, y + dy)], fill=colour, width=width)
    return np.asarray(image.filter(ImageFilter.SMOOTH))


def _stripes(rng, size):
    palette = _palette(rng, int(rng.integers(2, 5)))
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    angle, period = rng.uniform(0, np.pi), rng.uniform(10, 40)
    warp = _fractal_noise(rng, size, octaves=3) * rng.uniform(0, 12)
    phase = (x * np.cos(angle) + y * np.sin(angle) + warp) / period
    t = 0.5 + 0.5 * np.sin(2 * np.pi * phase)
    if rng.random() < 0.5:  # hard-edged stripes
        t = (t > 0.5).astype(np.float64)
    return _map_palette(t, palette)


def _cells(rng, size):
    n = int(rng.integers(15, 70))
    points = rng.uniform(0, size, (n, 2))
    colours = _palette(rng, n)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    d = (x[..., None] - points[:, 0]) ** 2 + (y[..., None] - points[:, 1]) ** 2
    order = np.argsort(d, axis=-1)
    nearest, second = order[..., 0], order[..., 1]
    d1 = np.sqrt(np.take_along_axis(d, nearest[..., None], -1)[..., 0])
    d2 = np.sqrt(np.take_along_axis(d, second[..., None], -1)[..., 0])
    image = colours[nearest]
    edge = np.clip((d2 - d1) / rng.uniform(1.5, 4), 0, 1)[..., None]  # dark cell walls
    return np.clip(image * edge, 0, 255).astype(np.uint8)


def _noise(rng, size):
    t = _fractal_noise(rng, size, octaves=int(rng.integers(3, 7)))
    return _map_palette(t, _palette(rng, int(rng.integers(2, 5))))


def _dots(rng, size):
    palette = _palette(rng, 3).astype(int)
    image = Image.new("RGB", (size, size), tuple(palette[0]))
    draw = ImageDraw.Draw(image)
    step = rng.uniform(10, 28)
    for gy in np.arange(0, size + step, step):
        for gx in np.arange(0, size + step, step):
            r = step * rng.uniform(0.15, 0.5)
            cx, cy = gx + rng.normal(0, step * 0.1), gy + rng.normal(0, step * 0.1)
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=tuple(palette[rng.integers(1, 3)]))
    return np.asarray(image)


def _marble(rng, size):
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    turbulence = _fractal_noise(rng, size, octaves=6) * rng.uniform(4, 10)
    frequency = rng.uniform(2, 6) * 2 * np.pi / size
    t = np.abs(np.sin(frequency * (x + y * rng.uniform(-1, 1)) + turbulence))
    return _map_palette(t ** rng.uniform(0.3, 1.0), _palette(rng, 3))


_GENERATORS = {
    "strokes": _strokes,
    "stripes": _stripes,
    "cells": _cells,
    "noise": _noise,
    "dots": _dots,
    "marble": _marble,
}
