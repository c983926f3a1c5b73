r"""Train-step throughput and model FLOP utilisation (MFU).

    .venv/bin/python experiments/benchmarks/train_step.py
    .venv/bin/python experiments/benchmarks/train_step.py --config=configs/pbn_dtd.py \
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

import argparse
import importlib.util
import json
import pathlib
import platform
import statistics
import sys
import time

import jax
import numpy as np

from arbitrary_style.training import trainer
from arbitrary_style.training import parallel

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))  # the shared helpers of stylize.py, next to this file
from stylize import flops_of, matmul_peak  # noqa: E402


def load_config(path: str, arg: str | None):
    spec = importlib.util.spec_from_file_location("bench_config", ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/pbn_dtd.py")
    parser.add_argument("--variant", default=None)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--image_size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5, help="timed steps after one warm-up")
    parser.add_argument(
        "--conv_implementation", default=None, help="override config.train.conv_implementation"
    )
    args = parser.parse_args()

    config = load_config(args.config, args.variant)
    config.train.batch_size = args.batch_size
    config.data.image_size = args.image_size
    config.weights.loss_network = ""
    config.weights.predictor_init = ""
    if args.conv_implementation:
        config.train.conv_implementation = args.conv_implementation
    if config.model.kind == "nstyle" and config.model.num_styles <= 0:
        config.model.num_styles = 16

    run = trainer.setup(config)
    rng = np.random.default_rng(0)
    s = args.image_size
    local = {
        "content": rng.random((args.batch_size, s, s, 3), dtype=np.float32),
        "style": rng.random((args.batch_size, s, s, 3), dtype=np.float32),
        "style_id": rng.integers(0, max(1, config.model.num_styles), args.batch_size).astype(np.int32),
    }
    batch = parallel.global_batch(local, parallel.batch_sharded(run.mesh))

    t = time.perf_counter()
    compiled = run.train_step.lower(run.state, batch, run.loss_network_state).compile()
    compile_seconds = time.perf_counter() - t
    flops = flops_of(compiled)

    state = run.state
    state, metrics = compiled(state, batch, run.loss_network_state)  # warm-up
    jax.block_until_ready(metrics)
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        state, metrics = compiled(state, batch, run.loss_network_state)
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - t)
    step_seconds = statistics.median(times)
    peak = matmul_peak()["gflops_best"] * 1e9

    result = {
        "config": args.config,
        "conv_implementation": config.train.conv_implementation,
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "device": str(jax.devices()[0].device_kind),
        "devices": jax.device_count(),
        "compile_seconds": round(compile_seconds, 1),
        "step_seconds_median": round(step_seconds, 4),
        "step_seconds_all": [round(x, 4) for x in times],
        "images_per_second": round(args.batch_size / step_seconds, 3),
        "gflops_per_step": round(flops / 1e9, 2),
        "achieved_gflops_per_second": round(flops / step_seconds / 1e9, 2),
        "matmul_peak_gflops_per_second": round(peak / 1e9, 2),
        "mfu": round(flops / step_seconds / peak, 4),
        "jax": jax.__version__,
        "python": platform.python_version(),
    }
    print(json.dumps(result))
    print(
        f"| {args.config} | {config.train.conv_implementation} | {args.batch_size} | {args.image_size} | {result['device']} x"
        f"{result['devices']} | {result['images_per_second']} | {result['gflops_per_step']} | "
        f"{result['achieved_gflops_per_second']} | {result['matmul_peak_gflops_per_second']} | "
        f"{100 * result['mfu']:.1f}% |"
    )


if __name__ == "__main__":
    main()
