"""The lite network's 9x9 layers (3->8, 8->3) at 384 px: XLA, banded XLA, taps, blocks of 2 and 4.

Throw-away A/B harness, kept as the record of figures quoted in
experiments/benchmarks/README.md and code comments (2026-11-23). Run from
the repository root:

    .venv/bin/python experiments/benchmarks/ab_2026_11_23/lite_layers.py 384
"""
import sys, time, functools
import numpy as np, jax, jax.numpy as jnp
from arbitrary_style.models.layers import conv_by_taps, conv_by_blocks, xla_conv, conv_in_bands
def bench(f, *a, n=9):
    jax.block_until_ready(f(*a)); ts = []
    for _ in range(n):
        t = time.perf_counter(); jax.block_until_ready(f(*a)); ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1e3
def banded_xla(x, w):
    return conv_in_bands(functools.partial(xla_conv, weights=w), x, w.shape[:2], 1, band_pixels=2048, max_bands=32)
if __name__ == "__main__":
    key = jax.random.PRNGKey(0)
    px = int(sys.argv[1])
    for name, (cin, cout) in {"first": (3, 8), "last": (8, 3)}.items():
        x = jax.random.normal(key, (1, px + 8, px + 8, cin)); w = jax.random.normal(key, (9, 9, cin, cout)) * 0.1
        ref = jax.jit(xla_conv)(x, w)
        cands = {"xla": xla_conv, "xla_banded": banded_xla, "taps": conv_by_taps}
        for s in (2, 4):
            for inner in ("xla", "taps", "xla_banded"):
                cands[f"blocks{s}_{inner}"] = functools.partial(conv_by_blocks, block=s, inner={"xla": xla_conv, "taps": conv_by_taps, "xla_banded": banded_xla}[inner])
        for fname, f in cands.items():
            jf = jax.jit(f)
            err = float(jnp.max(jnp.abs(jf(x, w) - ref)))
            print(f"{px} {name:6s} {fname:18s} {bench(jf, x, w):8.1f} ms  err {err:.1e}", flush=True)
