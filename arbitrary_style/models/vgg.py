"""VGG-16 and VGG-19 loss networks returning named end points (docs/reference-model.md §3).

TF-Slim layout (``conv1/conv1_1`` ... ``conv5/conv5_3``; 3x3 SAME convolutions
with biases and ReLU; 2x2 stride-2 pools between blocks). End point ``convK``
is block K's output after its last ReLU, before the pool. Pooling is average
by default, as in Magenta's loss network (max is an option).

How pixels must be presented (channel order, mean, scale) depends on where
the weights came from, so it is a property of the network, set when the
weights are chosen, and applied inside ``__call__``: callers always pass RGB
images in [0, 1].
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from arbitrary_style.models.layers import Conv2d, get_module, set_module

Array = jax.Array

# Convolutions per block.
BLOCK_DEPTHS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
BLOCK_FEATURES = (64, 128, 256, 512, 512)


@dataclasses.dataclass(frozen=True)
class InputConvention:
    """How weights expect pixels: x * scale - mean, in ``channel_order``.

    ``mean`` is given in the weights' own channel order.
    """

    channel_order: str = "RGB"  # RGB | BGR
    mean: tuple[float, float, float] = (123.68, 116.779, 103.939)
    scale: float = 255.0

    def apply(self, images: Array) -> Array:
        x = images * self.scale
        if self.channel_order == "BGR":
            x = x[..., ::-1]
        elif self.channel_order != "RGB":
            raise ValueError(f"channel_order must be RGB or BGR, got {self.channel_order!r}")
        return x - jnp.asarray(self.mean, x.dtype)


# TF-Slim vgg_16_2016_08_28 as fed by Magenta: RGB, ImageNet mean in RGB order.
SLIM_CONVENTION = InputConvention("RGB", (123.68, 116.779, 103.939), 255.0)
# Keras / Caffe-converted VGG weights: BGR, the same mean in BGR order.
CAFFE_CONVENTION = InputConvention("BGR", (103.939, 116.779, 123.68), 255.0)

END_POINTS = ("conv1", "conv2", "conv3", "conv4", "conv5")


def conv_name(block: int, index: int) -> str:
    return f"conv{block}/conv{block}_{index}"


class VGG(nnx.Module):
    """VGG-``depth`` (16 or 19) feature extractor.

    Args:
      depth: 16 or 19.
      pooling: 'avg' (default, Magenta) or 'max' (the original VGG).
      input_convention: how the weights expect pixels (see InputConvention).
      last_end_point: the deepest end point built ('conv4' is all the losses use).
      dtype: compute dtype.
    """

    def __init__(
        self,
        depth: int = 16,
        *,
        pooling: str = "avg",
        input_convention: InputConvention = SLIM_CONVENTION,
        last_end_point: str = "conv5",
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ):
        if depth not in BLOCK_DEPTHS:
            raise ValueError(f"VGG depth must be one of {sorted(BLOCK_DEPTHS)}, got {depth}")
        if pooling not in ("avg", "max"):
            raise ValueError(f"VGG pooling must be 'avg' or 'max', got {pooling!r}")
        if last_end_point not in END_POINTS:
            raise ValueError(f"unknown VGG end point {last_end_point!r}; valid: {END_POINTS}")
        self.depth = depth
        self.pooling = pooling
        self.input_convention = input_convention
        self.num_blocks = END_POINTS.index(last_end_point) + 1
        in_features = 3
        for block in range(1, self.num_blocks + 1):
            features = BLOCK_FEATURES[block - 1]
            for index in range(1, BLOCK_DEPTHS[depth][block - 1] + 1):
                set_module(
                    self,
                    conv_name(block, index),
                    Conv2d(
                        in_features,
                        features,
                        3,
                        padding="SAME",
                        use_bias=True,
                        activation=jax.nn.relu,
                        dtype=dtype,
                        rngs=rngs,
                    ),
                )
                in_features = features

    def __call__(
        self, images: Array, end_points: tuple[str, ...] = END_POINTS[:4]
    ) -> dict[str, Array]:
        """Features at ``end_points`` of [B, H, W, 3] RGB images in [0, 1]."""
        unknown = set(end_points) - set(END_POINTS[: self.num_blocks])
        if unknown:
            raise ValueError(
                f"VGG end points {sorted(unknown)} not built; available: "
                f"{END_POINTS[: self.num_blocks]}"
            )
        deepest = max(END_POINTS.index(e) for e in end_points) + 1
        x = self.input_convention.apply(images.astype(jnp.float32))
        outputs = {}
        for block in range(1, deepest + 1):
            if block > 1:
                pool = nnx.avg_pool if self.pooling == "avg" else nnx.max_pool
                x = pool(x, (2, 2), (2, 2), padding="VALID")
            for index in range(1, BLOCK_DEPTHS[self.depth][block - 1] + 1):
                x = get_module(self, conv_name(block, index))(x)
            if f"conv{block}" in end_points:
                outputs[f"conv{block}"] = x
        return outputs
