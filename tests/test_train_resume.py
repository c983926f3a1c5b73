"""A run killed with SIGKILL and started again ends bitwise where an
uninterrupted run ends (same seed; data order included)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import jax
import numpy as np

from arbitrary_style.training import checkpoints, trainer

from conftest import ROOT, leaves, load_config, subprocess_env

NUM_STEPS = 8

TRAIN = r"""
import sys
import conftest
conftest.install_fake_data()
from arbitrary_style.training import trainer
config = conftest.load_config("nstyle", num_steps=int(sys.argv[2]), checkpoint_every=1, log_every=1)
trainer.train_and_evaluate(config, sys.argv[1])
"""


def final_leaves(state) -> list[np.ndarray]:
    return leaves(trainer.model_state(state))


def test_kill_and_resume_equals_uninterrupted(tmp_path, fake_data):
    config = load_config("nstyle", num_steps=NUM_STEPS, checkpoint_every=1, log_every=1)
    reference, _ = trainer.train_and_evaluate(config, tmp_path / "uninterrupted")

    workdir = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", TRAIN, str(workdir), str(NUM_STEPS)],
        cwd=ROOT,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Kill mid-run: once step 2 is logged, i.e. while step 2's checkpoint
    # (saved every step) is being written or step 3 is computing.
    metrics = workdir / trainer.METRICS_FILE
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    mngr = checkpoints.manager(workdir)
    killed_at = mngr.latest_step()
    mngr.close()
    assert killed_at is not None and 0 < killed_at < NUM_STEPS

    resumed, _ = trainer.train_and_evaluate(config, workdir)
    assert int(resumed["step"]) == NUM_STEPS
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps[-1] == NUM_STEPS and killed_at + 1 in steps  # it resumed, not restarted
    for a, b in zip(final_leaves(reference), final_leaves(resumed), strict=True):
        np.testing.assert_array_equal(a, b)  # bitwise
    # The optimizer state too.
    for a, b in zip(
        jax.tree.leaves(jax.device_get(reference["opt_state"])),
        jax.tree.leaves(jax.device_get(resumed["opt_state"])),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
