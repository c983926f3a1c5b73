"""MobileNetV2 (width 1.0) up to its final 1x1 convolution ``Conv_1`` (1280 channels).

The trunk of the distilled lite style predictor (docs/reference-model.md §2). Layout
and names follow TF-Slim's ``mobilenet_v2`` (V2_DEF): ``Conv``,
``expanded_conv`` .. ``expanded_conv_16``, ``Conv_1``; each inverted residual
has ``expand`` (absent in the first), ``depthwise`` and ``project`` convolutions
with batch norm (scale and centre, eps 1e-3) and ReLU6 except after
``project``. Published lite weights fold batch norm into the convolutions; a
converter loads them as identity batch norms.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from arbitrary_style.models.layers import BatchNormSpec, Conv2d, relu6

Array = jax.Array

MOBILENET_BATCH_NORM = BatchNormSpec(epsilon=1e-3, decay=0.997, scale=True)

# (expansion, output channels, stride) of expanded_conv, expanded_conv_1, ...
INVERTED_RESIDUALS = (
    (1, 16, 1),
    (6, 24, 2),
    (6, 24, 1),
    (6, 32, 2),
    (6, 32, 1),
    (6, 32, 1),
    (6, 64, 2),
    (6, 64, 1),
    (6, 64, 1),
    (6, 64, 1),
    (6, 96, 1),
    (6, 96, 1),
    (6, 96, 1),
    (6, 160, 2),
    (6, 160, 1),
    (6, 160, 1),
    (6, 320, 1),
)


def _conv(in_f, out_f, k, *, stride=1, groups=1, activation=relu6, dtype, rngs):
    return Conv2d(
        in_f,
        out_f,
        k,
        stride=stride,
        padding="SAME",
        batch_norm=MOBILENET_BATCH_NORM,
        activation=activation,
        groups=groups,
        dtype=dtype,
        rngs=rngs,
    )


class InvertedResidual(nnx.Module):
    """expand 1x1 -> depthwise 3x3 -> project 1x1, with a skip when shapes match."""

    def __init__(self, in_f: int, expansion: int, out_f: int, stride: int, *, dtype, rngs):
        hidden = in_f * expansion
        self.expand = (
            _conv(in_f, hidden, 1, dtype=dtype, rngs=rngs) if expansion != 1 else None
        )
        self.depthwise = _conv(hidden, hidden, 3, stride=stride, groups=hidden, dtype=dtype, rngs=rngs)
        self.project = _conv(hidden, out_f, 1, activation=None, dtype=dtype, rngs=rngs)
        self.residual = stride == 1 and in_f == out_f

    def __call__(self, x: Array, *, train: bool = False) -> Array:
        h = x if self.expand is None else self.expand(x, train=train)
        h = self.project(self.depthwise(h, train=train), train=train)
        return x + h if self.residual else h


def block_name(i: int) -> str:
    return "expanded_conv" if i == 0 else f"expanded_conv_{i}"


class MobilenetV2(nnx.Module):
    """MobileNetV2 trunk: [B, H, W, 3] in [0, 1] -> [B, H/32, W/32, 1280]."""

    def __init__(self, *, dtype: jnp.dtype | None = None, rngs: nnx.Rngs):
        self.Conv = _conv(3, 32, 3, stride=2, dtype=dtype, rngs=rngs)
        channels = 32
        for i, (expansion, out_f, stride) in enumerate(INVERTED_RESIDUALS):
            setattr(
                self,
                block_name(i),
                InvertedResidual(channels, expansion, out_f, stride, dtype=dtype, rngs=rngs),
            )
            channels = out_f
        self.Conv_1 = _conv(channels, 1280, 1, dtype=dtype, rngs=rngs)
        self.out_features = 1280

    def __call__(self, images: Array, *, train: bool = False) -> Array:
        x = self.Conv(images, train=train)
        for i in range(len(INVERTED_RESIDUALS)):
            x = getattr(self, block_name(i))(x, train=train)
        return self.Conv_1(x, train=train)
