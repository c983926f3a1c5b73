"""Whole transfer network, interleaved: 'old' (no bands, no blocks) vs 'new' (the code as it is).

Throw-away A/B harness, kept as the record of figures quoted in
experiments/benchmarks/README.md and code comments (2026-11-23). Run from
the repository root:

    for a in "256 1.0 7" "512 1.0 5" "1024 1.0 3" "384 0.25 7" "1024 0.25 3"; do .venv/bin/python experiments/benchmarks/ab_2026_11_23/net_ab.py $a; done
"""
import sys, time
import numpy as np, jax, jax.numpy as jnp
from flax import nnx
from arbitrary_style.models.transformer import StyleTransferNetwork
from arbitrary_style.models import layers as L

px = int(sys.argv[1]); alpha = float(sys.argv[2]); reps = int(sys.argv[3]) if len(sys.argv) > 3 else 5
def make(variant):
    net = StyleTransferNetwork(alpha, rngs=nnx.Rngs(0))
    if variant == "old":
        for layer in net.layers:
            conv = L.get_module(net, layer.name)
            conv.banded = False
            if conv.implementation == "blocks":
                conv.implementation = "taps" if conv.weights.shape[2] >= 16 else "xla"
    gd, st = nnx.split(net)
    return jax.jit(lambda st, x, p: nnx.merge(gd, st)(x, p)), st, net
params = None; fns = {}
x = jax.random.uniform(jax.random.PRNGKey(0), (1, px, px, 3))
for v in ("old", "new"):
    f, st, net = make(v)
    params = {n: (jnp.zeros((1, c)), jnp.ones((1, c))) for n, c in net.conditional_layers}
    t = time.perf_counter(); jax.block_until_ready(f(st, x, params)); print(v, "first call s", round(time.perf_counter() - t, 1))
    fns[v] = (f, st)
outs = {v: f(st, x, params) for v, (f, st) in fns.items()}
print("max diff", float(jnp.max(jnp.abs(outs["old"] - outs["new"]))))
ts = {v: [] for v in fns}
for _ in range(reps):
    for v, (f, st) in fns.items():
        t = time.perf_counter(); jax.block_until_ready(f(st, x, params)); ts[v].append(time.perf_counter() - t)
print({v: round(1e3 * float(np.median(t)), 1) for v, t in ts.items()})
