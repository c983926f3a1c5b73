"""Convolution kernels for XLA's CPU backend, opt-in through a context.

``layers.Conv2d`` computes one ``lax.conv_general_dilated``: that is what
accelerators (cuDNN, TPU) run and what every caller gets by default. On a CPU
backend XLA's convolution runs at a few per cent of the matmul peak for some
layer shapes, and this module computes the same function faster there:

* taps (``conv_by_taps``): a stride-1 convolution as one matmul to all kernel
  taps followed by shifted sums, with a hand-written gradient
  (``shifted_sums``); the 9x9 32->3 output layer of the transfer network at
  256 px went from 523 to 82 ms, the whole alpha-1 network from 1814 to 730 ms;
* fused upsampling (``upsample_conv_by_taps``): nearest x2 upsampling, reflect
  padding and a 3x3 convolution as 4 sub-pixel convolutions at low
  resolution, 2.25x fewer FLOPs (alpha-1 network at 512 px: 15.1 s -> 4.4 s);
* blocks (``conv_by_blocks``): the 9x9 layers with 3 input or output channels
  on 2x2 pixel blocks, where they gain channels (alpha-1 first layer at
  256 px: 66-87 ms -> 17-26 ms);
* bands (``conv_in_bands``): XLA's own convolution, in bands of output rows
  that fit the caches (at 512 px, 3x3 stride-2 64->128: 82 -> 22 ms).

The figures, with the commands that measured them, are in
experiments/benchmarks/README.md.
Each kernel computes the same function as the plain convolution, to float
rounding (tests/test_models.py compares values and gradients).

Kernels are chosen by a context, never by the layers::

    def loss_fn(state, batch):
        with cpu_conv.kernels("auto"):
            return loss(nnx.merge(graphdef, state), batch)

    step = jax.jit(loss_fn)

The mode is read when a layer is traced, so the ``with`` belongs inside the
function that is jitted. ``jax.jit``'s cache does not see the context
variable: a jitted function that is called once inside ``kernels("auto")``
and once outside it reuses the first trace for both; enter the context in the
traced function so that it is always traced under the same mode.

Modes:

* ``"xla"``: the plain convolution (also what runs when no context is active);
* ``"auto"``: on a CPU backend, the kernel that measured fastest for each
  layer's shape (``choose_kernel``); the plain convolution on any other backend,
  where these kernels would cost memory for nothing;
* ``"taps"``: taps for every layer that allows it (stride 1, not grouped),
  the ``"auto"`` choice for the others; for A/B measurements.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Callable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

MODES = ("xla", "auto", "taps")
# What computes one layer's VALID convolution (see ``choose_kernel``).
KERNELS = ("xla", "bands", "taps", "blocks")

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
# Bands pay where a layer's activations are large: 64 output channels or
# more. Below that (every layer of the alpha-0.25 network) one XLA call ran
# as fast and compiled faster: the lite network at 376x500 px took 28 ms
# and 1.42 s to compile without bands, 30 ms and 1.67 s with them.
BANDS_MIN_FEATURES = 64

# A context variable, not a module global: a ``with`` block changes the mode
# for its own thread or task only and restores it on exit.
_mode: contextvars.ContextVar[str] = contextvars.ContextVar("cpu_conv_mode", default="xla")


def check_mode(mode: str) -> None:
    """Raises ValueError unless ``mode`` is one of ``MODES`` (before anything is traced)."""
    if mode not in MODES:
        raise ValueError(f"cpu_conv mode must be one of {MODES}, got {mode!r}")


@contextlib.contextmanager
def kernels(mode: str) -> Iterator[None]:
    """Convolutions traced inside the block use the kernels of ``mode``.

    Args:
      mode: 'xla', 'auto' or 'taps' (see the module docstring).

    Raises:
      ValueError: for any other mode, naming the valid ones.
    """
    check_mode(mode)
    token = _mode.set(mode)
    try:
        yield
    finally:
        _mode.reset(token)


def active_mode() -> str:
    """The mode of the innermost active ``kernels`` block; 'xla' outside any."""
    return _mode.get()


def choose_kernel(
    mode: str,
    kernel_size: tuple[int, int],
    in_features: int,
    out_features: int,
    *,
    stride: int = 1,
    groups: int = 1,
    backend: str | None = None,
) -> str:
    """The kernel (one of ``KERNELS``) that computes a layer's convolution in ``mode``.

    'auto' on a CPU backend: blocks for square kernels of at least
    ``BLOCKS_MIN_KERNEL`` with fewer than ``TAPS_MIN_FEATURES`` input or output
    channels, taps for other stride-1 convolutions with at least
    ``TAPS_MIN_FEATURES`` input channels, where each measured faster; XLA's
    convolution otherwise, in bands for ``BANDS_MIN_FEATURES`` output
    channels or more. Taps and blocks need stride 1 and no
    groups, blocks a square kernel; no mode chooses them elsewhere.
    """
    if mode not in MODES:
        raise ValueError(f"cpu_conv mode must be one of {MODES}, got {mode!r}")
    if mode == "xla":
        return "xla"
    if mode == "taps" and stride == 1 and groups == 1:
        return "taps"
    # Accelerators have fast convolutions (cuDNN, TPU); taps and blocks are a
    # CPU remedy and would cost GPU memory for nothing.
    if (backend or jax.default_backend()) != "cpu":
        return "xla"
    xla_kernel = "bands" if out_features >= BANDS_MIN_FEATURES else "xla"
    if stride != 1 or groups != 1:
        return xla_kernel
    kh, kw = kernel_size
    if kh == kw and kh >= BLOCKS_MIN_KERNEL and min(in_features, out_features) < TAPS_MIN_FEATURES:
        return "blocks"
    return "taps" if in_features >= TAPS_MIN_FEATURES else xla_kernel


def _active_kernel(weights_shape: Sequence[int], stride: int, groups: int) -> str:
    kh, kw, cin, cout = weights_shape
    return choose_kernel(active_mode(), (kh, kw), cin * groups, cout, stride=stride, groups=groups)


def valid_conv(x: Array, weights: Array, *, stride: int = 1, groups: int = 1) -> Array:
    """The VALID convolution NHWC x HWIO -> NHWC, by the kernel the active mode chooses.

    ``layers.Conv2d`` calls this, after padding, inside a ``kernels`` block.
    """
    kernel = _active_kernel(weights.shape, stride, groups)
    if kernel == "taps":
        return conv_by_taps(x, weights)
    if kernel == "blocks":
        if weights.shape[2] * BLOCK_SIZE**2 >= BLOCK_TAPS_MIN_FEATURES:
            inner = conv_by_taps
        else:
            inner = banded_xla_conv
        return conv_by_blocks(x, weights, BLOCK_SIZE, inner)
    if kernel == "bands":
        return banded_xla_conv(x, weights, stride, groups)
    return xla_conv(x, weights, stride, groups)


def fuses_upsampling(
    weights_shape: Sequence[int], *, stride: int, groups: int, padding: str
) -> bool:
    """Whether the active mode computes ``conv(reflect_pad(upsample(x)))`` fused.

    Only where the layer would run as taps anyway: a 3x3 stride-1 convolution
    with reflect padding (``upsample_conv_by_taps``).
    """
    if active_mode() == "xla" or padding != "REFLECT" or tuple(weights_shape[:2]) != (3, 3):
        return False
    return _active_kernel(weights_shape, stride, groups) == "taps"


def xla_conv(x: Array, weights: Array, stride: int = 1, groups: int = 1) -> Array:
    """XLA's VALID convolution, NHWC x HWIO -> NHWC (the plain path's call)."""
    return jax.lax.conv_general_dilated(
        x,
        weights,
        window_strides=(stride, stride),
        padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
    )


def banded_xla_conv(x: Array, weights: Array, stride: int = 1, groups: int = 1) -> Array:
    """``xla_conv`` in bands of output rows (see ``BAND_OUTPUT_PIXELS``)."""
    conv = functools.partial(xla_conv, weights=weights, stride=stride, groups=groups)
    return conv_in_bands(
        conv, x, weights.shape[:2], stride, band_pixels=BAND_OUTPUT_PIXELS, max_bands=MAX_BANDS
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
    ``BAND_OUTPUT_PIXELS``). Bands are static slices: ``lax.map`` over the
    batch made XLA's convolution gradients 8-16x slower (a convolution's
    gradient inside a loop loses XLA's fast path;
    experiments/benchmarks/README.md).
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
    _, h, w, _ = x.shape
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
