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
and a final sigmoid. The exporter writes exactly that graph
(``arbitrary_style.exporting.tf_ops.transfer_network``, which the Core ML
export converts) from the weights of our NNX ``StyleTransferNetwork``; this
module bakes one style's beta/gamma into it, so that timing it against our
jitted JAX network compares the two runtimes on the same network, the same
weights and the same machine. (TensorFlow's oneDNN default depends on the
CPU: by 2026-12-01 this VM's host had AVX-512, and TensorFlow turned oneDNN
on there by itself.)

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
    tf_ = tf()  # first: the oneDNN setting must precede TensorFlow's import
    # Deferred: the exporter imports TensorFlow (jax2tf), after tf() above.
    from arbitrary_style.exporting import tf_ops  # noqa: PLC0415

    # The network in Magenta's TF ops is the exporter's (exporting/tf_ops.py);
    # the peer bakes one style's beta and gamma in as constants.
    transfer = tf_ops.transfer_network(network)
    constants = {}
    for name, channels in network.conditional_layers:
        beta, gamma = (np.asarray(a, np.float32).reshape(-1, channels) for a in norm_params[name])
        if beta.shape[0] != 1 or gamma.shape[0] != 1:
            raise ValueError("the TF peer bakes one style in: norm_params must have batch 1")
        constants[name] = (tf_.constant(beta), tf_.constant(gamma))

    # jit_compile=False: TF's own kernels (Grappler-optimised graph), not XLA;
    # autograph off: the layer loop is over Python data, unrolled at trace.
    return tf_.function(lambda images: transfer(images, constants), jit_compile=False, autograph=False)


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
