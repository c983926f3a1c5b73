"""Building blocks shared by every network: a TF-Slim style convolution and the norms.

Attribute names follow TF-Slim's variable names (``weights``, ``biases``,
``BatchNorm``) and modules are nested exactly like the reference checkpoints'
variable scopes, so that the checkpoint variable ``a/b/conv1/weights`` is the
parameter at the NNX path ``a.b.conv1.weights``. Weight converters are then
tables of prefixes and leaf names, never code (see ``checkpoint_path``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

Array = jax.Array
Padding = Literal["SAME", "VALID", "REFLECT"]

# nnx.BatchNorm names its variables differently from TF-Slim; this is the whole
# translation between the two (TF-Slim name -> NNX attribute).
SLIM_TO_NNX_LEAF = {
    "beta": "bias",
    "gamma": "scale",
    "moving_mean": "mean",
    "moving_variance": "var",
    "weights": "weights",
    "biases": "biases",
}
NNX_TO_SLIM_LEAF = {v: k for k, v in SLIM_TO_NNX_LEAF.items()}

# Convolutions with fewer input channels (the 3-channel image layers) run
# faster as XLA convolutions than as taps (experiments/benchmarks/README.md).
TAPS_MIN_FEATURES = 16
# Square kernels at least this large with few input or output channels (the
# 9x9 image layers of the transfer network) run as block convolutions.
BLOCKS_MIN_KERNEL = 5
BLOCK_SIZE = 2
# The block convolution runs as taps when it has at least this many input
# channels (32->3 at alpha 1: 4*32 = 128, taps 21 ms against 67 ms at 256 px),
# as a banded XLA convolution otherwise (3->32, 3->8, and 8->3 at alpha 0.25).
BLOCK_TAPS_MIN_FEATURES = 64
# XLA's CPU convolution slows down 2-4x once one call's activations outgrow the
# caches: at 512 px, the 3x3 stride-2 64->128 layer took 82 ms in one call and
# 22 ms as 16 bands of output rows; a 3x3 128->128 layer 141 ms against 44 ms
# (experiments/benchmarks/README.md). On CPU, XLA convolutions therefore run
# in bands of about this many output pixels per image (at most MAX_BANDS
# bands, to bound the program size).
BAND_OUTPUT_PIXELS = 2048
MAX_BANDS = 32

# Isotropic Gaussian N(0, 0.01) of the transfer network (Magenta
# image_stylization/model.py `transform`: random_normal_initializer(0.0, 0.01)).
transformer_init = nnx.initializers.normal(stddev=0.01)


@dataclasses.dataclass(frozen=True)
class BatchNormSpec:
    """TF-Slim ``batch_norm`` settings: ``decay`` is NNX's ``momentum``."""

    epsilon: float = 1e-3
    decay: float = 0.999
    scale: bool = False  # slim's default: no gamma.


class SlimBatchNorm(nnx.BatchNorm):
    """``nnx.BatchNorm`` (channels last) with TF-Slim's moving-variance update.

    TF-Slim's ``batch_norm`` in training mode runs
    ``tf.compat.v1.layers.BatchNormalization`` (tf_keras
    layers/normalization/batch_normalization.py, ``_fused_batch_norm``), i.e.
    ``FusedBatchNormV3``: it normalises with the biased batch variance but
    returns the unbiased one, x n/(n-1) for n values per channel
    (fused_batch_norm_op.cc, ``rest_size_adjust``), and the layer feeds that
    into the moving average unchanged (``_bessels_correction_test_only``).
    ``nnx.BatchNorm`` averages the biased variance; at 72 values per channel
    (Inception's Mixed_6 at 128 px, batch 2) each update was 1.4% too small
    in the variance and 11% in its change. The update is written as the
    layer's ``_assign_moving_average``: ``moving -= (moving - batch) * (1 - decay)``.

    Variables, their names and inference mode are ``nnx.BatchNorm``'s.
    Batch statistics are over the whole array: under data-parallel jit
    the global batch, so n counts the global batch too.
    """

    def __call__(self, x: Array, use_running_average: bool | None = None) -> Array:
        if use_running_average is None:
            use_running_average = self.use_running_average
        if use_running_average:
            return super().__call__(x, use_running_average=True)
        scale = self.scale[...] if self.scale is not None else None
        bias = self.bias[...] if self.bias is not None else None
        # The dtypes of nnx.BatchNorm's training mode: operands promoted to
        # the compute dtype, statistics in at least float32.
        x, _, _, scale, bias = self.promote_dtype(
            (x, self.mean[...], self.var[...], scale, bias), dtype=self.dtype
        )
        axes = tuple(range(x.ndim - 1))
        x_stats = x.astype(jnp.promote_types(x.dtype, jnp.float32))
        # Two-pass variance, mean((x - mean)^2), as tf.nn.moments and the
        # fused kernel; E[x^2] - E[x]^2 cancels catastrophically when
        # |mean| >> std, and then differs with the summation order (1 vs 4
        # devices: embeddings 1% apart).
        mean = jnp.mean(x_stats, axis=axes)
        var = jnp.mean(jnp.square(x_stats - mean), axis=axes)
        count = math.prod(x.shape[a] for a in axes)
        unbiased_var = var * (count / max(count - 1, 1))  # FusedBatchNormV3's n = 1 case too
        decay = 1 - self.momentum
        self.mean[...] = jax.lax.stop_gradient(self.mean[...] - (self.mean[...] - mean) * decay)
        self.var[...] = jax.lax.stop_gradient(self.var[...] - (self.var[...] - unbiased_var) * decay)
        # nnx.BatchNorm's normalisation (flax nnx/nn/normalization.py
        # ``_normalize``), with the biased variance.
        multiplier = jax.lax.rsqrt(var + self.epsilon)
        if scale is not None:
            multiplier = multiplier * scale
        y = (x - mean) * multiplier
        if bias is not None:
            y = y + bias
        operands = [a for a in (x, scale, bias) if a is not None]
        return y.astype(self.dtype or jnp.result_type(*operands))


class Scope(nnx.Module):
    """A namespace of child modules, the NNX twin of a TF variable scope."""


def make_scopes(root: nnx.Module, path: str) -> nnx.Module:
    """Returns the module at ``path`` ('a/b/c') under ``root``, creating Scopes."""
    node = root
    for part in path.split("/"):
        if not hasattr(node, part):
            setattr(node, part, Scope())
        node = getattr(node, part)
    return node


def get_module(root: nnx.Module, path: str) -> nnx.Module:
    """Returns the module at ``path`` ('a/b/c') under ``root``."""
    node = root
    for part in path.split("/"):
        node = getattr(node, part)
    return node


def set_module(root: nnx.Module, path: str, module: nnx.Module) -> None:
    """Places ``module`` at ``path`` ('a/b/c') under ``root``, creating Scopes."""
    parent, _, name = path.rpartition("/")
    node = make_scopes(root, parent) if parent else root
    setattr(node, name, module)


def checkpoint_path(nnx_path: Sequence[str | int]) -> str:
    """Maps an NNX state path to its TF-Slim variable name ('a/b/BatchNorm/beta')."""
    *scopes, leaf = (str(p) for p in nnx_path)
    return "/".join([*scopes, NNX_TO_SLIM_LEAF.get(leaf, leaf)])


def same_padding(kernel: int, stride: int, size: int) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) of one spatial dimension."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def shifted_sums(z: Array, groups: tuple, out_size: tuple[int, int]) -> Array:
    """Sums of shifted windows of the columns of ``z``.

    Args:
      z: [B, H, W, J, C].
      groups: for each output group, a tuple of (column j, row offset, column
        offset); the group's output is the sum over its entries of
        ``z[:, oy:oy + ho, ox:ox + wo, j]``.
      out_size: (ho, wo).

    Returns:
      [B, ho, wo, len(groups), C].

    The gradient is written by hand: autodiff would transpose every window
    into a zero-padded copy of all of ``z`` and add them up (kh*kw full-size
    tensors per layer: ~100x slower than XLA's convolution gradient on CPU,
    and out of memory for 9x9 kernels); here each column's gradient is one
    padded window, stacked once.
    """
    ho, wo = out_size
    outputs = []
    for group in groups:
        total = None
        for j, oy, ox in group:
            window = z[:, oy : oy + ho, ox : ox + wo, j]
            total = window if total is None else total + window
        outputs.append(total)
    return jnp.stack(outputs, axis=3)


def _shifted_sums_fwd(z, groups, out_size):
    return shifted_sums(z, groups, out_size), z.shape


def _shifted_sums_bwd(groups, out_size, z_shape, grad):
    _, h, w, num_columns, _ = z_shape
    ho, wo = out_size
    columns = [None] * num_columns
    for g, group in enumerate(groups):
        for j, oy, ox in group:
            columns[j] = jnp.pad(
                grad[:, :, :, g], ((0, 0), (oy, h - ho - oy), (ox, w - wo - ox), (0, 0))
            )
    return (jnp.stack(columns, axis=3),)


shifted_sums.defvjp(_shifted_sums_fwd, _shifted_sums_bwd)


def conv_by_taps(x: Array, weights: Array) -> Array:
    """A stride-1 VALID convolution as one matmul followed by shifted sums.

    ``z = x @ W`` maps every input pixel to its contribution to all kh*kw
    output taps at once (a matmul with kh*kw*out columns, which XLA's CPU
    backend runs near its matmul peak), then ``y[i, j] = sum_{dy,dx}
    z[i + dy, j + dx, dy, dx]`` adds them up in one fused elementwise loop.
    XLA's CPU convolution is slow for few output channels (the 9x9, 32->3
    output layer of the transfer network ran ~6x slower as a convolution);
    see experiments/benchmarks/README.md. Memory: z has kh*kw*out channels.
    """
    kh, kw, cin, cout = weights.shape
    b, h, w, _ = x.shape
    taps = weights.transpose(2, 0, 1, 3).reshape(cin, kh * kw * cout)
    z = jnp.einsum("bhwc,cn->bhwn", x, taps).reshape(b, h, w, kh * kw, cout)
    group = tuple((dy * kw + dx, dy, dx) for dy in range(kh) for dx in range(kw))
    return shifted_sums(z, (group,), (h - kh + 1, w - kw + 1))[:, :, :, 0]


@functools.cache
def _block_tap_index(kernel: int, block: int) -> np.ndarray:
    """Where each weight of a block convolution comes from (see ``conv_by_blocks``).

    Returns int indices of shape [kb, kb, s, s, s, s] (block tap y, x, input
    phase y, x, output phase y, x) into the flattened kernel taps, with
    ``kernel * kernel`` for "no tap" (a zero weight).
    """
    s = block
    kb = (kernel - 1 + s - 1) // s + 1
    index = np.full((kb, kb, s, s, s, s), kernel * kernel, dtype=np.int32)
    for by, bx, qy, qx, py, px in np.ndindex(index.shape):
        # Output pixel s*i + p reads input s*(i + b) + q, i.e. kernel tap s*b + q - p.
        dy, dx = s * by + qy - py, s * bx + qx - px
        if 0 <= dy < kernel and 0 <= dx < kernel:
            index[by, bx, qy, qx, py, px] = dy * kernel + dx
    return index


def space_to_depth(x: Array, block: int) -> Array:
    """[B, H, W, C] -> [B, H/s, W/s, s*s*C], (row phase, column phase, channel) minor."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // block, block, w // block, block, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h // block, w // block, block * block * c)


def depth_to_space(x: Array, block: int) -> Array:
    """The inverse of ``space_to_depth``."""
    b, h, w, c = x.shape
    c //= block * block
    x = x.reshape(b, h, w, block, block, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h * block, w * block, c)


def xla_conv(x: Array, weights: Array, stride: int = 1, groups: int = 1) -> Array:
    """XLA's VALID convolution, NHWC x HWIO -> NHWC."""
    return jax.lax.conv_general_dilated(
        x,
        weights,
        window_strides=(stride, stride),
        padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
    )


def conv_in_bands(
    conv: Callable[[Array], Array],
    x: Array,
    kernel_size: tuple[int, int],
    stride: int = 1,
    *,
    band_pixels: int = BAND_OUTPUT_PIXELS,
    max_bands: int = MAX_BANDS,
) -> Array:
    """``conv(x)`` for a VALID convolution ``conv``, computed in bands of output rows.

    Each band reads its input rows plus the kernel's halo, so the result is the
    same function; only the size of each convolution call changes (see
    ``BAND_OUTPUT_PIXELS``).
    """
    kh, kw = kernel_size
    h, w = x.shape[1:3]
    ho, wo = (h - kh) // stride + 1, (w - kw) // stride + 1
    rows = max(1, band_pixels // max(wo, 1), -(-ho // max_bands))
    if rows >= ho:
        return conv(x)
    bands = [
        conv(x[:, r0 * stride : (min(ho, r0 + rows) - 1) * stride + kh])
        for r0 in range(0, ho, rows)
    ]
    return jnp.concatenate(bands, axis=1)


def conv_by_blocks(
    x: Array, weights: Array, block: int = 2, inner: Callable[[Array, Array], Array] = xla_conv
) -> Array:
    """A stride-1 VALID convolution computed on ``block`` x ``block`` pixel blocks.

    The input is rearranged to s*s*cin channels at 1/s resolution
    (space-to-depth), convolved with a kernel of ceil((k-1)/s)+1 taps that maps
    every input phase to every output phase (s*s*cout channels), and the
    result rearranged back. Same function, (kb*s/k)^2 more multiply-adds (the
    zero taps: 1.23x for k=9, s=2), but the convolution gains channels: the
    9x9 layers of the transfer network have 3 input (first) or 3 output (last)
    channels, which XLA's CPU convolution and the taps matmul both run at a few
    per cent of the matmul peak; as 12->128 and 128->12 channel convolutions
    they ran 3-4x faster on the benchmark CPU (experiments/benchmarks/README.md).
    ``inner(blocks, kernel)`` computes the block convolution (VALID).
    """
    kh, kw, cin, cout = weights.shape
    if kh != kw:
        raise ValueError(f"conv_by_blocks needs a square kernel, got {kh}x{kw}")
    s = block
    b, h, w, _ = x.shape
    ho, wo = h - kh + 1, w - kw + 1
    index = _block_tap_index(kh, s)
    kb = index.shape[0]
    # Pad so that every output block has all kb input blocks (extra outputs are cropped).
    hb, wb = -(-ho // s), -(-wo // s)
    x = jnp.pad(x, ((0, 0), (0, s * (hb + kb - 1) - h), (0, s * (wb + kb - 1) - w), (0, 0)))
    flat = jnp.concatenate(
        [weights.reshape(kh * kw, cin, cout), jnp.zeros((1, cin, cout), weights.dtype)]
    )
    # [kb, kb, qy, qx, py, px, cin, cout] -> [kb, kb, (qy, qx, cin), (py, px, cout)]
    kernel = flat[index].transpose(0, 1, 2, 3, 6, 4, 5, 7).reshape(kb, kb, s * s * cin, s * s * cout)
    y = inner(space_to_depth(x, s), kernel)
    return depth_to_space(y, s)[:, :ho, :wo]


def upsample_nearest(x: Array, factor: int = 2) -> Array:
    """Nearest-neighbour upsampling (tf.image.resize_nearest_neighbor by 2)."""
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


# Nearest x2 upsampling, reflect padding by 1 and a 3-tap convolution, per
# output phase p (even / odd output index): the (offset into the edge-padded
# low-resolution input, kernel taps summed at that offset). Derivation: with
# u[a] = x[a // 2], reflect-padding u by 1 equals edge-padding x by 1 and
# upsampling (then dropping the first row), so output 2m reads input rows
# (m, m+1, m+1) and output 2m+1 reads (m+1, m+1, m+2) of the padded input.
_UPSAMPLE_PHASE_TAPS = (((0, (0,)), (1, (1, 2))), ((1, (0, 1)), (2, (2,))))


def upsample_conv_by_taps(x: Array, weights: Array) -> Array:
    """``conv3x3(reflect_pad_1(upsample_nearest_2x(x)))`` without upsampling.

    Each of the 4 output phases is a 2x2 convolution of the low-resolution
    input with summed kernel taps (sub-pixel convolution): 16 taps at low
    resolution instead of 9 at twice the resolution, 2.25x fewer FLOPs and no
    upsampled copy. Computed as one matmul to all 16 taps and shifted sums,
    like ``conv_by_taps``.
    """
    kh, kw, cin, cout = weights.shape
    if (kh, kw) != (3, 3):
        raise ValueError(f"upsample_conv_by_taps needs a 3x3 kernel, got {kh}x{kw}")
    b, h, w, _ = x.shape
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    columns, groups = [], []
    for phase_y in _UPSAMPLE_PHASE_TAPS:
        for phase_x in _UPSAMPLE_PHASE_TAPS:
            group = []
            for oy, ky in phase_y:
                for ox, kx in phase_x:
                    group.append((len(columns), oy, ox))
                    columns.append(weights[jnp.array(ky)][:, jnp.array(kx)].sum(axis=(0, 1)))
            groups.append(tuple(group))
    taps = jnp.stack(columns, axis=1).reshape(cin, len(columns) * cout)
    z = jnp.einsum("bhwc,cn->bhwn", padded, taps).reshape(b, h + 2, w + 2, len(columns), cout)
    phases = shifted_sums(z, tuple(groups), (h, w))  # [b, h, w, (py, px), c]
    out = phases.reshape(b, h, w, 2, 2, cout).transpose(0, 1, 3, 2, 4, 5)  # [b, h, py, w, px, c]
    return out.reshape(b, 2 * h, 2 * w, cout)


IMPLEMENTATIONS = ("auto", "xla", "taps", "blocks")


def auto_implementation(
    in_features: int,
    out_features: int,
    kernel_size: tuple[int, int],
    *,
    stride: int = 1,
    groups: int = 1,
    backend: str | None = None,
) -> str:
    """The convolution implementation 'auto' picks (see ``Conv2d``)."""
    # Accelerators have fast convolutions (cuDNN, TPU); taps and blocks are a
    # CPU remedy and would cost GPU memory for nothing.
    if (backend or jax.default_backend()) != "cpu" or stride != 1 or groups != 1:
        return "xla"
    kh, kw = kernel_size
    if kh == kw and kh >= BLOCKS_MIN_KERNEL and min(in_features, out_features) < TAPS_MIN_FEATURES:
        return "blocks"
    return "taps" if in_features >= TAPS_MIN_FEATURES else "xla"


def check_implementation(
    implementation: str, kernel_size: tuple[int, int], *, stride: int, groups: int
) -> None:
    """Raises ValueError if ``implementation`` cannot compute this convolution."""
    if implementation in ("taps", "blocks") and (stride != 1 or groups != 1):
        raise ValueError(f"the {implementation} implementation needs stride 1 and groups 1")
    if implementation == "blocks" and kernel_size[0] != kernel_size[1]:
        raise ValueError(f"the blocks implementation needs a square kernel, got {kernel_size}")


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    return tuple(value)  # type: ignore[return-value]


class Conv2d(nnx.Module):
    """TF-Slim ``conv2d``: convolution, then optional batch norm, then activation.

    Args:
      in_features: input channels.
      out_features: output channels.
      kernel_size: an int or (height, width); e.g. (1, 7) for Inception's 1x7.
      stride: spatial stride.
      padding: 'SAME' and 'VALID' as in TensorFlow; 'REFLECT' pads by k//2 with
        reflection and then convolves VALID (Magenta `model_util.conv2d`).
      use_bias: adds ``biases`` (TF-Slim omits them when a norm follows).
      batch_norm: adds a child ``BatchNorm`` with these settings.
      activation: applied last; None for a linear layer.
      groups: 1, or ``in_features`` for a depthwise convolution.
      kernel_init: initializer of ``weights`` (HWIO).
      dtype: compute dtype (e.g. bfloat16); parameters stay float32.
      implementation: 'xla' (lax.conv_general_dilated), 'taps'
        (``conv_by_taps``; stride 1, not grouped), 'blocks' (``conv_by_blocks``;
        stride 1, not grouped, square kernel) or 'auto': on a CPU backend,
        blocks for square kernels of at least ``BLOCKS_MIN_KERNEL`` with fewer
        than ``TAPS_MIN_FEATURES`` input or output channels, taps for other
        stride-1 convolutions with at least ``TAPS_MIN_FEATURES`` input
        channels, where each measured faster; XLA's convolution otherwise.
        All compute the same function (to float rounding).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int | Sequence[int],
        *,
        stride: int = 1,
        padding: Padding = "SAME",
        use_bias: bool = False,
        batch_norm: BatchNormSpec | None = None,
        activation: Callable[[Array], Array] | None = None,
        groups: int = 1,
        kernel_init: nnx.Initializer = nnx.initializers.xavier_uniform(),
        dtype: jnp.dtype | None = None,
        implementation: str = "auto",
        rngs: nnx.Rngs,
    ):
        kh, kw = _pair(kernel_size)
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}"
            )
        if implementation == "auto":
            implementation = auto_implementation(
                in_features, out_features, (kh, kw), stride=stride, groups=groups
            )
        check_implementation(implementation, (kh, kw), stride=stride, groups=groups)
        self.implementation = implementation
        self.banded = jax.default_backend() == "cpu"  # see BAND_OUTPUT_PIXELS
        if padding == "REFLECT" and (kh % 2 == 0 or kw % 2 == 0):
            raise ValueError(f"reflect padding needs an odd kernel, got {kh}x{kw}")
        self.kernel_size = (kh, kw)
        self.stride = stride
        self.padding = padding
        self.groups = groups
        self.activation = activation
        self.dtype = dtype
        self.weights = nnx.Param(
            kernel_init(rngs.params(), (kh, kw, in_features // groups, out_features))
        )
        self.biases = nnx.Param(jnp.zeros((out_features,))) if use_bias else None
        self.BatchNorm = (
            SlimBatchNorm(
                out_features,
                use_scale=batch_norm.scale,
                epsilon=batch_norm.epsilon,
                momentum=batch_norm.decay,
                dtype=dtype,
                rngs=rngs,
            )
            if batch_norm is not None
            else None
        )

    def convolve(self, x: Array) -> Array:
        """The linear part only: padding, convolution and bias."""
        kh, kw = self.kernel_size
        padding = self.padding
        if padding == "REFLECT":
            x = jnp.pad(
                x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)), mode="reflect"
            )
            padding = "VALID"
        x, weights = self._operands(x)
        if padding == "SAME":
            x = jnp.pad(
                x,
                (
                    (0, 0),
                    same_padding(kh, self.stride, x.shape[1]),
                    same_padding(kw, self.stride, x.shape[2]),
                    (0, 0),
                ),
            )
        if self.implementation == "taps":
            y = conv_by_taps(x, weights)
        elif self.implementation == "blocks":
            if weights.shape[2] * BLOCK_SIZE**2 >= BLOCK_TAPS_MIN_FEATURES:
                inner = conv_by_taps
            else:
                inner = self._xla_conv
            y = conv_by_blocks(x, weights, BLOCK_SIZE, inner)
        else:
            y = self._xla_conv(x, weights, self.stride, self.groups)
        return self._with_bias(y)

    def _operands(self, x: Array) -> tuple[Array, Array]:
        """The input and the weights in the compute dtype."""
        weights = self.weights[...]
        if self.dtype is not None:
            x, weights = x.astype(self.dtype), weights.astype(self.dtype)
        return x, weights

    def _with_bias(self, y: Array) -> Array:
        return y if self.biases is None else y + self.biases[...].astype(y.dtype)

    def _xla_conv(self, x: Array, weights: Array, stride: int = 1, groups: int = 1) -> Array:
        """XLA's VALID convolution, in bands of output rows on CPU."""
        conv = functools.partial(xla_conv, weights=weights, stride=stride, groups=groups)
        if not self.banded:
            return conv(x)
        return conv_in_bands(
            conv, x, weights.shape[:2], stride, band_pixels=BAND_OUTPUT_PIXELS, max_bands=MAX_BANDS
        )

    def convolve_upsampled(self, x: Array) -> Array:
        """``convolve(nearest_upsample_x2(x))``, fused when the layer allows it."""
        if (
            self.implementation == "taps"
            and self.padding == "REFLECT"
            and self.kernel_size == (3, 3)
            and self.stride == 1
        ):
            return self._with_bias(upsample_conv_by_taps(*self._operands(x)))
        return self.convolve(upsample_nearest(x))

    def __call__(self, x: Array, *, train: bool = False) -> Array:
        y = self.convolve(x)
        if self.BatchNorm is not None:
            # Training mode normalises with batch statistics and updates the
            # moving averages; inference uses the moving averages.
            y = self.BatchNorm(y, use_running_average=not train)
        if self.activation is not None:
            y = self.activation(y)
        return y


def instance_norm_moments(x: Array) -> tuple[Array, Array]:
    """Per-sample, per-channel mean and biased variance over H and W (float32)."""
    x = x.astype(jnp.float32)
    mean = jnp.mean(x, axis=(1, 2), keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=(1, 2), keepdims=True)
    return mean, var


def conditional_instance_norm(
    x: Array,
    beta: Array,
    gamma: Array,
    *,
    epsilon: float = 1e-5,
    moments: tuple[Array, Array] | None = None,
) -> Array:
    """``gamma * (x - mean_HW) / sqrt(var_HW + eps) + beta`` (docs/reference-model.md §1).

    Args:
      x: [B, H, W, C] activations.
      beta, gamma: [B, C] per-sample parameters (gamma used as given, no +1).
      epsilon: 1e-5 as in Magenta's `conditional_style_norm`.
      moments: optional (mean, var) of shape [B, 1, 1, C] to use instead of x's
        own, e.g. statistics of the whole image while x is one tile of it.
    """
    mean, var = instance_norm_moments(x) if moments is None else moments
    inv = jax.lax.rsqrt(var + epsilon) * gamma[:, None, None, :].astype(jnp.float32)
    y = (x.astype(jnp.float32) - mean) * inv + beta[:, None, None, :].astype(jnp.float32)
    return y.astype(x.dtype)


def relu6(x: Array) -> Array:
    return jnp.minimum(jax.nn.relu(x), 6.0)


def count_params(module: nnx.Module, variable_type: type = nnx.Param) -> int:
    """Number of scalars in the variables of ``variable_type`` under ``module``."""
    state = nnx.state(module, variable_type)
    return sum(int(x.size) for x in jax.tree.leaves(state))


def named_shapes(module: nnx.Module, *filters) -> Mapping[str, tuple[int, ...]]:
    """{checkpoint-style name: shape} of every variable under ``module``."""
    state = nnx.state(module, *filters) if filters else nnx.state(module)
    return {
        checkpoint_path(path): tuple(var.shape)
        for path, var in nnx.to_flat_state(state)
    }
