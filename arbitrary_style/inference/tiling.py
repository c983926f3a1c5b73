"""Stylizing images of any size: padding to the network's stride, and tiles.

A photo of 4096x4096 pixels needs about 2 GB for *one* 32-channel float32
activation of the alpha-1 transfer network, so large images are stylized in
overlapping tiles. Two things keep tiles from changing the look:

* the instance-norm statistics of every conditional layer are taken from the
  whole image (a pass over a downscaled copy when the image is over the pixel
  budget; the statistics of a layer are spatial means, which downscaling
  changes little) and given to every tile (``StyleTransferNetwork(moments=)``);
* tiles overlap by ``overlap`` pixels; the quarter of the overlap nearest a
  tile's edge, whose receptive field was cut by the tile boundary, is
  dropped, and the middle half is blended with linear (feathering) weights,
  so no seam shows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

STRIDE = 4  # two stride-2 convolutions: outputs keep the size of multiples of 4


def round_up(value: int, multiple: int = STRIDE) -> int:
    return -(-value // multiple) * multiple


def pad_to_multiple(image: np.ndarray, multiple: int = STRIDE) -> np.ndarray:
    """Reflect-pads the bottom and right of [..., H, W, C] to multiples of ``multiple``.

    The network itself would otherwise round each stride-2 stage up and return
    a larger image (255x257 -> 256x260); padding with the image's own
    reflection and cropping the output back keeps the input's size exactly.
    """
    h, w = image.shape[-3:-1]
    ph, pw = round_up(h, multiple) - h, round_up(w, multiple) - w
    if ph == 0 and pw == 0:
        return image
    pad = [(0, 0)] * (image.ndim - 3) + [(0, ph), (0, pw), (0, 0)]
    # Reflection needs more pixels than the pad; tiny images repeat the edge.
    mode = "reflect" if h > ph and w > pw else "edge"
    return np.pad(image, pad, mode=mode)


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels covering ``length`` with
    at least ``overlap`` pixels shared by neighbours; the last tile ends at
    ``length`` exactly so that every tile has the same size (one compile)."""
    if tile >= length:
        return [0]
    # Steps that are multiples of the network's stride keep every tile on the
    # same stride-2 sampling phase as the whole image.
    step = (tile - overlap) // STRIDE * STRIDE
    if step <= 0:
        raise ValueError(f"tile ({tile}) must be larger than overlap ({overlap})")
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def _ramp(length: int, start: int, end: int, total: int, overlap: int) -> np.ndarray:
    """1-D blending weights of one tile.

    Along an edge shared with a neighbour the weight is 0 for the first
    ``overlap // 4`` pixels (their receptive field was cut by the tile
    boundary), then rises linearly to 1 over the middle half of the overlap.
    The neighbour's weights mirror these, so the two sum to 1 everywhere; at
    the image's own borders the weight stays 1.
    """
    weights = np.ones(length, np.float32)
    margin = overlap // 4
    width = max(overlap - 2 * margin, 1)
    n = min(overlap, length)
    ramp = np.clip((np.arange(n, dtype=np.float32) - margin + 0.5) / width, 0.0, 1.0)
    if start > 0:
        weights[:n] = np.minimum(weights[:n], ramp)
    if end < total:
        weights[length - n :] = np.minimum(weights[length - n :], ramp[::-1])
    return weights


def stylize_in_tiles(
    run_tile: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    *,
    tile: int,
    overlap: int,
    on_tile: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Stylizes [H, W, 3] ``image`` (H and W multiples of 4) tile by tile.

    Args:
      run_tile: maps a [tile_h, tile_w, 3] float32 crop to its stylized crop of
        the same size (all crops have one size, so a jitted function compiles
        once).
      image: float32 in [0, 1].
      tile: tile side in pixels, a multiple of 4.
      overlap: pixels shared by neighbouring tiles, blended with linear weights.
      on_tile: called with (done, total) after each tile, for progress bars.

    Returns:
      [H, W, 3] float32.
    """
    h, w = image.shape[:2]
    if tile % STRIDE or h % STRIDE or w % STRIDE:
        raise ValueError(f"tile {tile} and image {h}x{w} must be multiples of {STRIDE}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got {overlap} for tile {tile}")
    th, tw = min(tile, h), min(tile, w)
    boxes = [(y, x) for y in tile_starts(h, th, overlap) for x in tile_starts(w, tw, overlap)]
    out = np.zeros((h, w, 3), np.float32)
    total_weight = np.zeros((h, w, 1), np.float32)
    for i, (y, x) in enumerate(boxes):
        stylized = np.asarray(run_tile(image[y : y + th, x : x + tw]), np.float32)
        weight = np.outer(
            _ramp(th, y, y + th, h, max(overlap, 1)), _ramp(tw, x, x + tw, w, max(overlap, 1))
        )[..., None]
        out[y : y + th, x : x + tw] += weight * stylized
        total_weight[y : y + th, x : x + tw] += weight
        if on_tile is not None:
            on_tile(i + 1, len(boxes))
    return out / total_weight


def downscale_for_statistics(
    image: np.ndarray, max_pixels: int, resize: Callable[[np.ndarray, tuple[int, int]], np.ndarray]
) -> np.ndarray:
    """``image`` itself if it has at most ``max_pixels``, else a copy resized
    (aspect kept, sides multiples of 4) to about ``max_pixels``."""
    h, w = image.shape[:2]
    if h * w <= max_pixels:
        return image
    scale = (max_pixels / (h * w)) ** 0.5
    size = (max(STRIDE, round_up(int(h * scale))), max(STRIDE, round_up(int(w * scale))))
    return resize(image, size)
