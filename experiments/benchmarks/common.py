"""What the benchmark scripts share: timing, the machine, random networks, tables.

Imported by ``stylize_speed``, ``tf_peer``, ``train_step``, ``input_pipeline``
and ``stylize_random`` (run each as a module from the repository root, e.g.
``python -m experiments.benchmarks.stylize_speed``).
"""

from __future__ import annotations

import importlib
import os
import pathlib
import platform
import re
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from arbitrary_style.models import cpu_conv
from arbitrary_style.models.transformer import StyleTransferNetwork

ROOT = pathlib.Path(__file__).resolve().parents[2]


# -- timing -------------------------------------------------------------------------


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    """Seconds of ``repeats`` calls of ``fn`` after one untimed warm-up call.

    ``fn`` must block until its result is ready (``block_until_ready``, a
    NumPy conversion): JAX dispatches asynchronously.
    """
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def flops_of(lowered_or_compiled) -> float:
    """FLOPs from XLA's cost analysis; ``cost_analysis()`` is a dict in jax 0.10, a list of them before."""
    analysis = lowered_or_compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0]
    return float(analysis["flops"])


def matmul_peak(n: int = 2048, repeats: int = 10, dtype=jnp.float32) -> dict:
    """FLOP/s of a jitted n^3 matmul in ``dtype`` (the denominator of MFU): median and best of ``repeats``."""
    key = jax.random.key(0)
    a = jax.random.normal(key, (n, n), dtype)
    b = jax.random.normal(jax.random.fold_in(key, 1), (n, n), dtype)
    f = jax.jit(lambda x, y: x @ y)
    times = timed(lambda: f(a, b).block_until_ready(), repeats)
    flops = 2.0 * n**3
    return {
        "n": n,
        "gflops_median": flops / statistics.median(times) / 1e9,
        "gflops_best": flops / min(times) / 1e9,
        "seconds": times,
    }


# -- the machine and the code ---------------------------------------------------------


def cpu_model() -> str:
    """``lscpu``'s model name (``platform.processor()`` where there is no lscpu)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        match = re.search(r"^Model name:\s*(.+)$", out, re.MULTILINE)
        if match:
            return match.group(1).strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown"


def cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def environment(*packages: str) -> dict:
    """The machine and library versions a figure was measured with.

    Args:
      packages: importable names whose ``__version__`` is recorded besides
        Python's (e.g. "jax", "onnxruntime", "tensorflow").
    """
    info = {
        "cpu": cpu_model(),
        "cores": cores(),
        "device": str(jax.devices()[0].device_kind),
        "python": platform.python_version(),
    }
    for name in packages:
        info[name] = importlib.import_module(name).__version__
    return info


def load_average() -> list[float]:
    """1-, 5- and 15-minute load averages: how busy the machine was while measuring."""
    return [round(x, 2) for x in os.getloadavg()]


def utc_now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def git_state(measured_code: Sequence[str] = ()) -> str:
    """HEAD, and whether the files in ``measured_code`` (paths from the root) differ from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *measured_code], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (measured code modified)" if dirty and measured_code else "")


# -- random networks and inputs ----------------------------------------------------------


def random_module(make: Callable[[], nnx.Module], seed: int = 0) -> nnx.Module:
    """``make()``'s module with every variable drawn in NumPy.

    Built abstractly (``nnx.eval_shape``) and then filled: eager
    initialisation compiles one tiny program per weight shape (17 s for the
    alpha-1 network on a 2-core CPU), which would dominate a smoke test.
    Weights ~ N(0, 0.01) like the transfer network's initialiser; batch-norm
    offsets and means ~ N(0, 0.1), variances ~ U(0.5, 1.5), so that parity
    checks against other runtimes exercise them. Latency and FLOPs do not
    depend on the values.
    """
    graphdef, state = nnx.split(nnx.eval_shape(make))
    rng = np.random.default_rng(seed)
    for path, variable in nnx.to_flat_state(state):
        shape = variable.get_value().shape
        if path[-1] == "var":
            value = rng.uniform(0.5, 1.5, shape)
        elif "BatchNorm" in path:
            value = rng.normal(0.0, 0.1, shape)
        else:
            value = rng.normal(0.0, 0.01, shape)
        variable.set_value(jnp.asarray(value, jnp.float32))
    return nnx.merge(graphdef, state)


def random_network(alpha: float, seed: int = 0) -> StyleTransferNetwork:
    """The transfer network at width ``alpha`` with random weights and batch-norm variables."""
    return random_module(lambda: StyleTransferNetwork(alpha, rngs=nnx.Rngs(seed)), seed)


def random_norm_params(network: StyleTransferNetwork, seed: int = 0) -> dict:
    """{conditional layer: (beta [1, C], gamma [1, C])}, as the style predictor would give."""
    rng = np.random.default_rng(seed + 1)
    return {
        name: (
            rng.normal(0.0, 0.5, (1, channels)).astype(np.float32),
            rng.uniform(0.5, 1.5, (1, channels)).astype(np.float32),
        )
        for name, channels in network.conditional_layers
    }


def random_image(size: int, seed: int = 0) -> np.ndarray:
    """[1, size, size, 3] float32 in [0, 1)."""
    return np.random.default_rng(seed).random((1, size, size, 3), dtype=np.float32)


def jitted_network(network: nnx.Module, kernels: str = "auto"):
    """``(fn, state)``: the network as a jitted pure ``fn(state, images, norm_params)``.

    The graph definition is closed over (static); the state is an argument,
    so the weights are not baked into the program as constants. ``kernels``
    is the ``cpu_conv.kernels`` mode, entered inside the traced function as
    that module requires ("xla": the plain convolutions every backend runs;
    "auto": the CPU kernels).
    """
    graphdef, state = nnx.split(network)

    def forward(state, images, norm_params):
        with cpu_conv.kernels(kernels):
            return nnx.merge(graphdef, state)(images, norm_params)

    return jax.jit(forward), state


# -- tables ------------------------------------------------------------------------------


def fmt(value, spec: str) -> str:
    """``format(value, spec)``, or "-" for a missing figure."""
    return "-" if value is None else format(value, spec)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table (the form experiments/benchmarks/README.md records)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row of {len(row)} cells for {len(header)} columns: {row}")
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)
