"""Two numbers that say whether an image is a stylization of a photo.

A style-transfer loss alone cannot tell a stylization from a failure: with
the VGG-19 loss network at 64 px, a flat image in the style's mean colour
scores a lower loss than the photo itself. These scores look at the two
things a person looks for:

* **content score**: how much of the photo's edge structure survives, the
  Pearson correlation of the Sobel gradient magnitudes of the photo's and the
  stylized image's luminance (1 for the photo itself, ~0 for an image that
  kept none of its edges).
* **style score**: how far the texture statistics moved from the photo's
  toward the style's, ``1 - D(stylized, style) / D(photo, style)`` where D is
  the mean over the loss network's style layers of the relative Frobenius
  distance between Gram matrices, ``|G(x) - G(style)| / |G(style)|``. 0 for
  the photo itself, 1 for an image with the style's Gram matrices, negative
  when the image moved away from the style.

Both are computed per (photo, style) pair; ``summarize`` gives their means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from arbitrary_style.losses import gram_matrix

# ITU-R BT.601 luma weights.
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
STYLE_LAYERS = ("conv1", "conv2", "conv3", "conv4")


def sobel_magnitude(images: np.ndarray) -> np.ndarray:
    """[B, H, W, 3] in [0, 1] -> [B, H-2, W-2] gradient magnitude of the luminance."""
    y = np.asarray(images, np.float32) @ LUMA
    # Sobel: a [1, 2, 1] smoothing across the derivative's direction.
    gx = y[:, :, 2:] - y[:, :, :-2]
    gx = gx[:, :-2] + 2 * gx[:, 1:-1] + gx[:, 2:]
    gy = y[:, 2:] - y[:, :-2]
    gy = gy[:, :, :-2] + 2 * gy[:, :, 1:-1] + gy[:, :, 2:]
    return np.hypot(gx, gy)


def content_scores(photos: np.ndarray, stylized: np.ndarray) -> np.ndarray:
    """[B] correlation of each photo's edge magnitudes with its stylization's."""
    a = sobel_magnitude(photos).reshape(len(photos), -1)
    b = sobel_magnitude(stylized).reshape(len(stylized), -1)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    return (a * b).sum(axis=1) / np.maximum(denominator, 1e-12)


def gram_distance(grams: Mapping[str, np.ndarray], style_grams: Mapping[str, np.ndarray]) -> np.ndarray:
    """[B] mean over layers of |G - G_style|_F / |G_style|_F."""
    per_layer = [
        np.linalg.norm(grams[k] - style_grams[k], axis=(1, 2))
        / np.maximum(np.linalg.norm(style_grams[k], axis=(1, 2)), 1e-12)
        for k in style_grams
    ]
    return np.mean(per_layer, axis=0)


class StyleScorer:
    """``style_scores`` of any number of stylizations of fixed (photo, style)
    pairs: the loss network's Gram program compiles once, and the photos'
    and styles' Gram matrices are computed once."""

    def __init__(self, loss_network, photos, styles, layers: Sequence[str] = STYLE_LAYERS):
        graphdef, state = nnx.split(loss_network)  # the weights are an argument, not constants
        layers = tuple(layers)

        @jax.jit
        def grams_of(state, images):
            features = nnx.merge(graphdef, state)(images, layers)
            return {k: gram_matrix(features[k]) for k in layers}

        self._grams = lambda images: jax.device_get(grams_of(state, jnp.asarray(images, jnp.float32)))
        self._style_grams = self._grams(styles)
        self._photo_distance = gram_distance(self._grams(photos), self._style_grams)

    def __call__(self, stylized) -> np.ndarray:
        """[B] fraction of each photo's Gram distance to its style that ``stylized`` closed."""
        distance = gram_distance(self._grams(stylized), self._style_grams)
        return 1.0 - distance / np.maximum(self._photo_distance, 1e-12)


def style_scores(loss_network, photos, styles, stylized, layers=STYLE_LAYERS) -> np.ndarray:
    """[B] fraction of the photo's Gram distance to its style that the stylization closed."""
    return StyleScorer(loss_network, photos, styles, layers)(stylized)


def summarize(content: np.ndarray, style: np.ndarray) -> dict[str, float]:
    """Means over the pairs."""
    return {"content_score": float(np.mean(content)), "style_score": float(np.mean(style))}
