"""The 9x9 first (3->32) and last (32->3) layers at 256 px: XLA, taps, im2col and channels-first taps variants.

Throw-away A/B harness, kept as the record of figures quoted in
experiments/benchmarks/README.md and code comments (2026-11-23). Run from
the repository root:

    .venv/bin/python experiments/benchmarks/ab_2026_11_23/first_last.py
"""
import sys, time
import numpy as np, jax, jax.numpy as jnp
sys.path.insert(0, ".")
from arbitrary_style.models.layers import conv_by_taps, shifted_sums

def bench(f, *a, n=9):
    jax.block_until_ready(f(*a)); ts = []
    for _ in range(n):
        t = time.perf_counter(); jax.block_until_ready(f(*a)); ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1e3

def xla_conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))

def im2col_full(x, w):
    kh, kw, cin, cout = w.shape; b, h, wd, _ = x.shape; ho, wo = h - kh + 1, wd - kw + 1
    p = jnp.concatenate([x[:, dy:dy + ho, dx:dx + wo, :] for dy in range(kh) for dx in range(kw)], axis=-1)
    return jnp.einsum("bhwk,kn->bhwn", p, w.reshape(kh * kw * cin, cout))

def im2col_rows(x, w):
    # patches along W (kw*cin), taps over dy
    kh, kw, cin, cout = w.shape; b, h, wd, _ = x.shape; ho, wo = h - kh + 1, wd - kw + 1
    p = jnp.concatenate([x[:, :, dx:dx + wo, :] for dx in range(kw)], axis=-1)  # [b,h,wo,kw*cin]
    taps = w.transpose(1, 2, 0, 3).reshape(kw * cin, kh * cout)  # (dx,c) x (dy,o)
    z = jnp.einsum("bhwk,kn->bhwn", p, taps).reshape(b, h, wo, kh, cout)
    group = tuple((dy, dy, 0) for dy in range(kh))
    return shifted_sums(z, (group,), (ho, wo))[:, :, :, 0]

def taps_cfirst(x, w):
    kh, kw, cin, cout = w.shape; b, h, wd, _ = x.shape; ho, wo = h - kh + 1, wd - kw + 1
    taps = w.transpose(0, 1, 3, 2).reshape(kh * kw * cout, cin)
    z = jnp.einsum("nc,bhwc->bnhw", taps, x).reshape(b, kh, kw, cout, h, wd)
    out = 0
    for dy in range(kh):
        for dx in range(kw):
            out = out + z[:, dy, dx, :, dy:dy + ho, dx:dx + wo]
    return out.transpose(0, 2, 3, 1)

def taps_cfirst_rows(x, w):
    # channels-first z, sum over dx first (contiguous), then dy
    kh, kw, cin, cout = w.shape; b, h, wd, _ = x.shape; ho, wo = h - kh + 1, wd - kw + 1
    taps = w.transpose(0, 1, 3, 2).reshape(kh * kw * cout, cin)
    z = jnp.einsum("nc,bhwc->bnhw", taps, x).reshape(b, kh, kw, cout, h, wd)
    r = sum(z[:, :, dx, :, :, dx:dx + wo] for dx in range(kw))  # [b,kh,cout,h,wo]
    out = sum(r[:, dy, :, dy:dy + ho, :] for dy in range(kh))
    return out.transpose(0, 2, 3, 1)

key = jax.random.PRNGKey(0)
for name, (b, h, cin, cout) in {"first": (1, 264, 3, 32), "last": (1, 264, 32, 3)}.items():
    x = jax.random.normal(key, (b, h, h, cin)); w = jax.random.normal(jax.random.PRNGKey(1), (9, 9, cin, cout)) * 0.1
    ref = jax.jit(xla_conv)(x, w)
    for fname, f in [("xla", xla_conv), ("taps", conv_by_taps), ("im2col_full", im2col_full), ("im2col_rows", im2col_rows), ("taps_cfirst", taps_cfirst), ("taps_cfirst_rows", taps_cfirst_rows)]:
        jf = jax.jit(f)
        err = float(jnp.max(jnp.abs(jf(x, w) - ref)))
        print(f"{name:6s} {fname:18s} {bench(jf, x, w):8.1f} ms  err {err:.1e}", flush=True)
