r"""Compile or run: the costs behind stylize's choice of programs (inference/buckets.py).

    .venv/bin/python -m experiments.benchmarks.stylize_compile
    .venv/bin/python -m experiments.benchmarks.stylize_compile --alphas=0.25 --sizes=376x500

For the transfer network at each width, each kernel mode (``xla``: XLA's
own convolutions; ``auto``: the CPU kernels of models/cpu_conv.py) and each
program kind (one image size, or a bucket: the image in the top-left of a
larger array, ``StyleTransferNetwork(region=...)``), at two image sizes:
the seconds to trace, lower and compile the program (persistent cache off)
and the median seconds of 3 runs after a warm-up (random weights; the cost
does not depend on their values). Bucket arrays are the image plus 64 pixels
a side. It then fits the ``buckets.ProgramCost`` of each (width, mode):
compile = base + per-Mpx slope through the two sizes, run per Mpx averaged,
and the bucket program's extra compile seconds and run-time factor, and
prints them in the form of ``buckets.COSTS``.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from flax import nnx

from arbitrary_style.inference import buckets
from arbitrary_style.models import cpu_conv
from experiments import script
from experiments.benchmarks import common

BUCKET_EXTRA = 64  # pixels a side between an image and its bucket array


def define_flags(flag_values: flags.FlagValues) -> None:
    flags.DEFINE_list("alphas", ["0.25", "1.0"], "Transfer network widths.", flag_values=flag_values)
    flags.DEFINE_list("modes", ["xla", "auto"], "cpu_conv kernel modes.", flag_values=flag_values)
    flags.DEFINE_list(
        "sizes",
        ["376x500", "600x800"],
        "Two or more image sizes, HxW (multiples of 4).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "json_out", None, "Also write the results to this JSON file.", flag_values=flag_values
    )


def main(argv: Sequence[str]) -> dict:
    """The script in this process; ``argv``: the arguments after the program name."""
    return run(*script.parse_flags(["stylize_compile", *argv], define_flags))


def parse_size(text: str) -> tuple[int, int]:
    height, width = (int(part) for part in text.lower().split("x"))
    if height % 4 or width % 4:
        raise ValueError(f"size {text}: sides must be multiples of 4")
    return height, width


def measure(network, norm_params, mode: str, size: tuple[int, int], bucketed: bool) -> tuple[float, float]:
    """(compile seconds, median run seconds) of one transfer program."""
    graphdef, state = nnx.split(network)

    def transfer(state, images, region):
        with cpu_conv.kernels(mode):
            return nnx.merge(graphdef, state)(images, norm_params, region=region)

    shape = (size[0] + BUCKET_EXTRA, size[1] + BUCKET_EXTRA) if bucketed else size
    images = jnp.asarray(common.random_image(max(shape))[:, : shape[0], : shape[1]])
    region = jnp.asarray(size, jnp.int32) if bucketed else None
    start = time.perf_counter()
    compiled = jax.jit(transfer).lower(state, images, region).compile()
    compile_seconds = time.perf_counter() - start
    runs = common.timed(lambda: compiled(state, images, region).block_until_ready(), 3)
    return compile_seconds, statistics.median(runs)


def fit(rows: list[dict]) -> buckets.ProgramCost:
    """A ProgramCost through the measurements of one (width, mode)."""
    exact = sorted((r for r in rows if not r["bucketed"]), key=lambda r: r["mpx"])
    bucket = {r["size"]: r for r in rows if r["bucketed"]}
    slope = (exact[-1]["compile_s"] - exact[0]["compile_s"]) / (exact[-1]["mpx"] - exact[0]["mpx"])
    slope = max(slope, 0.0)
    base = max(exact[0]["compile_s"] - slope * exact[0]["mpx"], 0.0)
    run_per_mpx = statistics.mean(r["run_s"] / r["mpx"] for r in exact)
    region_compile = statistics.mean(bucket[r["size"]]["compile_s"] - r["compile_s"] for r in exact)
    region_factor = statistics.mean(
        (bucket[r["size"]]["run_s"] / bucket[r["size"]]["mpx"]) / (r["run_s"] / r["mpx"]) for r in exact
    )
    return buckets.ProgramCost(
        round(base, 2), round(slope, 2), round(run_per_mpx, 3), round(max(region_compile, 0.0), 2),
        round(max(region_factor, 1.0), 2),
    )  # fmt: skip


def run(args: flags.FlagValues, _positional: Sequence[str] = ()) -> dict:
    """Measures every program, prints the table and the fitted costs."""
    jax.config.update("jax_enable_compilation_cache", False)  # compile times, not cache loads
    sizes = [parse_size(text) for text in args.sizes]
    rows = []
    for alpha in (float(a) for a in args.alphas):
        network = common.random_network(alpha)
        norm_params = common.random_norm_params(network)
        for mode in args.modes:
            for size in sizes:
                for bucketed in (False, True):
                    compile_s, run_s = measure(network, norm_params, mode, size, bucketed)
                    shape = (size[0] + BUCKET_EXTRA, size[1] + BUCKET_EXTRA) if bucketed else size
                    rows.append(
                        dict(
                            alpha=alpha,
                            mode=mode,
                            size=f"{size[0]}x{size[1]}",
                            bucketed=bucketed,
                            mpx=shape[0] * shape[1] / 1e6,
                            compile_s=compile_s,
                            run_s=run_s,
                        )  # fmt: skip
                    )
                    print(
                        f"alpha {alpha} {mode} {size[0]}x{size[1]} {'bucket' if bucketed else 'exact'}: "
                        f"compile {compile_s:.2f} s, run {run_s * 1000:.1f} ms",
                        flush=True,
                    )
    table = common.markdown_table(
        ("alpha", "kernels", "image px", "program", "compile s", "run ms"),
        [
            (r["alpha"], r["mode"], r["size"], "bucket" if r["bucketed"] else "exact",
             f"{r['compile_s']:.2f}", f"{r['run_s'] * 1000:.1f}")
            for r in rows
        ],
    )  # fmt: skip
    print(table)
    costs = {
        alpha: {
            mode: fit([r for r in rows if r["alpha"] == alpha and r["mode"] == mode]) for mode in args.modes
        }
        for alpha in sorted({r["alpha"] for r in rows})
    }
    if len(sizes) > 1:
        print("fitted costs (buckets.COSTS form):")
        for alpha, by_mode in costs.items():
            print(f"    {alpha}: {{")
            for mode, cost in by_mode.items():
                print(f'        "{mode}": {cost},')
            print("    },")
    results = {
        "command": script.recorded_command("experiments.benchmarks.stylize_compile", args, define_flags),
        "machine": common.cpu_model(),
        "cores": common.cores(),
        "backend": jax.default_backend(),
        "load_average": common.load_average(),
        "time": common.utc_now(),
        "code": common.git_state(),
        "rows": rows,
        "table": table,
        "costs": {str(a): {m: vars(c) for m, c in by_mode.items()} for a, by_mode in costs.items()}
        if len(sizes) > 1
        else None,
    }
    if args.json_out:
        pathlib.Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    script.run_as_script(run, define_flags)
