"""Inception-v3 trunk up to Mixed_6e, as TF-Slim's ``inception_v3_base`` defines it.

Used as the style predictor's trunk (docs/reference-model.md §2). Every convolution
is bias-free, followed by batch norm without scale (eps 1e-3, decay 0.9997)
and ReLU6 (Magenta's `_inception_v3_arg_scope`). Module paths equal the
checkpoint's scopes under ``InceptionV3/``, quirks included.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx

from arbitrary_style.models.layers import (
    BatchNormSpec,
    Conv2d,
    get_module,
    relu6,
    set_module,
)

Array = jax.Array

INCEPTION_BATCH_NORM = BatchNormSpec(epsilon=1e-3, decay=0.9997, scale=False)
# Magenta's Inception arg scope initialises weights with
# truncated_normal(stddev=0.1); training normally starts from the ImageNet
# checkpoint instead (docs/reference-model.md §4).
inception_init = nnx.initializers.truncated_normal(stddev=0.1)


@dataclasses.dataclass(frozen=True)
class Op:
    """One operation of a branch: a convolution or a pool."""

    name: str
    kind: str  # conv | max_pool | avg_pool
    features: int = 0
    kernel: tuple[int, int] = (1, 1)
    stride: int = 1
    padding: str = "SAME"


def _conv(name, features, kernel, stride=1, padding="SAME"):
    if isinstance(kernel, int):
        kernel = (kernel, kernel)
    return Op(name, "conv", features, kernel, stride, padding)


def _block_5(name: str, pool_features: int) -> tuple[str, tuple[tuple[Op, ...], ...]]:
    """Mixed_5b/5c/5d: the 35x35 blocks, with Mixed_5c's naming quirk."""
    if name == "Mixed_5c":
        branch_1 = (_conv("Conv2d_0b_1x1", 48, 1), _conv("Conv_1_0c_5x5", 64, 5))
    else:
        branch_1 = (_conv("Conv2d_0a_1x1", 48, 1), _conv("Conv2d_0b_5x5", 64, 5))
    return name, (
        (_conv("Conv2d_0a_1x1", 64, 1),),
        branch_1,
        (
            _conv("Conv2d_0a_1x1", 64, 1),
            _conv("Conv2d_0b_3x3", 96, 3),
            _conv("Conv2d_0c_3x3", 96, 3),
        ),
        (Op("AvgPool_0a_3x3", "avg_pool", kernel=(3, 3)), _conv("Conv2d_0b_1x1", pool_features, 1)),
    )


def _block_6(name: str, c7: int) -> tuple[str, tuple[tuple[Op, ...], ...]]:
    """Mixed_6b..6e: factorised 1x7 / 7x1 blocks with c7 inner channels."""
    return name, (
        (_conv("Conv2d_0a_1x1", 192, 1),),
        (
            _conv("Conv2d_0a_1x1", c7, 1),
            _conv("Conv2d_0b_1x7", c7, (1, 7)),
            _conv("Conv2d_0c_7x1", 192, (7, 1)),
        ),
        (
            _conv("Conv2d_0a_1x1", c7, 1),
            _conv("Conv2d_0b_7x1", c7, (7, 1)),
            _conv("Conv2d_0c_1x7", c7, (1, 7)),
            _conv("Conv2d_0d_7x1", c7, (7, 1)),
            _conv("Conv2d_0e_1x7", 192, (1, 7)),
        ),
        (Op("AvgPool_0a_3x3", "avg_pool", kernel=(3, 3)), _conv("Conv2d_0b_1x1", 192, 1)),
    )


# The stem: single ops, in order.
STEM: tuple[Op, ...] = (
    _conv("Conv2d_1a_3x3", 32, 3, stride=2, padding="VALID"),
    _conv("Conv2d_2a_3x3", 32, 3, padding="VALID"),
    _conv("Conv2d_2b_3x3", 64, 3),
    Op("MaxPool_3a_3x3", "max_pool", kernel=(3, 3), stride=2, padding="VALID"),
    _conv("Conv2d_3b_1x1", 80, 1, padding="VALID"),
    _conv("Conv2d_4a_3x3", 192, 3, padding="VALID"),
    Op("MaxPool_5a_3x3", "max_pool", kernel=(3, 3), stride=2, padding="VALID"),
)

# Mixed blocks: (name, branches), branches concatenated on channels in order.
MIXED_BLOCKS = (
    _block_5("Mixed_5b", 32),
    _block_5("Mixed_5c", 64),
    _block_5("Mixed_5d", 64),
    (
        "Mixed_6a",
        (
            # Slim names these stride-2 3x3 convolutions "Conv2d_1a_1x1".
            (_conv("Conv2d_1a_1x1", 384, 3, stride=2, padding="VALID"),),
            (
                _conv("Conv2d_0a_1x1", 64, 1),
                _conv("Conv2d_0b_3x3", 96, 3),
                _conv("Conv2d_1a_1x1", 96, 3, stride=2, padding="VALID"),
            ),
            (Op("MaxPool_1a_3x3", "max_pool", kernel=(3, 3), stride=2, padding="VALID"),),
        ),
    ),
    _block_6("Mixed_6b", 128),
    _block_6("Mixed_6c", 160),
    _block_6("Mixed_6d", 160),
    _block_6("Mixed_6e", 192),
)

END_POINTS = tuple(op.name for op in STEM) + tuple(name for name, _ in MIXED_BLOCKS)


def _pool(op: Op, x: Array) -> Array:
    window, strides = op.kernel, (op.stride, op.stride)
    if op.kind == "max_pool":
        return nnx.max_pool(x, window, strides, padding=op.padding)
    # TF's SAME average pool divides by the number of real (unpadded) cells.
    return nnx.avg_pool(x, window, strides, padding=op.padding, count_include_pad=False)


class InceptionV3(nnx.Module):
    """Inception-v3 up to ``final_endpoint`` (default Mixed_6e: 768 channels).

    Args:
      final_endpoint: last end point built and returned.
      depth_multiplier: slim's channel multiplier (1 for the published model;
        smaller for fast tests), with slim's ``min_depth`` of 16.
      dtype: compute dtype.
    """

    def __init__(
        self,
        final_endpoint: str = "Mixed_6e",
        *,
        depth_multiplier: float = 1.0,
        min_depth: int = 16,
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ):
        if final_endpoint not in END_POINTS:
            raise ValueError(f"unknown Inception end point {final_endpoint!r}; valid: {END_POINTS}")
        self.final_endpoint = final_endpoint
        self.depth_multiplier = depth_multiplier
        depth = lambda d: max(int(d * depth_multiplier), min_depth)  # noqa: E731

        def make_conv(path: str, op: Op, in_features: int) -> int:
            set_module(
                self,
                path,
                Conv2d(
                    in_features,
                    depth(op.features),
                    op.kernel,
                    stride=op.stride,
                    padding=op.padding,
                    use_bias=False,
                    batch_norm=INCEPTION_BATCH_NORM,
                    activation=relu6,
                    kernel_init=inception_init,
                    dtype=dtype,
                    rngs=rngs,
                ),
            )
            return depth(op.features)

        channels = 3
        for op in STEM:
            if op.kind == "conv":
                channels = make_conv(op.name, op, channels)
            if op.name == final_endpoint:
                break
        else:
            for name, branches in MIXED_BLOCKS:
                block_out = 0
                for b, branch in enumerate(branches):
                    c = channels
                    for op in branch:
                        if op.kind == "conv":
                            c = make_conv(f"{name}/Branch_{b}/{op.name}", op, c)
                    block_out += c
                channels = block_out
                if name == final_endpoint:
                    break
        self.out_features = channels

    def __call__(self, images: Array, *, train: bool = False) -> Array:
        """Maps [B, H, W, 3] images in [0, 1] (no rescaling) to the final end point."""
        x = images
        for op in STEM:
            x = get_module(self, op.name)(x, train=train) if op.kind == "conv" else _pool(op, x)
            if op.name == self.final_endpoint:
                return x
        for name, branches in MIXED_BLOCKS:
            outputs = []
            for b, branch in enumerate(branches):
                h = x
                for op in branch:
                    if op.kind == "conv":
                        h = get_module(self, f"{name}/Branch_{b}/{op.name}")(h, train=train)
                    else:
                        h = _pool(op, h)
                outputs.append(h)
            x = jnp.concatenate(outputs, axis=-1)
            if name == self.final_endpoint:
                return x
        raise AssertionError("unreachable")

