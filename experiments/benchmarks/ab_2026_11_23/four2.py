"""Predictor embedding and stylized output of the pbn_dtd test setup on 1 vs 4 CPU devices (TRAIN=1: batch norm in training mode).

Throw-away A/B harness, kept as the record of figures quoted in
experiments/benchmarks/README.md and code comments (2026-11-23). Run from
the repository root:

    TRAIN=1 PYTHONPATH=.:tests XLA_FLAGS=--xla_force_host_platform_device_count=4 .venv/bin/python experiments/benchmarks/ab_2026_11_23/four2.py
"""
import conftest
conftest.install_fake_data()
import jax, numpy as np
from flax import nnx
from arbitrary_style import trainer
from arbitrary_style.training import parallel
config = conftest.load_config("pbn_dtd", num_steps=3)
config.train.batch_size = 4
config.data.image_size = 48
config.train.freeze_predictor_trunk = True
import os
TRAIN = bool(os.environ.get("TRAIN"))
out = {}
for devices in (1, 4):
    run = trainer.setup(config, parallel.make_mesh(jax.devices()[:devices]))
    batch = parallel.global_batch(conftest.fake_global_batch(config, 0), parallel.batch_sharded(run.mesh))
    st = run.state
    @jax.jit
    def fwd(st, batch):
        model = nnx.merge(run.graphdef, st["params"], st["batch_stats"], st["frozen"], copy=True)
        emb = model.predictor.embed(batch["style"], train=TRAIN)
        np_ = model.predictor.norm_params(emb)
        y = model.transformer(batch["content"], np_, train=True)
        return emb, y
    out[devices] = jax.device_get(fwd(st, batch))
print("embed diff", float(np.max(np.abs(out[1][0] - out[4][0]))), "scale", float(np.max(np.abs(out[1][0]))))
print("stylized diff", float(np.max(np.abs(out[1][1] - out[4][1]))))
