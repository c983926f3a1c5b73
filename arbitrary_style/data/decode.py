"""Decoding any image file into upright 8-bit RGB, and counting the ones that fail.

Why Pillow and not ``tf.io.decode_image``: TF's decoders ignore the EXIF
orientation tag (phone photos come out sideways), do not read WebP, CMYK JPEGs
or palette images with transparency correctly, and a corrupt file raises
inside the tf.data graph, which ends the whole run. Pillow handles every mode
and returns an error we can count. Decoding runs in ``tf.numpy_function``
inside a parallel ``map``; Pillow releases the GIL while it decodes, so the
map still uses all cores. The images reach TF as uint8 HxWx3 and everything
after that (resizing, augmentation) is tf.data ops.
"""

from __future__ import annotations

import io
import logging
import os
import threading

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

# Image files we pick up from folders (Pillow reads all of them; GIF and TIFF
# as their first frame or page, see decode_image). Other files in a folder are
# not read: list_folder returns them, for the tools to say what they skipped.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


class UnreadableImage(Exception):
    """An image file that cannot be decoded (corrupt, empty, not an image)."""


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> uint8 HxWx3."""
    mode = image.mode
    if mode == "RGB":
        return np.asarray(image, dtype=np.uint8)
    if mode in _SIXTEEN_BIT_MODES:
        # 16-bit grayscale (PNG 'I;16' or 'I'): Pillow's convert('L') clips at
        # 255 instead of scaling, which would turn most images white.
        values = np.asarray(image).astype(np.float64) / 257.0
        gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if mode == "F":
        gray = np.clip(np.rint(np.asarray(image, dtype=np.float64)), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Composite onto white: transparent pixels often hold arbitrary (black)
        # colours that dropping the alpha channel would reveal.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"), dtype=np.uint8)
    # L, 1, P, CMYK (Pillow undoes Adobe's inverted CMYK), YCbCr, LAB, HSV...
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def decode_image(data: bytes, *, min_side: int | None = None) -> np.ndarray:
    """Decodes an encoded image into an upright uint8 [H, W, 3] array.

    Args:
      data: the file's bytes.
      min_side: if given, large JPEGs are decoded at a reduced DCT scale
        (Pillow's ``draft``) that still leaves the shorter side >= min_side.
        The pipeline passes the largest size it will resize to, so this only
        skips work that the following downscale throws away.

    Raises:
      UnreadableImage: empty, truncated, corrupt or not an image.
    """
    if not data:
        raise UnreadableImage("empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if min_side and image.format == "JPEG" and min(image.size) > min_side:
                scale = min_side / min(image.size)
                image.draft(
                    "RGB", (int(np.ceil(image.size[0] * scale)), int(np.ceil(image.size[1] * scale)))
                )
            image.load()
            # Animated GIF/WebP, multi-page TIFF: the first frame (the file opens on it).
            upright = ImageOps.exif_transpose(image)
            array = _to_rgb(upright)
    except UnreadableImage:
        raise
    except UnidentifiedImageError:
        # Its own message names only the BytesIO object the bytes were in.
        raise UnreadableImage("not an image file Pillow can identify") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, EOFError) as e:
        # OSError covers truncated files.
        raise UnreadableImage(f"{type(e).__name__}: {e}") from None
    if array.ndim != 3 or array.shape[-1] != 3 or min(array.shape[:2]) < 1:
        raise UnreadableImage(f"unexpected decoded shape {array.shape}")
    return np.ascontiguousarray(array)


def is_hidden(name: str) -> bool:
    """Dot files: system files (.DS_Store) and macOS's AppleDouble twins (``._x.jpg``)."""
    return name.startswith(".")


def list_folder(directory: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(image files, other files) under ``directory``, recursively, each sorted.

    Images are recognised by extension (``IMAGE_EXTENSIONS``, any case);
    symbolic links to folders are followed; hidden files are in neither list.
    The other files are there for the caller to report as skipped.
    """
    found, others = [], []
    for root, dirs, files in os.walk(directory, followlinks=True):
        dirs.sort()
        for name in files:
            if is_hidden(name):
                continue
            path = os.path.join(root, name)
            (found if name.lower().endswith(IMAGE_EXTENSIONS) else others).append(path)
    return sorted(found), sorted(others)


class SkipLog:
    """Counts unreadable images; logs each one once, with the running total.

    One per pipeline (not a global), shared by its parallel decode calls.
    """

    def __init__(self, what: str = "images"):
        self._what = what
        self._lock = threading.Lock()
        self._reasons: dict[str, str] = {}

    def record(self, name: str, reason: str) -> None:
        with self._lock:
            if name in self._reasons:
                return
            self._reasons[name] = reason
            count = len(self._reasons)
        log.warning(
            "skipped unreadable %s %s (%s); %d skipped so far", self._what, name, reason, count
        )

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._reasons)

    @property
    def skipped(self) -> dict[str, str]:
        """Skipped image name -> reason."""
        with self._lock:
            return dict(self._reasons)
