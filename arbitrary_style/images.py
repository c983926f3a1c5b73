"""Reading, writing and resizing images: the one resize of every stage.

Training (through its tf.data twin, ``arbitrary_style.data.preprocess.
resize_shorter_side``), evaluation, the demo and inference all resize with the
rule and the filter defined here:

* shape: Magenta's ``image_utils._smallest_size_at_least``
  (docs/reference-model.md §4), see ``shorter_side_shape``;
* filter: bilinear with half-pixel centres, antialiased when downscaling
  (``jax.image.resize(..., antialias=True)``), see ``resize``.

numpy and JAX only: inference imports this module, and TensorFlow (imported
by the training pipeline) must not load with it.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image


def load_image(image) -> np.ndarray:
    """A path, PIL image or HxWx3 array (uint8, or float in [0, 1]) -> float32 HxWx3 in [0, 1].

    Files are decoded like the training data (arbitrary_style.data.decode):
    EXIF orientation applied, any mode (grayscale, 16-bit, CMYK, palette,
    alpha) to RGB; a GIF, animated WebP or multi-page TIFF gives its first
    frame. An unreadable file raises ``ValueError`` naming it.
    """
    # Deferred: the data package's demo set imports this module.
    from arbitrary_style.data.decode import UnreadableImage, decode_image  # noqa: PLC0415

    if isinstance(image, (str, os.PathLike)):
        try:
            with open(image, "rb") as f:
                image = decode_image(f.read())
        except UnreadableImage as error:
            raise ValueError(
                f"image {os.fspath(image)} cannot be read, {error}, "
                "check that it is a complete image file"
            ) from None
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"expected an HxWx3 image, got an array of shape {array.shape}")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"image arrays must be uint8 or float in [0, 1], got {array.dtype}")
    if array.size and (array.min() < 0.0 or array.max() > 1.0):
        raise ValueError(
            f"float images must lie in [0, 1]; got values in [{array.min():.3g}, {array.max():.3g}]"
        )
    return array.astype(np.float32)


# EXIF orientations that swap width and height (transposed or rotated by 90°).
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)


def image_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(height, width) of the image file ``load_image`` would return, from
    its header alone (EXIF orientation applied); None if Pillow cannot read it."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)  # the EXIF Orientation tag
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return (width, height) if orientation in _TRANSPOSING_ORIENTATIONS else (height, width)


def save_image(image: np.ndarray, path: str | os.PathLike) -> None:
    """Writes a float HxWx3 image in [0, 1] as 8-bit (rounded), format from the suffix."""
    array = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((array * 255.0 + 0.5).astype(np.uint8)).save(path)


def shorter_side_shape(height: int, width: int, side: int) -> tuple[int, int]:
    """The (height, width) that resizing to shorter side ``side`` gives, aspect kept.

    Magenta's rule (``image_utils._smallest_size_at_least``,
    docs/reference-model.md §4): scale = side / min(height, width), and the
    longer side becomes int32(longer * scale), truncated, in float32 as its
    TF graph computes it, so the shapes equal the reference's. One change:
    the shorter side (both, for a square) is ``side`` exactly. Magenta's
    float32 product can fall just below it and truncate to ``side - 1``
    (a 209 x 300 image to 256 gives 255 x 367 there), and a centre crop to
    ``side`` then has a row or column missing.

    Raises:
      ValueError: a side below 1.
    """
    if min(height, width, side) < 1:
        raise ValueError(f"sides must be >= 1, got image {height}x{width} and shorter side {side}")
    scale = np.float32(side) / np.float32(min(height, width))
    new_height = side if height <= width else int(np.float32(height) * scale)
    new_width = side if width <= height else int(np.float32(width) * scale)
    return new_height, new_width


def resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an HxWxC float image to ``shape`` = (height, width).

    Half-pixel centres (as TF2's ``tf.image.resize``; Magenta's TF1
    ``resize_bilinear(align_corners=False)`` samples without the half-pixel
    offset, a fraction of a pixel apart). Antialiased: when downscaling, the
    triangle filter widens to the output pixel's footprint, so every input
    pixel counts. This is a deliberate difference from the reference, whose
    ``resize_images``/``resize_bilinear`` reads only the 2x2 input pixels
    around each sample point, so shrinking by more than 2x skips pixels and
    aliases (fine stripes turn into coarse false ones); upscaling is the same
    either way. ``tf.image.resize(..., antialias=True)`` is the same
    filter (tests/test_images.py).
    """
    shape = (int(shape[0]), int(shape[1]))
    if tuple(image.shape[:2]) == shape:
        return image
    full_shape = (*shape, *image.shape[2:])
    return np.asarray(jax.image.resize(jnp.asarray(image), full_shape, "bilinear", antialias=True))


def resize_shorter_side(image: np.ndarray, side: int) -> np.ndarray:
    """Aspect-preserving ``resize`` so that min(H, W) == side (``shorter_side_shape``)."""
    return resize(image, shorter_side_shape(image.shape[0], image.shape[1], side))


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The middle size x size window (offsets rounded down, as Magenta's ``_central_crop``)."""
    height, width = image.shape[:2]
    if min(height, width) < size:
        raise ValueError(f"cannot crop {size}x{size} from a {height}x{width} image")
    top = (height - size) // 2
    left = (width - size) // 2
    return image[top : top + size, left : left + size]
