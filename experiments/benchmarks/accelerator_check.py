r"""The first run on a GPU or TPU: measured figures against the ones expected from FLOP counts.

    .venv/bin/python -m experiments.benchmarks.accelerator_check --peak_tflops=989   # H100/H200 SXM
    .venv/bin/python -m experiments.benchmarks.accelerator_check --quick               # smoke (any backend)

Two measurements, each against an expectation written down before any
accelerator was measured (experiments/benchmarks/README.md, "Accelerators"):

* **train step**: ``train_step.benchmark`` for configs/pbn_dtd.py at
  ``--batch_size`` (default 64, enough images to fill an H100) and 256 px in
  bfloat16 on XLA's convolutions; expected model FLOP utilisation against the
  datasheet peak ``--peak_tflops``: at least ``EXPECTED_TRAIN_MFU``;
* **stylize**: the transfer network (lite, alpha 0.25, and the paper's,
  alpha 1) on one 1024x1024 image, float32 and bfloat16, the median of 20
  runs; expected at most ``EXPECTED_STYLIZE_MS`` (a few milliseconds: 324
  GFLOP for alpha 1 at 40 % of a 989 TFLOP/s bfloat16 peak is 0.8 ms, and its
  activations, about 1-2 GB of reads and writes, take 0.3-0.5 ms at 3-5 TB/s).

Prints a table with the expectation and whether it held; exits 0 either
way (a miss is a finding, not a failure). ``--quick`` runs tiny sizes and
checks nothing, for a test on any backend.
"""

from __future__ import annotations

import json
import pathlib
import statistics
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from flax import nnx

from arbitrary_style.models.transformer import StyleTransferNetwork
from experiments import script
from experiments.benchmarks import common, train_step

EXPECTED_TRAIN_MFU = 0.40
# {(alpha, dtype): milliseconds for one 1024x1024 image}.
EXPECTED_STYLIZE_MS = {
    (0.25, "float32"): 2.0,
    (0.25, "bfloat16"): 1.5,
    (1.0, "float32"): 5.0,
    (1.0, "bfloat16"): 3.0,
}


def define_flags(flag_values: flags.FlagValues) -> None:
    flags.DEFINE_float(
        "peak_tflops", 989.0, "the device's dense bfloat16 datasheet peak (989: H100/H200 SXM)",
        lower_bound=0.0, flag_values=flag_values,
    )  # fmt: skip
    flags.DEFINE_integer("batch_size", 64, "train-step batch", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_boolean(
        "quick", False, "tiny sizes, no expectations (a smoke test)", flag_values=flag_values
    )
    flags.DEFINE_string("json_out", None, "also write the results to this JSON file", flag_values=flag_values)


def main(argv: Sequence[str]) -> dict:
    """The script in this process; ``argv``: the arguments after the program name."""
    return run(*script.parse_flags(["accelerator_check", *argv], define_flags))


def stylize_ms(alpha: float, dtype: str, size: int, repeats: int) -> float:
    """Median milliseconds of the jitted transfer network on one size x size image."""
    compute = jnp.dtype(dtype)
    network = common.random_module(lambda: StyleTransferNetwork(alpha, dtype=compute, rngs=nnx.Rngs(0)))
    forward, state = common.jitted_network(network, kernels="xla")
    images = jnp.asarray(common.random_image(size))
    norm_params = common.random_norm_params(network)
    times = common.timed(lambda: forward(state, images, norm_params).block_until_ready(), repeats)
    return 1000 * statistics.median(times)


def run(args: flags.FlagValues, _positional: Sequence[str] = ()) -> dict:
    """Measures, compares with the expectations, prints the table."""
    backend = jax.default_backend()
    size, repeats = (64, 2) if args.quick else (1024, 20)
    train_arguments = ["--dtype=bfloat16", "--cpu_conv_kernels=xla", f"--peak_tflops={args.peak_tflops}"]
    if args.quick:
        train_arguments += [
            "--config=configs/nstyle.py",
            "--variant=smoke",
            "--batch_size=0",
            "--image_size=0",
        ]
        train_arguments += ["--steps=1", "--peak_repeats=2"]
    else:
        train_arguments += [f"--batch_size={args.batch_size}", "--image_size=256", "--steps=10"]
    train = train_step.main(train_arguments)
    rows, checks = [], {}
    mfu = train["mfu_datasheet"]
    checks["train step MFU"] = None if args.quick or not mfu else mfu >= EXPECTED_TRAIN_MFU
    rows.append((
        f"train step, batch {train['batch_size']}, {train['image_size']} px, bfloat16",
        f">= {100 * EXPECTED_TRAIN_MFU:.0f} % MFU",
        f"{100 * mfu:.1f} % MFU, {train['step_seconds_median'] * 1000:.1f} ms" if mfu else "no peak given",
        _verdict(checks["train step MFU"]),
    ))  # fmt: skip
    for (alpha, dtype), expected in EXPECTED_STYLIZE_MS.items():
        measured = stylize_ms(alpha, dtype, size, repeats)
        name = f"stylize alpha {alpha}, {size}x{size}, {dtype}"
        checks[name] = None if args.quick else measured <= expected
        rows.append((name, f"<= {expected:.1f} ms", f"{measured:.2f} ms", _verdict(checks[name])))
    table = common.markdown_table(("measurement", "expected", "measured", "held"), rows)
    print(f"backend: {backend}, {jax.devices()[0].device_kind}")
    print(table)
    results = {
        "command": script.recorded_command("experiments.benchmarks.accelerator_check", args, define_flags),
        "backend": backend,
        "device_kind": jax.devices()[0].device_kind,
        "time": common.utc_now(),
        "code": common.git_state(),
        "train_step": train,
        "checks": checks,
        "table": table,
    }
    if args.json_out:
        pathlib.Path(args.json_out).write_text(json.dumps(results, indent=2, default=str) + "\n")
    return results


def _verdict(held: bool | None) -> str:
    return "-" if held is None else ("yes" if held else "**no**")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    script.run_as_script(run, define_flags)
