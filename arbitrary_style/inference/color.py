"""Colour preservation: keep the content's colours, take the style's texture.

Luminance-only transfer (Gatys et al. 2016, "Preserving Color in Neural
Artistic Style Transfer", arXiv 1606.05897, §2.2): the stylized image's
luma Y is combined with the content's chroma Cb and Cr. We use it rather than
matching the style image's colour histogram to the content first because it
needs no change to the style embedding (one embedding serves both modes), it
keeps the content's chroma *exactly*, and it costs two colour conversions.
The conversion is full-range ITU-R BT.601 YCbCr, the one JPEG and Pillow use.
"""

from __future__ import annotations

import numpy as np

# Full-range BT.601 (JFIF) RGB -> YCbCr on [0, 1] values; Cb, Cr centred on 0.5.
_RGB_TO_YCBCR = np.array(
    [
        [0.299, 0.587, 0.114],
        [-0.168735892, -0.331264108, 0.5],
        [0.5, -0.418687589, -0.081312411],
    ],
    np.float64,
)
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)
_OFFSET = np.array([0.0, 0.5, 0.5])


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """[..., 3] RGB in [0, 1] -> YCbCr in [0, 1]."""
    return rgb.astype(np.float64) @ _RGB_TO_YCBCR.T + _OFFSET


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """[..., 3] YCbCr in [0, 1] -> RGB (not clipped)."""
    return (ycbcr.astype(np.float64) - _OFFSET) @ _YCBCR_TO_RGB.T


def preserve_color(content: np.ndarray, stylized: np.ndarray) -> np.ndarray:
    """The stylized luma with the content's chroma, as float32 RGB in [0, 1].

    Both are [H, W, 3] float arrays in [0, 1] of the same size.
    """
    if content.shape != stylized.shape:
        raise ValueError(f"content {content.shape} and stylized {stylized.shape} differ in shape")
    ycbcr = rgb_to_ycbcr(content)
    ycbcr[..., 0] = rgb_to_ycbcr(stylized)[..., 0]
    return np.clip(ycbcr_to_rgb(ycbcr), 0.0, 1.0).astype(np.float32)
