r"""Our transfer network as a plain TensorFlow graph, the peer of the stylize-speed benchmark.

From the repository root (the oneDNN figures in experiments/benchmarks/README.md):

    .venv/bin/python -m experiments.benchmarks.tf_peer --alpha=1 --sizes=256,512 --repeats=5 --onednn=on
    .venv/bin/python -m experiments.benchmarks.tf_peer --alpha=1 --sizes=256,512 --repeats=5 --onednn=default

In code (``stylize_speed`` times it this way):

    fn = build_tf_transformer(network, norm_params)   # a tf.function
    stylized = fn(tf.constant(image))                  # [1, H, W, 3] -> [1, H, W, 3]

Why: the reference runtime for this network is Magenta's TensorFlow graph at
batch 1. That graph (image_stylization/model.py ``transform`` and model_util.py) is
nothing but plain TF ops: reflect ``tf.pad``, ``conv2d`` VALID without bias,
slim batch norm (contract layers of the arbitrary model) or a conditional
instance norm (``tf.nn.moments`` + ``tf.nn.batch_normalization`` with the
style's beta/gamma), ``resize_nearest_neighbor`` x2, ReLU, the residual add
and a final sigmoid. This module builds exactly that graph, written here,
from the weights of our NNX ``StyleTransferNetwork`` and one style's
beta/gamma, so that timing it against our jitted JAX network compares the two
runtimes on the same network, the same weights and the same machine.

It is a ``tf.function`` with ``jit_compile=False``: TensorFlow's own kernels
run (graph optimisations by Grappler, no XLA), as they would for Magenta's
graph. oneDNN: TensorFlow turns its oneDNN kernels on by default only on some
x86 CPUs (recent Intel ones); elsewhere (e.g. the AMD EPYC of the README's
figures) it uses its Eigen kernels unless ``TF_ENABLE_ONEDNN_OPTS=1`` is set
before TensorFlow is imported. ``--onednn`` chooses (default: as TensorFlow
decides) and ``onednn_enabled()`` reports what ran; on that CPU oneDNN ran
about 4x slower than the default kernels (the commands above), so time both
before picking one. GPUs are hidden from TensorFlow, as everywhere
in this project (``arbitrary_style.data._tf``): JAX owns them.

``tf_parity`` compares the graph's output with our module's on a small image
before any timing: max |diff| ~1e-4 with the benchmark's N(0, 0.01) weights,
whose shrinking activations make the instance norms amplify float32 rounding
(ours, onnxruntime and TF then differ from each other by that much).
tests/test_tf_peer.py checks the graph against Magenta's own ``transform``
with the same weights. ``time_tf`` gives the median latency like the
benchmark's onnxruntime figures.
"""

from __future__ import annotations

import os
import statistics
import sys
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from arbitrary_style.data._tf import tf as project_tf
from arbitrary_style.models.layers import get_module
from arbitrary_style.models.transformer import CONDITIONAL_NORM_EPSILON
from experiments import script
from experiments.benchmarks import common

PARITY_SIZE = 64
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"


def tf(onednn: bool | None = None):
    """The ``tensorflow`` module, GPUs hidden.

    Args:
      onednn: True / False sets ``TF_ENABLE_ONEDNN_OPTS`` for TensorFlow's
        import (it is read once, when the library loads: too late if TF is
        already imported, see ``onednn_enabled``); None leaves TF's default.
    """
    if onednn is not None and "tensorflow" not in sys.modules:
        os.environ[ONEDNN_ENV] = "1" if onednn else "0"
    # The project's lazy import: it hides the GPUs before TF touches them.
    return project_tf()


def onednn_enabled() -> bool:
    """Whether the loaded TensorFlow runs its oneDNN kernels."""
    tf()
    # Deferred: TensorFlow must load through tf() above, after TF_ENABLE_ONEDNN_OPTS is set.
    from tensorflow.python.util import _pywrap_util_port  # noqa: PLC0415

    return bool(_pywrap_util_port.IsMklEnabled())


def _array(value) -> np.ndarray:
    """An NNX variable (or array) as float32 NumPy."""
    return np.asarray(value[...] if hasattr(value, "__getitem__") else value, np.float32)


def build_tf_transformer(
    network,
    norm_params: Mapping[str, tuple[np.ndarray, np.ndarray]],
):
    """A ``tf.function`` computing ``network(images, norm_params)`` for batch 1.

    Args:
      network: a ``StyleTransferNetwork`` (arbitrary-model layout: batch norm
        in the contract layers, with its moving statistics; the N-style layout,
        ``conditional_contract=True``, also works).
      norm_params: {conditional layer: (beta, gamma)}, each [1, C] or [C]: one
        style, baked into the graph as constants like the ONNX export.

    Returns:
      A ``tf.function`` (no XLA) mapping float32 NHWC [1, H, W, 3] in [0, 1]
      to the stylized [1, H', W', 3] (H' = H for H a multiple of 4). It traces
      once per input shape, so every size gets a static-shape graph, as ours
      is compiled per size.
    """
    tf_ = tf()
    # Everything the graph needs, as constants, built once here (not at trace).
    plan = []
    for layer in network.layers:
        conv = get_module(network, layer.name)
        if conv.padding != "REFLECT" or conv.biases is not None:
            raise ValueError(f"{layer.name}: expected a reflect-padded convolution without bias")
        kh, kw = conv.kernel_size
        step = {
            "layer": layer,
            "pads": [[0, 0], [kh // 2, kh // 2], [kw // 2, kw // 2], [0, 0]],
            # Ours is HWIO, which is tf.nn.conv2d's filter layout already.
            "weights": tf_.constant(_array(conv.weights)),
            "stride": conv.stride,
        }
        channels = layer.features
        bn = conv.BatchNorm
        if bn is not None:
            # Slim batch_norm at inference: the moving averages; slim's
            # scale=False is a gamma of ones.
            scale = getattr(bn, "scale", None)
            bias = getattr(bn, "bias", None)
            step["bn"] = (
                tf_.constant(_array(scale) if scale is not None else np.ones(channels, np.float32)),
                tf_.constant(_array(bias) if bias is not None else np.zeros(channels, np.float32)),
                tf_.constant(_array(bn.mean)),
                tf_.constant(_array(bn.var)),
                float(bn.epsilon),
            )
        else:
            beta, gamma = (np.asarray(a, np.float32).reshape(-1, channels) for a in norm_params[layer.name])
            if beta.shape[0] != 1 or gamma.shape[0] != 1:
                raise ValueError("the TF peer bakes one style in: norm_params must have batch 1")
            # [1, 1, 1, C]: broadcasts over the NHWC activations.
            step["instance_norm"] = (
                tf_.constant(beta.reshape(1, 1, 1, channels)),
                tf_.constant(gamma.reshape(1, 1, 1, channels)),
            )
        plan.append(step)

    def forward(images):
        x = images
        residual_input = None
        for step in plan:
            layer = step["layer"]
            if layer.upsample:
                # Magenta model_util.upsampling: resize_nearest_neighbor to
                # twice the size (v1 op: asymmetric, floor; = our jnp.repeat).
                # The raw op, as the v1 wrapper is deprecated.
                shape = tf_.shape(x)
                x = tf_.raw_ops.ResizeNearestNeighbor(
                    images=x, size=[2 * shape[1], 2 * shape[2]], align_corners=False, half_pixel_centers=False
                )
            # Magenta model_util.conv2d: reflect pad by k // 2, VALID conv.
            padded = tf_.pad(x, step["pads"], mode="REFLECT")
            y = tf_.nn.conv2d(padded, step["weights"], strides=step["stride"], padding="VALID")
            if "bn" in step:
                scale, offset, mean, var, epsilon = step["bn"]
                # The fused kernel is what slim.batch_norm runs for NHWC inputs.
                y, _, _ = tf_.compat.v1.nn.fused_batch_norm(
                    y, scale, offset, mean=mean, variance=var, epsilon=epsilon, is_training=False
                )
            else:
                # Magenta ops.conditional_instance_norm: moments over H, W.
                beta, gamma = step["instance_norm"]
                mean, var = tf_.nn.moments(y, axes=[1, 2], keepdims=True)
                y = tf_.nn.batch_normalization(y, mean, var, beta, gamma, CONDITIONAL_NORM_EPSILON)
            # The layer table says what follows each norm (TransformerLayer.after).
            if layer.after == "add_input":
                x = residual_input + y
            elif layer.after == "sigmoid":
                x = tf_.sigmoid(y)
            else:
                if layer.after == "relu_keep_input":
                    residual_input = x
                x = tf_.nn.relu(y)
        return x

    # jit_compile=False: TF's own kernels (Grappler-optimised graph), not XLA;
    # autograph off: the loop above is over Python data, unrolled at trace.
    return tf_.function(forward, jit_compile=False, autograph=False)


def ours_fn(network, kernels: str = "auto"):
    """Our network as a jitted ``ours(images, norm_params)`` (``common.jitted_network``)."""
    fn, state = common.jitted_network(network, kernels)
    return lambda x, params: fn(state, x, params)


def tf_parity(
    network, norm_params, size: int = PARITY_SIZE, seed: int = 3, tf_fn=None, ours=None
) -> float:
    """Max |ours - TF peer| on one random [1, size, size, 3] image.

    Args:
      tf_fn: an already built ``build_tf_transformer(network, norm_params)``
        (built here when None).
      ours: an already jitted ``ours(images, norm_params)`` of ``network``
        (``ours_fn(network)`` when None), so a caller's compiled network is reused.
    """
    x = common.random_image(size, seed)
    forward = ours or ours_fn(network)
    ours = np.asarray(forward(jnp.asarray(x), jax.tree.map(jnp.asarray, dict(norm_params))))
    if tf_fn is None:
        tf_fn = build_tf_transformer(network, norm_params)
    theirs = tf_fn(tf().constant(x)).numpy()
    if ours.shape != theirs.shape:
        raise ValueError(f"shapes differ: ours {ours.shape}, TF {theirs.shape}")
    return float(np.max(np.abs(ours - theirs)))


def time_tf(fn, image, repeats: int) -> float:
    """Median milliseconds of ``repeats`` calls of ``fn(image)`` after one warm-up.

    The warm-up call also traces and optimises the graph for this shape. Each
    timed call ends with the output in NumPy, like ``session.run`` in the
    benchmark's onnxruntime timings (TF on CPU has returned by then anyway).
    """
    x = tf().constant(np.asarray(image, np.float32))
    return 1e3 * statistics.median(common.timed(lambda: fn(x).numpy(), repeats))


def define_flags(flag_values: flags.FlagValues) -> None:
    flags.DEFINE_float("alpha", 1.0, "width multiplier (1 full, 0.25 lite)", flag_values=flag_values)
    script.define_sides("sizes", "256,512,1024", "comma-separated image sides", flag_values)
    flags.DEFINE_integer("repeats", 10, "timed warm runs per size", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_enum(
        "onednn", "default", ("default", "on", "off"),
        "TF_ENABLE_ONEDNN_OPTS for TensorFlow's import (default: TensorFlow decides)",
        flag_values=flag_values,
    )


def main(argv: Sequence[str]) -> dict:
    """The benchmark in this process; ``argv``: the arguments after the program name."""
    return benchmark(*script.parse_flags(["tf_peer", *argv], define_flags))


def benchmark(args: flags.FlagValues, words: Sequence[str] = ()) -> dict:
    """Checks and times the TensorFlow peer as ``args`` say; prints and returns the figures."""
    tf({"default": None, "on": True, "off": False}[args.onednn])

    # Random weights, beta/gamma and batch-norm statistics, as in stylize_speed.
    network = common.random_network(args.alpha)
    norm_params = common.random_norm_params(network)
    fn = build_tf_transformer(network, norm_params)
    result = {
        "tensorflow": tf().__version__,
        "onednn": onednn_enabled(),
        "alpha": args.alpha,
        "parity_size": PARITY_SIZE,
        "parity_max_abs": tf_parity(network, norm_params, PARITY_SIZE, tf_fn=fn),
        "median_ms": {},
    }
    print(
        f"TensorFlow {result['tensorflow']} (oneDNN {'on' if result['onednn'] else 'off'}, no XLA), "
        f"alpha {args.alpha}: max |ours - TF| at {PARITY_SIZE} px = {result['parity_max_abs']:.2e}",
        flush=True,
    )
    for size in args.sizes:
        result["median_ms"][size] = time_tf(fn, common.random_image(size), args.repeats)
        print(f"  {size}px: TF {result['median_ms'][size]:.1f} ms (median of {args.repeats})", flush=True)
    return result


if __name__ == "__main__":
    script.run_as_script(benchmark, define_flags)
