"""Perceptual losses of fast style transfer (docs/reference-model.md §3).

Content loss (feature MSE), Gram-matrix style loss normalised by H*W only (so
the style image may have another size than the stylized one), total
variation, their weighted total and a breakdown of every term and layer.

Breakdown keys (all scalars):
  ``content/<layer>``, ``style/<layer>``, ``total_variation``    unweighted
  ``weighted/content/<layer>``, ``weighted/style/<layer>``,
  ``weighted/total_variation``                                   weighted
  ``weighted/content``, ``weighted/style``                       sums
  ``total``                                                      the loss
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp

Array = jax.Array
Features = Mapping[str, Array]


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """Weights of every term; a layer absent from a mapping is not used."""

    content: Mapping[str, float]
    style: Mapping[str, float]
    total_variation: float

    @classmethod
    def from_config(cls, loss_config) -> LossWeights:
        return cls(
            content=dict(loss_config.content_weights),
            style=dict(loss_config.style_weights),
            total_variation=float(loss_config.total_variation_weight),
        )

    @property
    def end_points(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.content) | set(self.style)))


def gram_matrix(features: Array) -> Array:
    """[B, H, W, C] -> [B, C, C]: F^T F / (H * W) (Magenta `gram_matrix`, not / C)."""
    b, h, w, c = features.shape
    f = features.astype(jnp.float32).reshape(b, h * w, c)
    return jnp.einsum("bnc,bnd->bcd", f, f) / (h * w)


def content_loss(content_features: Array, stylized_features: Array) -> Array:
    """mean((F_content - F_stylized)^2) over every element."""
    diff = content_features.astype(jnp.float32) - stylized_features.astype(jnp.float32)
    return jnp.mean(jnp.square(diff))


def style_loss(style_gram: Array, stylized_features: Array) -> Array:
    """mean((G_style - G_stylized)^2) over B x C x C."""
    return jnp.mean(jnp.square(style_gram - gram_matrix(stylized_features)))


def total_variation(images: Array) -> Array:
    """[sum(dy^2)/2/((H-1)WC) + sum(dx^2)/2/(H(W-1)C)] / B on the [0, 1] output.

    The halves are tf.nn.l2_loss's; this is Magenta's `total_variation_loss`.
    """
    b, h, w, c = images.shape
    x = images.astype(jnp.float32)
    dy = x[:, 1:] - x[:, :-1]
    dx = x[:, :, 1:] - x[:, :, :-1]
    y_loss = jnp.sum(jnp.square(dy)) / 2 / ((h - 1) * w * c)
    x_loss = jnp.sum(jnp.square(dx)) / 2 / (h * (w - 1) * c)
    return (y_loss + x_loss) / b


def loss_breakdown(
    *,
    stylized_images: Array,
    stylized_features: Features,
    content_features: Features,
    style_grams: Mapping[str, Array],
    weights: LossWeights,
) -> dict[str, Array]:
    """Every term, weighted and unweighted, and the total (see module docstring).

    Args:
      stylized_images: [B, H, W, 3] network output in [0, 1] (for TV).
      stylized_features: loss-network end points of the stylized images.
      content_features: loss-network end points of the content images.
      style_grams: Gram matrices of the style images' end points, [B, C, C]
        (or [1, C, C], broadcast over the batch).
      weights: the loss weights.
    """
    terms: dict[str, Array] = {}
    weighted_content = jnp.zeros((), jnp.float32)
    for layer, w in sorted(weights.content.items()):
        value = content_loss(content_features[layer], stylized_features[layer])
        terms[f"content/{layer}"] = value
        terms[f"weighted/content/{layer}"] = w * value
        weighted_content += w * value
    weighted_style = jnp.zeros((), jnp.float32)
    for layer, w in sorted(weights.style.items()):
        value = style_loss(style_grams[layer], stylized_features[layer])
        terms[f"style/{layer}"] = value
        terms[f"weighted/style/{layer}"] = w * value
        weighted_style += w * value
    tv = total_variation(stylized_images)
    terms["total_variation"] = tv
    terms["weighted/total_variation"] = weights.total_variation * tv
    terms["weighted/content"] = weighted_content
    terms["weighted/style"] = weighted_style
    terms["total"] = weighted_content + weighted_style + terms["weighted/total_variation"]
    return terms


def style_transfer_losses(
    loss_network,
    *,
    content_images: Array,
    style_images: Array,
    stylized_images: Array,
    weights: LossWeights,
) -> dict[str, Array]:
    """Runs the loss network and returns ``loss_breakdown``.

    The stylized, content and style images go through the loss network as
    three calls, not one concatenated batch: differentiating a concatenated
    batch runs the loss network's backward pass on every image in it, though
    only the stylized images need a gradient (one call for stylized and
    content images cost 23% more FLOPs per pbn_dtd train step;
    experiments/benchmarks/README.md).
    """
    end_points = weights.end_points
    stylized_features = loss_network(stylized_images, end_points)
    content_features = loss_network(content_images.astype(stylized_images.dtype), end_points)
    style_features = loss_network(style_images, tuple(sorted(weights.style)))
    style_grams = {k: gram_matrix(style_features[k]) for k in weights.style}
    return loss_breakdown(
        stylized_images=stylized_images,
        stylized_features=stylized_features,
        content_features=content_features,
        style_grams=style_grams,
        weights=weights,
    )


def format_breakdown(terms: Mapping[str, float]) -> str:
    """One line per term, for ``print_loss_breakdown``."""
    width = max(len(k) for k in terms)
    return "\n".join(f"  {k:<{width}}  {float(v):.6g}" for k, v in sorted(terms.items()))
