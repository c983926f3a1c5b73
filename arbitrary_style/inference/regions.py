"""Styles by region: masks and strength maps as per-pixel weights of parameter sets.

The transfer network mixes K sets of conditional-norm parameters per pixel
(``StyleTransferNetwork(mix=)``, ``layers.mixed_norm_params``). This module
turns what a user gives into those weights, at the network input's size:

* masks: one greyscale image per style (white: this style), or one label
  image whose distinct values (grey levels or colours, in ascending order)
  stand for the styles in order; any size, resized to the content
  (``images.resize``), blurred by a Gaussian of ``feather`` pixels so that
  the styles cross-fade instead of meeting at a seam, and normalised to sum
  to 1 at every pixel (where no mask covers a pixel, the styles share it
  equally);
* a strength map: a greyscale image, white the full style and black the
  content's own style (strength 1 and 0 of the identity interpolation,
  docs/reference-model.md §6), times the scalar strength, resized and
  feathered the same way. It becomes one more parameter set, the content's
  own (weight 1 - s), the others scaled by s: the heads are affine in the
  style embedding, so this is the embedding interpolated per pixel.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.ndimage
from PIL import Image

from arbitrary_style import images

# Default feathering: this fraction of the content's shorter side (at the
# network), as the Gaussian's standard deviation.
DEFAULT_FEATHER_FRACTION = 0.01
# Most distinct values a label image may have (a photo given as a label image
# has thousands).
MAX_LABELS = 64


def _name(mask) -> str:
    return f"mask {os.fspath(mask)}" if isinstance(mask, (str, os.PathLike)) else "mask"


def load_grey(mask) -> np.ndarray:
    """A mask as float32 HxW in [0, 1]: a path or PIL image (converted to
    greyscale), or an array (HxW or HxWxC, uint8 or bool or float in [0, 1];
    channels averaged)."""
    if isinstance(mask, (str, os.PathLike, Image.Image)):
        return images.load_image(mask).mean(axis=-1)
    array = np.asarray(mask)
    array = array.astype(np.float32) / (255.0 if array.dtype == np.uint8 else 1.0)
    if array.ndim == 3:
        array = array.mean(axis=-1)
    elif array.ndim != 2:
        raise ValueError(f"mask of shape {array.shape} is not an image, give an HxW or HxWxC array")
    array = np.asarray(array, np.float32)
    if not np.all(np.isfinite(array)) or array.min() < 0 or array.max() > 1:
        raise ValueError("mask values out of range, they must lie in [0, 1], give uint8 or [0, 1] floats")
    return array


def label_masks(label_image, count: int) -> np.ndarray:
    """One label image -> ``count`` one-hot masks [count, H, W], one per distinct
    value (colour) in ascending order; a ValueError unless there are ``count``."""
    if isinstance(label_image, (str, os.PathLike, Image.Image)):
        array = np.round(images.load_image(label_image) * 255).astype(np.int64)
    else:
        array = np.asarray(label_image)
        if array.dtype != np.uint8 and np.issubdtype(array.dtype, np.floating):
            array = np.round(array * 255)
        array = array.astype(np.int64)
    if array.ndim == 2:
        array = array[..., None]
    keys = array[..., 0]
    for channel in range(1, min(array.shape[-1], 3)):
        keys = (keys << 8) + array[..., channel]
    values, inverse = np.unique(keys, return_inverse=True)
    if len(values) != count:
        many = f"more than {MAX_LABELS}" if len(values) > MAX_LABELS else str(len(values))
        raise ValueError(
            f"{_name(label_image)} has {many} distinct values for {count} styles, a label image "
            "has one value per style (in ascending order), give one value per style, a lossless "
            "file (PNG), or one greyscale mask per style"
        )
    inverse = inverse.reshape(array.shape[:2])
    return np.stack([(inverse == k).astype(np.float32) for k in range(count)])


def feather_sigma(shape: tuple[int, int], feather: float | None) -> float:
    if feather is None:
        return DEFAULT_FEATHER_FRACTION * min(shape)
    if not np.isfinite(feather) or feather < 0:
        raise ValueError(f"feather {feather} out of range, it is a blur in pixels, give 0 or more")
    return float(feather)


def _fit(mask: np.ndarray, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """HxW resized to ``shape`` and blurred by a Gaussian of ``sigma`` pixels."""
    fitted = images.resize(mask[..., None].astype(np.float32), shape)[..., 0]
    if sigma > 0:
        # Reflection at the border: an edge region keeps its weight up to the edge.
        fitted = scipy.ndimage.gaussian_filter(fitted, sigma, mode="reflect", truncate=3.0)
    return np.clip(fitted, 0.0, 1.0)


def region_weights(masks, count: int, shape: tuple[int, int], feather: float | None) -> np.ndarray:
    """Per-pixel weights [H, W, count] of ``count`` styles, summing to 1.

    Args:
      masks: one mask per style, or one label image (see the module docstring).
      count: the number of styles.
      shape: (height, width) of the content at the network.
      feather: the blur's standard deviation in pixels (None: 1 % of the
        shorter side; 0: none).
    """
    items = list(masks) if isinstance(masks, (list, tuple)) else [masks]
    if len(items) == 1 and count > 1:
        grey = label_masks(items[0], count)
    elif len(items) == count:
        grey = [load_grey(m) for m in items]
    else:
        raise ValueError(
            f"{len(items)} masks for {count} styles, regions need one greyscale mask per style "
            "or one label image, give one per style"
        )
    sigma = feather_sigma(shape, feather)
    fitted = np.stack([_fit(m, shape, sigma) for m in grey], axis=-1)
    total = fitted.sum(axis=-1, keepdims=True)
    # Uncovered pixels (all masks 0) are shared equally.
    uncovered = total < 1e-6
    return np.where(uncovered, 1.0 / count, fitted / np.where(uncovered, 1.0, total)).astype(np.float32)


def strength_weights(
    strength_map, strength: float, shape: tuple[int, int], feather: float | None
) -> np.ndarray:
    """The per-pixel strength [H, W]: the map (white 1) resized, feathered, times ``strength``."""
    grey = load_grey(strength_map)
    return (strength * _fit(grey, shape, feather_sigma(shape, feather))).astype(np.float32)
