"""One conv shape at a time, XLA convolution vs conv_by_taps, under XLA CPU flags (oneDNN, XNNPACK).

Throw-away A/B harness, kept as the record of figures quoted in
experiments/benchmarks/README.md and code comments (2026-11-23). Run from
the repository root:

    for fl in "" "--xla_cpu_experimental_xnn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION" "--xla_cpu_use_xnnpack=true" "--xla_cpu_use_onednn=true"; do XLA_FLAGS="$fl" .venv/bin/python experiments/benchmarks/ab_2026_11_23/conv_flags.py; done
"""
import os, sys, time, json
import numpy as np, jax
sys.path.insert(0, ".")
from arbitrary_style.models.layers import conv_by_taps

def bench(f, *a, n=10):
    f(*a).block_until_ready()
    ts = []
    for _ in range(n):
        t = time.perf_counter(); f(*a).block_until_ready(); ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1e3

res = {}
key = jax.random.PRNGKey(0)
m = jax.random.normal(key, (2048, 2048))
mm = jax.jit(lambda a, b: a @ b)
t = bench(mm, m, m); res["matmul_gflops"] = 2 * 2048**3 / t / 1e6
for (b, h, cin, cout, k) in [(1, 66, 128, 128, 3), (8, 66, 128, 128, 3), (1, 264, 3, 32, 9), (1, 262, 32, 3, 9), (1,130,32,64,3)]:
    x = jax.random.normal(key, (b, h, h, cin)); w = jax.random.normal(key, (k, k, cin, cout)) * 0.1
    conv = jax.jit(lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")))
    taps = jax.jit(conv_by_taps)
    flops = 2 * b * (h - k + 1) ** 2 * k * k * cin * cout
    tc = bench(conv, x, w); tt = bench(taps, x, w)
    res[f"{b}x{h}x{cin}->{cout} k{k}"] = dict(conv_ms=round(tc, 2), taps_ms=round(tt, 2), conv_gflops=round(flops / tc / 1e6, 1), taps_gflops=round(flops / tt / 1e6, 1))
print(os.environ.get("XLA_FLAGS", ""), json.dumps(res))
