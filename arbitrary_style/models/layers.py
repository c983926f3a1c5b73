"""Building blocks shared by every network: a TF-Slim style convolution and the norms.

Attribute names follow TF-Slim's variable names (``weights``, ``biases``,
``BatchNorm``) and modules are nested exactly like the reference checkpoints'
variable scopes, so that the checkpoint variable ``a/b/conv1/weights`` is the
parameter at the NNX path ``a.b.conv1.weights``. Weight converters are then
tables of prefixes and leaf names, never code (see ``checkpoint_path``).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx

from arbitrary_style.models import cpu_conv

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
# The default kernel initializer (a pure function, so one shared instance is safe).
_XAVIER_UNIFORM = nnx.initializers.xavier_uniform()

# Set by ``shapes_only``: layers skip their random initialisers.
_SHAPES_ONLY = contextvars.ContextVar("shapes_only", default=False)


@contextlib.contextmanager
def shapes_only():
    """Layers built inside skip their random initialisers (zeros of the same shape).

    For models whose every value comes from a file, built under
    ``nnx.eval_shape``: tracing the initialisers is most of that build's
    cost, because each draw updates the ``Rngs`` counter and JAX describes
    the traced counter in an error message that walks the whole trace so far
    (0.66 s against 0.1 s for the lite model on a 2-core CPU).
    """
    token = _SHAPES_ONLY.set(True)
    try:
        yield
    finally:
        _SHAPES_ONLY.reset(token)

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


def upsample_nearest(x: Array, factor: int = 2) -> Array:
    """Nearest-neighbour upsampling (tf.image.resize_nearest_neighbor by 2)."""
    return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


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

    The convolution is one ``lax.conv_general_dilated``, on every backend.
    Inside ``with cpu_conv.kernels(mode)`` the same function is computed by
    kernels that run faster on XLA's CPU backend (models/cpu_conv.py); the
    layer itself holds no choice of kernel, so its parameters and checkpoints
    do not depend on one.
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
        kernel_init: nnx.Initializer = _XAVIER_UNIFORM,
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ):
        kh, kw = _pair(kernel_size)
        if padding == "REFLECT" and (kh % 2 == 0 or kw % 2 == 0):
            raise ValueError(f"reflect padding needs an odd kernel, got {kh}x{kw}")
        self.kernel_size = (kh, kw)
        self.stride = stride
        self.padding = padding
        self.groups = groups
        self.activation = activation
        self.dtype = dtype
        kernel_shape = (kh, kw, in_features // groups, out_features)
        self.weights = nnx.Param(
            jnp.zeros(kernel_shape) if _SHAPES_ONLY.get() else kernel_init(rngs.params(), kernel_shape)
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
        if cpu_conv.active_mode() != "xla":
            # Opt-in, traced inside ``with cpu_conv.kernels(mode)`` only: the
            # same convolution by a kernel measured faster on XLA's CPU backend.
            return self._with_bias(
                cpu_conv.valid_conv(x, weights, stride=self.stride, groups=self.groups)
            )
        y = jax.lax.conv_general_dilated(
            x,
            weights,
            window_strides=(self.stride, self.stride),
            padding="VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=self.groups,
        )
        return self._with_bias(y)

    def convolve_upsampled(self, x: Array) -> Array:
        """``convolve(upsample_nearest(x))``.

        Under ``cpu_conv.kernels``, reflect-padded 3x3 layers that run as taps
        compute it without the upsampled copy (``cpu_conv.upsample_conv_by_taps``).
        """
        if cpu_conv.fuses_upsampling(
            self.weights.shape, stride=self.stride, groups=self.groups, padding=self.padding
        ):
            return self._with_bias(cpu_conv.upsample_conv_by_taps(*self._operands(x)))
        return self.convolve(upsample_nearest(x))

    def _operands(self, x: Array) -> tuple[Array, Array]:
        """The input and the weights in the compute dtype."""
        weights = self.weights[...]
        if self.dtype is not None:
            x, weights = x.astype(self.dtype), weights.astype(self.dtype)
        return x, weights

    def _with_bias(self, y: Array) -> Array:
        return y if self.biases is None else y + self.biases[...].astype(y.dtype)

    def __call__(self, x: Array, *, train: bool = False) -> Array:
        y = self.convolve(x)
        if self.BatchNorm is not None:
            # Training mode normalises with batch statistics and updates the
            # moving averages; inference uses the moving averages.
            y = self.BatchNorm(y, use_running_average=not train)
        if self.activation is not None:
            y = self.activation(y)
        return y


def region_mask(shape: Sequence[int], region: Array) -> Array:
    """[1, H, W, 1] float32: 1 in the top-left ``region`` (height, width) of an
    NHWC array of ``shape``, 0 elsewhere."""
    rows = jnp.arange(shape[1]) < region[0]
    cols = jnp.arange(shape[2]) < region[1]
    return (rows[:, None] & cols[None, :]).astype(jnp.float32)[None, :, :, None]


def reflect_beyond(x: Array, region: Array, reach: int) -> Array:
    """``x`` with the ``reach`` rows and columns after its top-left ``region``
    (traced int32 (height, width)) replaced by the region's reflection.

    A convolution that reaches ``reach`` pixels then computes, inside the
    region, what it computes on the region alone with reflect padding
    (``jnp.pad(mode='reflect')``: row h + j holds row h - 2 - j): an image
    padded to a larger, fixed shape gives its own result there. Rows first,
    then columns, so the corner is reflected in both, as ``jnp.pad`` does it.
    Pixels further out keep their values; they do not reach the region.

    Needs the region at least ``reach + 1`` pixels a side and the array at
    least ``reach`` pixels larger than the region a side (a write that does
    not fit is moved back by XLA, onto the region). Written as slices and
    updates of ``reach`` rows: on XLA's CPU backend these compiled and ran
    faster than one gather over the whole array (measured with the lite
    network at 376x500 px in a 380x516 array).
    """
    if reach == 0:
        return x
    for axis in (1, 2):
        size = region[axis - 1]
        start = [0, 0, 0, 0]
        start[axis] = size - 1 - reach
        block_shape = list(x.shape)
        block_shape[axis] = reach
        block = jnp.flip(jax.lax.dynamic_slice(x, start, block_shape), axis)
        start[axis] = size
        x = jax.lax.dynamic_update_slice(x, block, start)
    return x


def repeat_beyond(x: Array, region: Array) -> Array:
    """``x`` with the row and the column after its top-left ``region`` (traced
    int32 (height, width)) set to the region's last row and column.

    Before a nearest x2 upsampling: the upsampled region then continues with
    what reflect padding by one pixel gives at its edge (row 2h of the
    upsampled image is row h - 1 of this one, as is its row 2h - 2), so a
    3x3 convolution of the upsampled array computes, inside the region, what
    it computes on the region alone. The array must exceed the region by at
    least one pixel a side.
    """
    for axis in (1, 2):
        size = region[axis - 1]
        start = [0, 0, 0, 0]
        start[axis] = size - 1
        block_shape = list(x.shape)
        block_shape[axis] = 1
        block = jax.lax.dynamic_slice(x, start, block_shape)
        start[axis] = size
        x = jax.lax.dynamic_update_slice(x, block, start)
    return x


def instance_norm_moments(x: Array, region: Array | None = None) -> tuple[Array, Array]:
    """Per-sample, per-channel mean and biased variance over H and W (float32).

    With ``region`` (traced int32 (height, width)), over the top-left region
    only: the statistics of the image that fills it, whatever lies outside.
    """
    x = x.astype(jnp.float32)
    if region is None:
        mean = jnp.mean(x, axis=(1, 2), keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=(1, 2), keepdims=True)
        return mean, var
    mask = region_mask(x.shape, region)
    count = (region[0] * region[1]).astype(jnp.float32)
    mean = jnp.sum(x * mask, axis=(1, 2), keepdims=True) / count
    var = jnp.sum(jnp.square(x - mean) * mask, axis=(1, 2), keepdims=True) / count
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
      beta, gamma: [B, C] per-sample parameters (gamma used as given, no +1),
        or [B, H, W, C] per-pixel ones (``mixed_norm_params``): one
        normalisation, the parameters varying over the image.
      epsilon: 1e-5 as in Magenta's `conditional_style_norm`.
      moments: optional (mean, var) of shape [B, 1, 1, C] to use instead of x's
        own, e.g. statistics of the whole image while x is one tile of it.
    """
    mean, var = instance_norm_moments(x) if moments is None else moments
    inv = jax.lax.rsqrt(var + epsilon) * _per_pixel(gamma).astype(jnp.float32)
    y = (x.astype(jnp.float32) - mean) * inv + _per_pixel(beta).astype(jnp.float32)
    return y.astype(x.dtype)


def _per_pixel(parameter: Array) -> Array:
    """[B, C] -> [B, 1, 1, C]; [B, H, W, C] as it is."""
    return parameter[:, None, None, :] if parameter.ndim == 2 else parameter


def mixed_norm_params(beta: Array, gamma: Array, mix: Array) -> tuple[Array, Array]:
    """Per-pixel (beta, gamma) [B, H, W, C]: K parameter sets [B, K, C] mixed by
    the weights ``mix`` [B, H, W, K] (summing to 1 over K at every pixel).

    The norm is affine in (beta, gamma), so sum_k m_k (gamma_k x^ + beta_k) =
    x^ sum_k m_k gamma_k + sum_k m_k beta_k: mixing the parameters is mixing
    the K styles' outputs of this layer, with one normalisation. A mix of
    one set with weight 1 gives that set's parameters exactly.
    """
    mix = mix.astype(jnp.float32)
    beta = jnp.einsum("bhwk,bkc->bhwc", mix, beta.astype(jnp.float32))
    gamma = jnp.einsum("bhwk,bkc->bhwc", mix, gamma.astype(jnp.float32))
    return beta, gamma


def halve_mix(mix: Array) -> Array:
    """[B, H, W, K] -> [B, ceil(H/2), ceil(W/2), K]: 2x2 means (the last row
    or column repeated when odd), the resolution a stride-2 layer leaves.

    Means keep weights that sum to 1 summing to 1; an image padded into a
    larger array (``reflect_beyond``) with sides multiples of 4 keeps its
    means inside its region at both halvings.
    """
    _, h, w, _ = mix.shape
    mix = jnp.pad(mix, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    b, h, w, k = mix.shape
    return mix.reshape(b, h // 2, 2, w // 2, 2, k).mean(axis=(2, 4))


def fit_mix(mix: Array, shape: Sequence[int]) -> Array:
    """``mix`` cropped, or extended by its last row and column, to (height, width) ``shape``."""
    _, h, w, _ = mix.shape
    th, tw = int(shape[0]), int(shape[1])
    mix = mix[:, :th, :tw]
    if th > h or tw > w:
        mix = jnp.pad(mix, ((0, 0), (0, max(th - h, 0)), (0, max(tw - w, 0)), (0, 0)), mode="edge")
    return mix


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
