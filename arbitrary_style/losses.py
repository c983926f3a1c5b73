"""Perceptual losses of fast style transfer (docs/reference-model.md §3).

Content loss (feature MSE), Gram-matrix style loss normalised by H*W only (so
the style image may have another size than the stylized one), total
variation, their weighted total and a breakdown of every term and layer;
and the optional consistency term, which asks the network to commute with a
small perturbation of its input (``perturb``, ``consistency_loss``).

Breakdown keys (all scalars):
  ``content/<layer>``, ``style/<layer>``, ``total_variation``    unweighted
  ``weighted/content/<layer>``, ``weighted/style/<layer>``,
  ``weighted/total_variation``                                   weighted
  ``weighted/content``, ``weighted/style``                       sums
  ``total``                                                      the loss

With a consistency weight above 0 the train step adds ``consistency`` and
``weighted/consistency`` (and the latter to ``total``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
from jax.scipy import ndimage as jax_ndimage

Array = jax.Array
Features = Mapping[str, Array]


@dataclasses.dataclass(frozen=True)
class Perturbation:
    """The random perturbation of a content image for the consistency term.

    A rotation about the image centre of up to ``max_angle`` degrees, a
    translation of up to ``max_shift`` pixels along each axis (both uniform),
    then Gaussian noise of standard deviation ``noise`` (on [0, 1] pixels).
    Draws come from ``jax.random.fold_in(jax.random.key(seed), step)``, so a
    resumed run draws the same perturbations.
    """

    max_shift: float = 2.0
    max_angle: float = 1.0
    noise: float = 0.01
    seed: int = 0

    @classmethod
    def from_config(cls, consistency_config) -> Perturbation:
        return cls(
            max_shift=float(consistency_config.max_shift),
            max_angle=float(consistency_config.max_angle),
            noise=float(consistency_config.noise),
            seed=int(consistency_config.seed),
        )


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """Weights of every term; a layer absent from a mapping is not used.

    ``consistency``: weight of the consistency term (0: not computed, and the
    train step is the reference's); ``perturbation``: how its input is perturbed.
    """

    content: Mapping[str, float]
    style: Mapping[str, float]
    total_variation: float
    consistency: float = 0.0
    perturbation: Perturbation = Perturbation()

    @classmethod
    def from_config(cls, loss_config) -> LossWeights:
        consistency = loss_config.get("consistency")
        return cls(
            content=dict(loss_config.content_weights),
            style=dict(loss_config.style_weights),
            total_variation=float(loss_config.total_variation_weight),
            consistency=0.0 if consistency is None else float(consistency.weight),
            perturbation=Perturbation() if consistency is None else Perturbation.from_config(consistency),
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


def affine_warp(images: Array, matrix: Array, offset: Array) -> tuple[Array, Array]:
    """Bilinear resampling of [B, H, W, C] ``images`` by per-image affine maps.

    Output pixel p (row, column) takes the input at ``matrix[b] @ (p - c) + c
    + offset[b]``, c the image centre; ``matrix`` [B, 2, 2], ``offset`` [B, 2].

    Returns:
      (warped [B, H, W, C], valid [B, H, W, 1]): ``valid`` is 1 where the
      source point lies inside the image (its bilinear neighbours all exist),
      0 where the warp reached outside and the value is the nearest edge's.
    """
    _, h, w, _ = images.shape
    rows, cols = jnp.meshgrid(
        jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij"
    )
    centre = jnp.asarray([(h - 1) / 2, (w - 1) / 2], jnp.float32)
    points = jnp.stack([rows, cols], axis=-1) - centre  # [H, W, 2]
    source = jnp.einsum("bij,hwj->bhwi", matrix, points) + centre + offset[:, None, None, :]

    def sample(image, coordinates):  # [H, W, C], [H, W, 2] -> [H, W, C]
        return jax.vmap(
            lambda channel: jax_ndimage.map_coordinates(
                channel, [coordinates[..., 0], coordinates[..., 1]], order=1, mode="nearest"
            ),
            in_axes=-1,
            out_axes=-1,
        )(image)

    warped = jax.vmap(sample)(images.astype(jnp.float32), source)
    inside = (
        (source[..., 0] >= 0) & (source[..., 0] <= h - 1) & (source[..., 1] >= 0) & (source[..., 1] <= w - 1)
    )
    return warped.astype(images.dtype), inside[..., None].astype(jnp.float32)


def perturb(key: Array, images: Array, perturbation: Perturbation):
    """A random small warp of ``images`` [B, H, W, 3] plus noise (``Perturbation``).

    Returns:
      (perturbed images, warp): ``warp(x)`` applies the same warp, without
      the noise, to any [B, H, W, C] array, and returns (warped, valid) as
      ``affine_warp``.
    """
    b = images.shape[0]
    angle_key, shift_key, noise_key = jax.random.split(key, 3)
    angle = jnp.deg2rad(perturbation.max_angle) * jax.random.uniform(angle_key, (b,), minval=-1.0, maxval=1.0)
    offset = perturbation.max_shift * jax.random.uniform(shift_key, (b, 2), minval=-1.0, maxval=1.0)
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    matrix = jnp.stack([jnp.stack([cos, -sin], -1), jnp.stack([sin, cos], -1)], -2)

    def warp(x):
        return affine_warp(x, matrix, offset)

    warped, _ = warp(images)
    noise = perturbation.noise * jax.random.normal(noise_key, warped.shape, jnp.float32)
    return (warped.astype(jnp.float32) + noise).astype(images.dtype), warp


def consistency_loss(stylized_of_perturbed: Array, perturbed_stylized: Array, valid: Array) -> Array:
    """Mean squared difference, over the pixels a warp kept inside the image,
    between the output for a perturbed input and the equally warped output.

    The compound regularisation of Wang et al. 2020 ("Consistent video style
    transfer via compound regularization", AAAI, §3.2): with W a warp and
    Δ noise, ||N(W(x) + Δ) - W(N(x))||², which needs no video: a network that
    commutes with small motions and ignores noise stylizes consecutive frames
    consistently. Both branches carry gradients, as in the paper.
    """
    diff = jnp.square(stylized_of_perturbed.astype(jnp.float32) - perturbed_stylized.astype(jnp.float32))
    channels = diff.shape[-1]
    return jnp.sum(diff * valid) / jnp.maximum(jnp.sum(valid) * channels, 1.0)


def format_breakdown(terms: Mapping[str, float]) -> str:
    """One line per term, for ``print_loss_breakdown``."""
    width = max(len(k) for k in terms)
    return "\n".join(f"  {k:<{width}}  {float(v):.6g}" for k, v in sorted(terms.items()))
