"""Per-layer time of the transfer network, each layer jitted alone, per implementation.

Throw-away A/B harness, kept as the record of figures quoted in
experiments/benchmarks/README.md and code comments (2026-11-23). Run from
the repository root:

    .venv/bin/python experiments/benchmarks/ab_2026_11_23/layers_profile.py 512 1.0   # also: 256 1.0, 384 0.25
"""
import sys, time
import numpy as np, jax, jax.numpy as jnp
from flax import nnx
sys.path.insert(0, ".")
from arbitrary_style.models.transformer import StyleTransferNetwork
from arbitrary_style.models import layers as L

def bench(f, *a, n=7):
    r = f(*a); jax.block_until_ready(r)
    ts = []
    for _ in range(n):
        t = time.perf_counter(); jax.block_until_ready(f(*a)); ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1e3

px = int(sys.argv[1]); alpha = float(sys.argv[2]); batch = int(sys.argv[3]) if len(sys.argv) > 3 else 1
net = StyleTransferNetwork(alpha, rngs=nnx.Rngs(0))
params = {n: (jnp.zeros((batch, c)), jnp.ones((batch, c))) for n, c in net.conditional_layers}
x = jax.random.uniform(jax.random.PRNGKey(0), (batch, px, px, 3))
gd, st = nnx.split(net)
full = jax.jit(lambda st, x, p: nnx.merge(gd, st)(x, p))
tot = bench(full, st, x, params)
print(f"whole network {px}px alpha {alpha} batch {batch}: {tot:.1f} ms; GFLOP {full.lower(st,x,params).compile().cost_analysis()['flops']/1e9:.2f}")
s = 0
for layer in net.layers:
    conv = L.get_module(net, layer.name)
    for impl in ["xla", "taps", "blocks"]:
        if impl != "xla" and layer.stride != 1: continue
        if impl == "taps" and layer.kernel_size==9 and x.shape[-1]==3: continue
        if impl == "blocks" and (layer.kernel_size != 9): continue
        conv.implementation = impl
        g, cs = nnx.split(conv)
        if layer.upsample:
            f = jax.jit(lambda cs, x: nnx.merge(g, cs).convolve_upsampled(x))
        else:
            f = jax.jit(lambda cs, x: nnx.merge(g, cs).convolve(x))
        t = bench(f, cs, x)
        fl = f.lower(cs, x).compile().cost_analysis()['flops']/1e9
        print(f"{layer.name:28s} {impl:4s} in {tuple(x.shape)} {t:8.1f} ms {fl:6.2f} GFLOP {fl/t*1e3:6.1f} GFLOP/s")
    y = f(cs, x)
    nf = jax.jit(lambda y: jax.nn.relu(L.conditional_instance_norm(y, jnp.zeros((batch, y.shape[-1])), jnp.ones((batch, y.shape[-1])))))
    pass #:28s}      {bench(nf, y):8.1f} ms")
    x = nf(y)
