"""Prototype of the block (space-to-depth) convolution for the 9x9 layers, and stride-2 layers on blocks.

Throw-away A/B harness, kept as the record of figures quoted in
experiments/benchmarks/README.md and code comments (2026-11-23). Run from
the repository root:

    .venv/bin/python experiments/benchmarks/ab_2026_11_23/s2d.py
"""
import sys, time
import numpy as np, jax, jax.numpy as jnp
sys.path.insert(0, ".")
from arbitrary_style.models.layers import conv_by_taps

def bench(f, *a, n=9):
    jax.block_until_ready(f(*a)); ts = []
    for _ in range(n):
        t = time.perf_counter(); jax.block_until_ready(f(*a)); ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1e3

def xla_conv(x, w, stride=1):
    return jax.lax.conv_general_dilated(x, w, (stride, stride), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))

def s2d(x, s):
    b, h, w, c = x.shape
    return x.reshape(b, h // s, s, w // s, s, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, h // s, w // s, s * s * c)

def d2s(y, s):
    b, h, w, c = y.shape; c //= s * s
    return y.reshape(b, h, w, s, s, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, h * s, w * s, c)

def poly_kernel(w, s):
    """stride-1 kxk conv -> conv over s x s blocks: [kb,kb,s*s*cin, s*s*cout]."""
    k, _, cin, cout = w.shape
    kb = (k - 1 + s - 1) // s + 1
    big = jnp.zeros((kb, kb, s, s, cin, s, s, cout), w.dtype)
    for by in range(kb):
        for bx in range(kb):
            for qy in range(s):
                for qx in range(s):
                    for py in range(s):
                        for px in range(s):
                            dy, dx = s * by + qy - py, s * bx + qx - px
                            if 0 <= dy < k and 0 <= dx < k:
                                big = big.at[by, bx, qy, qx, :, py, px, :].set(w[dy, dx])
    return big.reshape(kb, kb, s * s * cin, s * s * cout)

def conv_poly(x, w, s, impl="xla"):
    k = w.shape[0]; b, h, wd, c = x.shape; ho, wo = h - k + 1, wd - k + 1
    kb = (k - 1 + s - 1) // s + 1
    hb, wb = -(-ho // s), -(-wo // s)  # output blocks
    need_h, need_w = s * (hb + kb - 1), s * (wb + kb - 1)
    x = jnp.pad(x, ((0, 0), (0, need_h - h), (0, need_w - wd), (0, 0)))
    xb = s2d(x, s)
    kw_ = poly_kernel(w, s)
    y = xla_conv(xb, kw_) if impl == "xla" else conv_by_taps(xb, kw_)
    return d2s(y, s)[:, :ho, :wo]

def stride2_s2d(x, w, impl="xla"):
    # 3x3 stride-2 VALID conv on x (already padded): blocks of 2
    k, _, cin, cout = w.shape; b, h, wd, c = x.shape
    ho, wo = (h - k) // 2 + 1, (wd - k) // 2 + 1

    x = jnp.pad(x, ((0, 0), (0, 2 * (ho + 1) - h), (0, 2 * (wo + 1) - wd), (0, 0)))
    xb = s2d(x, 2)
    big = jnp.zeros((2, 2, 2, 2, cin, cout), w.dtype)
    for by in range(2):
        for bx in range(2):
            for qy in range(2):
                for qx in range(2):
                    dy, dx = 2 * by + qy, 2 * bx + qx
                    if dy < k and dx < k:
                        big = big.at[by, bx, qy, qx].set(w[dy, dx])
    kk = big.reshape(2, 2, 4 * cin, cout)
    y = xla_conv(xb, kk) if impl == "xla" else conv_by_taps(xb, kk)
    return y[:, :ho, :wo]

key = jax.random.PRNGKey(0)
for name, (b, h, cin, cout, k) in {"first": (1, 264, 3, 32, 9), "last": (1, 264, 32, 3, 9)}.items():
    x = jax.random.normal(key, (b, h, h, cin)); w = jax.random.normal(jax.random.PRNGKey(1), (k, k, cin, cout)) * 0.1
    ref = jax.jit(xla_conv)(x, w)
    cands = [("xla", xla_conv), ("taps", conv_by_taps)]
    for s in (2, 4):
        for impl in ("xla", "taps"):
            cands.append((f"poly{s}_{impl}", lambda x, w, s=s, impl=impl: conv_poly(x, w, s, impl)))
    for fname, f in cands:
        if (name == "first" and fname == "taps") or fname == "poly4_taps": continue
        jf = jax.jit(f)
        err = float(jnp.max(jnp.abs(jf(x, w) - ref)))
        print(f"{name:6s} {fname:12s} {bench(jf, x, w):8.1f} ms  err {err:.1e}", flush=True)
for name, (b, h, cin, cout) in {"conv2": (1, 258, 32, 64), "conv3": (1, 130, 64, 128)}.items():
    x = jax.random.normal(key, (b, h, h, cin)); w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, cin, cout)) * 0.1
    ref = jax.jit(lambda x, w: xla_conv(x, w, 2))(x, w)
    for fname, f in [("xla", lambda x, w: xla_conv(x, w, 2)), ("s2d_xla", stride2_s2d), ("s2d_taps", lambda x, w: stride2_s2d(x, w, "taps"))]:
        jf = jax.jit(f)
        err = float(jnp.max(jnp.abs(jf(x, w) - ref)))
        print(f"{name:6s} {fname:12s} {bench(jf, x, w):8.1f} ms  err {err:.1e}", flush=True)
