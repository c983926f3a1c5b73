r"""Train-step throughput and model FLOP utilisation (MFU).

From the repository root (the figures in experiments/benchmarks/README.md):

    .venv/bin/python -m experiments.benchmarks.train_step --steps=3
    .venv/bin/python -m experiments.benchmarks.train_step --steps=2 --cpu_conv_kernels=xla   # A/B
    .venv/bin/python -m experiments.benchmarks.train_step --steps=3 --reference   # against Magenta's step
    .venv/bin/python -m experiments.benchmarks.train_step --config=configs/pbn_dtd.py \
        --batch_size=8 --image_size=256 --steps=5

Times ``trainer.setup``'s jitted train step (forward, backward through the
predictor and transfer network, Adam update; VGG-16 losses) on random images.
FLOPs per step come from XLA's cost analysis of the compiled step; the peak is
an f32 2048^3 matmul jitted and timed in the same process, so

    MFU = (FLOPs per step / seconds per step) / (matmul FLOP/s).

Weights are random (``weights.*`` set to ''): FLOPs and time do not depend on
their values, and nothing is downloaded. Prints one JSON line and a Markdown
table row.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import time
from collections.abc import Sequence

import jax
import numpy as np
from absl import flags

from arbitrary_style.command_line import UsageError
from arbitrary_style.models import cpu_conv
from arbitrary_style.training import parallel, trainer
from experiments import script
from experiments.benchmarks import common, magenta_step

TABLE_HEADER = (
    "config", "cpu_conv_kernels", "batch", "px", "device", "images/s", "s/step", "GFLOP per step",
    "achieved GFLOP/s", "matmul peak GFLOP/s", "MFU", "compile s",
)


def load_config(path: str, variant: str | None):
    """``get_config(variant)`` of the config file at ``path`` (relative to the repository root)."""
    spec = importlib.util.spec_from_file_location("benchmark_config", common.ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(variant)


def define_flags(flag_values: flags.FlagValues) -> None:
    flags.DEFINE_string("config", "configs/pbn_dtd.py", "config file, relative to the repository root",
                        flag_values=flag_values)
    flags.DEFINE_string("variant", None, "the config's variant (e.g. smoke)", flag_values=flag_values)
    flags.DEFINE_integer("batch_size", 8, "0: the config's", lower_bound=0, flag_values=flag_values)
    flags.DEFINE_integer("image_size", 256, "0: the config's", lower_bound=0, flag_values=flag_values)
    flags.DEFINE_integer("steps", 5, "timed steps after one warm-up", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("peak_repeats", 10, "timed runs of the matmul peak", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_enum("cpu_conv_kernels", None, cpu_conv.MODES, "override config.train.cpu_conv_kernels",
                      flag_values=flag_values)
    flags.DEFINE_enum("dtype", None, ["float32", "bfloat16"], "override config.model.dtype (the compute "
                      "dtype; bfloat16 for GPUs and TPUs); the matmul peak is measured in it",
                      flag_values=flag_values)
    flags.DEFINE_float("peak_tflops", 0.0, "the device's datasheet peak (TFLOP/s, dense, in --dtype) for a "
                       "second MFU figure, e.g. 989 for an H100/H200 SXM in bfloat16", lower_bound=0.0,
                       flag_values=flag_values)
    flags.DEFINE_boolean("reference", False, "also time Magenta's own TF training step (magenta_step.py) "
                         "on the same batch, after ours, and print the ratio (pbn_dtd only)",
                         flag_values=flag_values)


def main(argv: Sequence[str]) -> dict:
    """The benchmark in this process; ``argv``: the arguments after the program name."""
    return benchmark(*script.parse_flags(["train_step", *argv], define_flags))


def benchmark(args: flags.FlagValues, words: Sequence[str] = ()) -> dict:
    """Compiles and times the train step as ``args`` say; prints and returns the figures."""
    config = load_config(args.config, args.variant)
    if args.batch_size:
        config.train.batch_size = args.batch_size
    if args.image_size:
        config.data.image_size = args.image_size
    config.weights.loss_network = ""
    config.weights.predictor_init = ""
    if args.cpu_conv_kernels:
        config.train.cpu_conv_kernels = args.cpu_conv_kernels
    if args.dtype:
        config.model.dtype = args.dtype
    if config.model.kind == "nstyle" and config.model.num_styles <= 0:
        config.model.num_styles = 16
    batch_size, size = int(config.train.batch_size), int(config.data.image_size)
    if args.reference and (config.model.kind != "arbitrary" or config.model.predictor != "inception_v3"):
        raise UsageError(
            f"--reference with {args.config}, Magenta's step is the arbitrary model with the Inception-v3 "
            "trunk, give --config=configs/pbn_dtd.py"
        )

    run = trainer.setup(config)
    rng = np.random.default_rng(0)
    local = {
        "content": rng.random((batch_size, size, size, 3), dtype=np.float32),
        "style": rng.random((batch_size, size, size, 3), dtype=np.float32),
        "style_id": rng.integers(0, max(1, config.model.num_styles), batch_size).astype(np.int32),
    }
    batch = parallel.global_batch(local, parallel.batch_sharded(run.mesh))

    t = time.perf_counter()
    compiled = run.train_step.lower(run.state, batch, run.loss_network_state).compile()
    compile_seconds = time.perf_counter() - t
    flops = common.flops_of(compiled)

    # The state is threaded through the steps (each donates its input state).
    state = run.state

    def step():
        nonlocal state
        state, metrics = compiled(state, batch, run.loss_network_state)
        jax.block_until_ready((state, metrics))

    times = common.timed(step, args.steps)
    step_seconds = statistics.median(times)
    # A 2048^3 matmul fills a CPU; an accelerator needs a larger one to come near its peak.
    peak_n = 2048 if jax.default_backend() == "cpu" else 8192
    peak_dtype = jax.numpy.dtype(config.model.dtype)
    peak = common.matmul_peak(peak_n, args.peak_repeats, peak_dtype)["gflops_best"] * 1e9

    result = {
        "config": args.config,
        "variant": args.variant,
        "cpu_conv_kernels": config.train.cpu_conv_kernels,
        "batch_size": batch_size,
        "image_size": size,
        "devices": jax.device_count(),
        "compile_seconds": round(compile_seconds, 1),
        "step_seconds_median": round(step_seconds, 4),
        "step_seconds_all": [round(x, 4) for x in times],
        "images_per_second": round(batch_size / step_seconds, 3),
        "gflops_per_step": round(flops / 1e9, 2),
        "achieved_gflops_per_second": round(flops / step_seconds / 1e9, 2),
        "matmul_peak_gflops_per_second": round(peak / 1e9, 2),
        "mfu": round(flops / step_seconds / peak, 4),
        "dtype": str(config.model.dtype),
        "mfu_datasheet": (
            round(flops / step_seconds / (args.peak_tflops * 1e12), 4) if args.peak_tflops else None
        ),
        "date_utc": common.utc_now(),
        "git": common.git_state(),
        "load_average": common.load_average(),
        **common.environment("jax", "flax", "numpy"),
    }
    if args.reference:
        reference = magenta_step.time_steps(local["content"], local["style"], args.steps)
        result["reference_step_seconds_median"] = round(statistics.median(reference["step_seconds"]), 4)
        result["reference_step_seconds_all"] = [round(x, 4) for x in reference["step_seconds"]]
        result["reference_first_step_seconds"] = round(reference["first_step_seconds"], 1)
        result["ours_over_reference"] = round(step_seconds / result["reference_step_seconds_median"], 3)
    print(json.dumps(result))
    if args.reference:
        print(
            f"train step, batch {batch_size} at {size} px: ours {step_seconds:.2f} s, Magenta's TF graph "
            f"{result['reference_step_seconds_median']:.2f} s, "
            f"ours / Magenta {result['ours_over_reference']:.2f}"
        )
    print(common.markdown_table(TABLE_HEADER, [(
        args.config, result["cpu_conv_kernels"], batch_size, size, f"{result['device']} x{result['devices']}",
        result["images_per_second"], result["step_seconds_median"], result["gflops_per_step"],
        result["achieved_gflops_per_second"], result["matmul_peak_gflops_per_second"],
        f"{100 * result['mfu']:.1f}%", result["compile_seconds"],
    )]))
    return result


if __name__ == "__main__":
    script.run_as_script(benchmark, define_flags)
