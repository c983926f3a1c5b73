"""Inner implementation of the alpha-1 block convolutions: taps vs banded XLA, 256 and 512 px.

Throw-away A/B harness, kept as the record of figures quoted in
experiments/benchmarks/README.md and code comments (2026-11-23). Run from
the repository root:

    .venv/bin/python experiments/benchmarks/ab_2026_11_23/full_last.py
"""
import functools
import os
import sys
import jax
sys.path.insert(0, os.path.dirname(__file__))
from lite_layers import banded_xla, bench  # noqa: E402
from arbitrary_style.models.layers import conv_by_blocks, conv_by_taps  # noqa: E402
key = jax.random.PRNGKey(0)
for px in (256, 512):
    for name, (cin, cout) in {"first": (3, 32), "last": (32, 3)}.items():
        x = jax.random.normal(key, (1, px + 8, px + 8, cin)); w = jax.random.normal(key, (9, 9, cin, cout)) * 0.1
        for s in (2,):
            for inner, fn in (("taps", conv_by_taps), ("xla_banded", banded_xla)):
                jf = jax.jit(functools.partial(conv_by_blocks, block=s, inner=fn))
                print(px, name, f"blocks{s}_{inner}", round(bench(jf, x, w), 1), flush=True)
