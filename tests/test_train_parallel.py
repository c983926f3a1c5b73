"""Data parallelism: 4 (fake) CPU devices train like 1; 2 processes with
jax.distributed (gloo CPU collectives) train together and agree."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import numpy as np
import optax
import pytest

from arbitrary_style.training import trainer

from conftest import ROOT, leaves, load_config, run_python, subprocess_env

FOUR_DEVICES = r"""
import json, sys
import conftest
conftest.install_fake_data()
import jax, numpy as np
from arbitrary_style.training import trainer
from arbitrary_style.training import parallel

assert jax.device_count() == 4, jax.devices()
config = conftest.load_config(sys.argv[1], num_steps=3)
config.train.batch_size = 4
# Inception's trunk needs >= 43 px style images (smaller: 0x0 features).
config.data.image_size = 48
# Compile time: no gradient through the Inception trunk. Its batch norms still
# run in training mode (statistics over the global batch, moving averages
# compared below), as do the transfer network's, which also train.
config.train.freeze_predictor_trunk = True
first, moved = {}, {}
for devices in (1, 4):
    run = trainer.setup(config, parallel.make_mesh(jax.devices()[:devices]))
    state = run.state
    initial = np.asarray(jax.device_get(state["params"]["transformer"]["contract"]["conv1"]["weights"][...]))
    sharding = parallel.batch_sharded(run.mesh)
    for step in range(3):
        batch = parallel.global_batch(conftest.fake_global_batch(config, step), sharding)
        state, metrics = run.train_step(state, batch, run.loss_network_state)
        if step == 0:
            # After one step: the loss and gradient norm of the same global
            # batch, and the batch-norm moving averages (global statistics).
            first[devices] = {
                "total": float(metrics["total"]),
                "grad_norm": float(metrics["grad_norm"]),
                "batch_stats": [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state["batch_stats"]))],
            }
    conv1 = state["params"]["transformer"]["contract"]["conv1"]["weights"][...]
    assert len(conv1.sharding.device_set) == devices
    final = np.asarray(jax.device_get(conv1))
    moved[devices] = float(np.max(np.abs(final - initial)))
stats_diff = max(
    (float(np.max(np.abs(a - b))) for a, b in zip(first[1]["batch_stats"], first[4]["batch_stats"])),
    default=0.0,  # N-style: no batch norm
)
print(json.dumps({
    "batch_stats_max_abs_diff": stats_diff,
    "batch_stats_leaves": len(first[1]["batch_stats"]),
    "total": [first[d]["total"] for d in (1, 4)],
    "grad_norm": [first[d]["grad_norm"] for d in (1, 4)],
    "moved": moved,
}))
"""


@pytest.mark.parametrize("config_name, rtol", [("nstyle", 1e-5), ("pbn_dtd", 2e-2)])
def test_four_devices_equal_one_device(config_name, rtol):
    out = run_python(
        FOUR_DEVICES.replace("sys.argv[1]", repr(config_name)),
        XLA_FLAGS="--xla_force_host_platform_device_count=4",
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # The same global batch gives the same loss and gradient on 4 devices as
    # on 1, and batch-norm statistics are over the global batch on the mesh.
    # pbn_dtd's tolerance is loose because its random Inception trunk runs
    # batch norm in training mode over 4 images of 48 px: deep layers
    # normalise a few near-equal values (1x1 maps), which amplifies the
    # rounding differences of another summation order (embeddings ~0.4%
    # apart); N-style has no batch norm and agrees to float rounding.
    # Parameters are not compared: Adam's first update is ~lr * sign(g), so a
    # gradient within rounding of 0 can move either way on either mesh.
    np.testing.assert_allclose(result["total"][1], result["total"][0], rtol=rtol)
    np.testing.assert_allclose(result["grad_norm"][1], result["grad_norm"][0], rtol=max(rtol, 1e-4))
    assert result["batch_stats_max_abs_diff"] <= 1e-5, result
    # The steps trained (a non-finite step would leave the parameters as they were).
    assert min(result["moved"].values()) > 0, result


def test_batch_not_dividing_devices_is_a_clear_error():
    code = r"""
import conftest
from arbitrary_style.training import trainer
config = conftest.load_config("nstyle", num_steps=1)
config.train.batch_size = 3
try:
    trainer.setup(config)
except ValueError as e:
    print("ERROR:", e)
"""
    out = run_python(code, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    assert "batch_size=3 must be a multiple of the number of devices (2)" in out.stdout


WORKER = r"""
import json, sys
import conftest
conftest.install_fake_data()
from arbitrary_style.training import trainer
config = conftest.load_config("nstyle", num_steps=2, checkpoint_every=1, log_every=1)
state, metrics = trainer.train_and_evaluate(config, sys.argv[1])
import hashlib, jax, numpy as np
leaves = [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state["params"]))]
np.savez(f"{sys.argv[1]}-params-{jax.process_index()}.npz", *leaves)
import optax
mu = optax.tree_utils.tree_get(state["opt_state"], "mu")
mu = [np.asarray(x) for x in jax.tree.leaves(jax.device_get(mu))]
np.savez(f"{sys.argv[1]}-mu-{jax.process_index()}.npz", *mu)
digest = hashlib.sha256(b"".join(x.tobytes() for x in leaves)).hexdigest()
print("RESULT " + json.dumps({"process": jax.process_index(), "count": jax.process_count(),
                             "step": int(state["step"]), "total": metrics["total"], "digest": digest}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_with_jax_distributed_agree(tmp_path, fake_data):
    port = _free_port()
    workdir = tmp_path / "shared"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(workdir)],
            cwd=ROOT,
            env=subprocess_env(
                JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
                JAX_NUM_PROCESSES="2",
                JAX_PROCESS_ID=str(i),
                JAX_PLATFORMS="cpu",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=400)
        assert proc.returncode == 0, stdout + stderr
        line = next(out for out in stdout.splitlines() if out.startswith("RESULT "))
        results.append(json.loads(line.removeprefix("RESULT ")))
    assert sorted(r["process"] for r in results) == [0, 1]
    assert all(r["count"] == 2 and r["step"] == 2 for r in results)
    assert results[0]["digest"] == results[1]["digest"]  # bitwise equal on both hosts
    # Each host read half of every batch; together they trained on the same
    # global batches as one process does.
    config = load_config("nstyle", num_steps=2, log_every=1)
    state, _ = trainer.train_and_evaluate(config, tmp_path / "single")
    single = leaves(state["params"])
    with np.load(f"{workdir}-params-0.npz") as saved:
        distributed = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    # Same losses as one process (cross-host sums round differently) ...
    def totals(path):
        return [json.loads(line)["total"] for line in (path / "metrics.jsonl").read_text().splitlines()]

    np.testing.assert_allclose(totals(workdir), totals(tmp_path / "single"), rtol=1e-5)
    # ... the same gradients: Adam's first moment after 2 steps (0.1 g2 + 0.09 g1)
    # is linear in them, so it agrees to rounding of its leaf's scale (3.6e-4
    # at most, measured). Leaves whose gradient is zero in exact arithmetic
    # have only rounding noise to compare (the residual blocks' second shift:
    # a per-channel constant that reaches the next norm only through
    # reflect-padded convolutions, which the norm removes); Adam's eps keeps
    # them from moving 1 % of a step, and they are skipped.
    single_mu = leaves(optax.tree_utils.tree_get(state["opt_state"], "mu"))
    with np.load(f"{workdir}-mu-0.npz") as saved:
        distributed_mu = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    initial = leaves(trainer.setup(load_config("nstyle", num_steps=2)).state["params"])
    lr = float(load_config("nstyle").optimizer.learning_rate)
    compared = 0
    for a, b, p_end, p_start in zip(single_mu, distributed_mu, single, initial, strict=True):
        if np.max(np.abs(p_end - p_start)) > 0.01 * lr:
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-3 * float(np.max(np.abs(a))))
            compared += 1
    assert compared >= len(single) // 2, compared
    # ... and parameters to a tenth of one Adam step. A step moves a parameter
    # by about lr (|m_hat| / sqrt(v_hat) ~ 1), and a wrong step (another
    # batch, a gradient not averaged over hosts) changes the second step's
    # direction by a sizeable part of that; the two runs differ by at most
    # 0.022 lr (measured). A gradient within rounding of zero may still take
    # either sign (up to 2 lr apart): 0.1 % of the elements may.
    differences = np.concatenate([np.abs(a - b).ravel() for a, b in zip(single, distributed, strict=True)])
    assert np.mean(differences > 0.1 * lr) <= 1e-3, np.sort(differences)[-10:] / lr
    # One set of checkpoints, written together.
    assert (workdir / "checkpoints" / "2").is_dir()
