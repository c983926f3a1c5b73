"""Batch-8 convolutions: whole batch vs lax.map over chunks, forward and gradient.

Throw-away A/B harness, kept as the record of figures quoted in
experiments/benchmarks/README.md and code comments (2026-11-23). Run from
the repository root:

    .venv/bin/python experiments/benchmarks/ab_2026_11_23/mapb.py
"""
import time
import numpy as np, jax, jax.numpy as jnp
from arbitrary_style.models.layers import conv_by_taps
def bench(f, *a, n=5):
    jax.block_until_ready(f(*a)); ts = []
    for _ in range(n):
        t = time.perf_counter(); jax.block_until_ready(f(*a)); ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1e3
def xla(x, w, s=1):
    return jax.lax.conv_general_dilated(x, w, (s, s), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
def mapped(conv, chunk):
    def f(x, w):
        b = x.shape[0]
        xs = x.reshape(b // chunk, chunk, *x.shape[1:])
        y = jax.lax.map(lambda xi: conv(xi, w), xs)
        return y.reshape(b, *y.shape[2:])
    return f
key = jax.random.PRNGKey(0)
for (h, cin, cout, k, s, conv, name) in [(66, 128, 128, 3, 1, xla, "res xla"), (66, 128, 128, 3, 1, conv_by_taps, "res taps"), (130, 64, 128, 3, 2, lambda x, w: xla(x, w, 2), "conv3"), (58, 256, 256, 3, 1, xla, "vgg conv3 xla 56"), (58, 256, 256, 3, 1, conv_by_taps, "vgg conv3 taps 56")]:
    x = jax.random.normal(key, (8, h, h, cin)); w = jax.random.normal(key, (k, k, cin, cout)) * 0.1
    row = []
    for chunk in (8, 2, 1):
        f = conv if chunk == 8 else mapped(conv, chunk)
        fwd = jax.jit(f)
        g = jax.jit(jax.grad(lambda x, w: jnp.sum(f(x, w) ** 2), argnums=(0, 1)))
        row.append(f"chunk{chunk}: fwd {bench(fwd, x, w):.0f} grad {bench(g, x, w, n=3):.0f}")
    print(name, " | ".join(row), flush=True)
