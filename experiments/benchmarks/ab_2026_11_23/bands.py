"""XLA convolutions at 512 px split into 1-16 bands of output rows.

Throw-away A/B harness, kept as the record of figures quoted in
experiments/benchmarks/README.md and code comments (2026-11-23). Run from
the repository root:

    .venv/bin/python experiments/benchmarks/ab_2026_11_23/bands.py
"""
import time
import numpy as np, jax, jax.numpy as jnp
from arbitrary_style.models.layers import conv_by_taps, conv_by_blocks
def bench(f, *a, n=5):
    jax.block_until_ready(f(*a)); ts = []
    for _ in range(n):
        t = time.perf_counter(); jax.block_until_ready(f(*a)); ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1e3
def xla(x, w, s=1):
    return jax.lax.conv_general_dilated(x, w, (s, s), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
def banded(conv, k, s, nb):
    def f(x, w):
        h = x.shape[1]; ho = (h - k) // s + 1
        step = -(-ho // nb); outs = []
        for r0 in range(0, ho, step):
            r1 = min(ho, r0 + step)
            outs.append(conv(x[:, r0 * s:(r1 - 1) * s + k], w))
        return jnp.concatenate(outs, axis=1)
    return f
key = jax.random.PRNGKey(0)
cases = {
 "conv1 blocks": (520, 3, 32, 9, 1, lambda x, w: conv_by_blocks(x, w, 2, "xla")),
 "conv2 xla s2": (514, 32, 64, 3, 2, lambda x, w: xla(x, w, 2)),
 "conv3 xla s2": (258, 64, 128, 3, 2, lambda x, w: xla(x, w, 2)),
 "res taps": (130, 128, 128, 3, 1, conv_by_taps),
 "res xla": (130, 128, 128, 3, 1, xla),
 "last blocks": (520, 32, 3, 9, 1, lambda x, w: conv_by_blocks(x, w, 2, "taps")),
}
for name, (h, cin, cout, k, s, conv) in cases.items():
    x = jax.random.normal(key, (1, h, h, cin)); w = jax.random.normal(key, (k, k, cin, cout)) * 0.1
    ref = jax.jit(conv)(x, w)
    row = []
    for nb in (1, 2, 4, 8, 16):
        f = jax.jit(banded(conv, k, s, nb))
        assert float(jnp.max(jnp.abs(f(x, w) - ref))) < 1e-3
        row.append(f"{nb}:{bench(f, x, w):.0f}")
    print(name, h, " ".join(row), flush=True)
