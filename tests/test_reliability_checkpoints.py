"""Checkpoints that cannot silently poison a run.

A damaged latest checkpoint (a truncated data file, a truncated ``_METADATA``,
8 bytes overwritten inside an array's data) is skipped with one warning line
and the run resumes from the previous step, ending bitwise where an
uninterrupted run ends; all checkpoints damaged is one error line; a save that
fails stops the run at that step and keeps the earlier steps; metrics.jsonl
holds each step once after a resume; orbax's INFO records stay out of the log.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
from orbax.checkpoint._src.path import atomicity

from arbitrary_style.training import checkpoints, observe, trainer

from conftest import install_fake_data, leaves, load_config

NUM_STEPS = 3


def train_config(num_steps: int = NUM_STEPS):
    return load_config("nstyle", num_steps=num_steps, checkpoint_every=1, log_every=1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A workdir with checkpoints 1..NUM_STEPS, and the host leaves of the
    final state (model, then optimizer) of that uninterrupted run."""
    workdir = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:
        install_fake_data(patch.setattr)
        state, _ = trainer.train_and_evaluate(train_config(), workdir)
    reference = leaves(trainer.model_state(state)) + leaves(state["opt_state"])
    return workdir, reference


@pytest.fixture
def workdir(trained, tmp_path, fake_data) -> Path:
    """A copy of the trained workdir (each test damages its own)."""
    copy = tmp_path / "run"
    shutil.copytree(trained[0], copy)
    return copy


def data_file(item_dir: Path) -> Path:
    """The largest array data file of an item (the one with most arrays in it)."""
    files = [p for p in (item_dir / "ocdbt.process_0" / "d").iterdir() if p.is_file()]
    return max(files, key=lambda p: p.stat().st_size)


def truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def overwrite_8_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))


def without_file_checksums(damage):
    def damage_arrays_only(step: Path) -> None:
        (step / checkpoints.FILE_CHECKSUMS).unlink()
        damage(step)

    return damage_arrays_only


DAMAGE = {
    # What each kind of damage did before checksums: a 151-line TensorStore
    # traceback, a JSONDecodeError traceback, and a silent load of wrong
    # values. The file checksums catch all three before orbax reads.
    "truncated data file": (
        lambda step: truncate(data_file(step / "model")),
        "file model/ocdbt.process_0/d/.* differs from its sha256",
    ),
    "truncated _METADATA": (
        lambda step: truncate(step / "model" / "_METADATA"),
        "file model/_METADATA differs from its sha256",
    ),
    "8 bytes overwritten": (
        lambda step: overwrite_8_bytes(data_file(step / "model")),
        "file model/ocdbt.process_0/d/.* differs from its sha256",
    ),
    # A step whose file checksums were never written (killed right after
    # orbax's commit): the array manifest catches the values that decode
    # without error.
    "8 bytes overwritten, no file checksums": (
        without_file_checksums(lambda step: overwrite_8_bytes(data_file(step / "model"))),
        "model/.* differs from its sha256 recorded at save time",
    ),
}


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def metrics_steps(workdir: Path) -> list[int]:
    lines = (workdir / trainer.METRICS_FILE).read_text().splitlines()
    return [json.loads(line)["step"] for line in lines]


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(damage, workdir, trained, caplog, capsys):
    damage_step, reason = DAMAGE[damage]
    latest = workdir / checkpoints.CHECKPOINT_DIR / str(NUM_STEPS)
    damage_step(latest)

    # eval and stylize: the latest valid step, with one warning; the damaged
    # step asked for by number is an error naming it.
    _, model = checkpoints.restore_model(workdir)
    [warning] = warnings_of(caplog)
    assert str(latest) in warning and re.search(reason, warning) and f"using step {NUM_STEPS - 1}" in warning
    with pytest.raises(checkpoints.CheckpointError, match=f"{latest} is damaged, {reason}") as error:
        checkpoints.restore_model(workdir, NUM_STEPS)
    assert "\n" not in str(error.value)
    caplog.clear()

    state, _ = trainer.train_and_evaluate(train_config(), workdir)

    [warning] = warnings_of(caplog)
    assert str(latest) in warning and re.search(reason, warning)
    assert f"resuming from step {NUM_STEPS - 1}" in warning
    # Resumed from the previous step: ends bitwise where the uninterrupted run ended.
    resumed = leaves(trainer.model_state(state)) + leaves(state["opt_state"])
    for a, b in zip(trained[1], resumed, strict=True):
        np.testing.assert_array_equal(a, b)
    # The damaged step is kept aside; a good one took its place.
    assert (workdir / checkpoints.DAMAGED_DIR / str(NUM_STEPS) / "model").is_dir()
    mngr = checkpoints.manager(workdir)
    assert list(mngr.all_steps()) == [1, 2, 3]
    mngr.close()
    checkpoints.restore_model(workdir, NUM_STEPS)
    # Each step once in metrics.jsonl: the first run's row of step 3 was
    # dropped when the run resumed from step 2.
    assert metrics_steps(workdir) == [1, 2, 3]
    assert "nan" not in capsys.readouterr().out


def test_no_valid_checkpoint_is_one_error(workdir):
    steps = sorted((workdir / checkpoints.CHECKPOINT_DIR).glob("[0-9]*"))
    for step in steps:
        truncate(step / "model" / "_METADATA")
    expected = "no valid checkpoint in .*step 3: .*step 1: "
    with pytest.raises(checkpoints.CheckpointError, match=expected) as error:
        trainer.train_and_evaluate(train_config(), workdir)
    assert "\n" not in str(error.value)
    # Nothing was moved or written.
    assert sorted((workdir / checkpoints.CHECKPOINT_DIR).glob("[0-9]*")) == steps
    assert not (workdir / checkpoints.DAMAGED_DIR).exists()


def test_failed_save_stops_the_run_at_that_step(workdir, monkeypatch):
    # What a full disk does: the write fails in orbax's background thread
    # (a read-only directory fails at the same place, creating the step's
    # temporary directory; as root, chmod cannot make one here).
    create = atomicity.AtomicRenameTemporaryPath.create
    failing_step = NUM_STEPS + 1

    async def full_disk(self, *args, **kwargs):
        if self.get().name.startswith(f"{failing_step}."):
            raise OSError(errno.ENOSPC, "No space left on device", str(self.get()))
        return await create(self, *args, **kwargs)

    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "create", full_disk)
    with pytest.raises(checkpoints.CheckpointError) as error:
        trainer.train_and_evaluate(train_config(num_steps=NUM_STEPS + 3), workdir)
    message = str(error.value)
    assert "\n" not in message
    assert f"step {failing_step}" in message and "No space left on device" in message
    assert f"latest saved step is {NUM_STEPS}" in message
    # Stopped at that step, the earlier checkpoints intact.
    assert metrics_steps(workdir)[-1] == failing_step
    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "create", create)
    mngr = checkpoints.manager(workdir)
    assert list(mngr.all_steps()) == [1, 2, 3]
    mngr.close()
    checkpoints.restore_model(workdir, NUM_STEPS)


def test_manifest_records_every_array_and_restore_checks_finite(tmp_path):
    tree = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "count": np.int32(4)}
    manifest = checkpoints.array_manifest(tree)
    assert manifest["w"]["shape"] == [2, 3] and manifest["count"]["dtype"] == "int32"
    # An independent hash of the same bytes.
    assert manifest["w"]["sha256"] == hashlib.sha256(tree["w"].tobytes()).hexdigest()

    mngr = checkpoints.manager(tmp_path)
    checkpoints.save(mngr, 1, {"w": tree["w"]}, {"count": tree["count"]}, force=True)
    bad = {"w": np.array([[0, np.inf, 2], [3, 4, 5]], np.float32)}
    checkpoints.save(mngr, 2, bad, {"count": tree["count"]}, force=True)
    abstract = checkpoints.abstract_like(jax.tree.map(jax.numpy.asarray, {"w": tree["w"]}))
    with pytest.raises(checkpoints.DamagedCheckpointError, match="step 2: model/w holds 1 non-finite"):
        checkpoints.restore(mngr, 2, abstract)
    step, model, _, damaged = checkpoints.restore_newest_valid(mngr, abstract)
    assert step == 1 and [e.step for e in damaged] == [2]
    np.testing.assert_array_equal(model["w"], tree["w"])
    mngr.close()


def test_orbax_info_records_are_off_by_default(tmp_path, caplog):
    def orbax_records(workdir):
        caplog.clear()
        mngr = checkpoints.manager(workdir)
        checkpoints.save(mngr, 1, {"w": np.zeros(3, np.float32)}, {"n": np.int32(0)}, force=True)
        mngr.close()
        return [r for r in caplog.records if "/orbax/" in r.pathname.replace(os.sep, "/")]

    caplog.set_level(logging.INFO)
    # Orbax logs through absl's logger, whose own level a tool run earlier in
    # this process may have raised (command_line.configure_logging).
    caplog.set_level(logging.INFO, logger="absl")
    assert orbax_records(tmp_path / "quiet") == []
    checkpoints.set_orbax_log_level(logging.INFO)
    try:
        assert orbax_records(tmp_path / "verbose")  # the filter, not a missing logger, kept them out
    finally:
        checkpoints.set_orbax_log_level(logging.CRITICAL)


def test_first_step_logs_no_rate():
    progress = observe.Progress(first_step=0, num_steps=10, batch_size=2)
    progress.first_step_done(1)
    first = progress.line(1, 0.5, progress.rates(1))
    assert first == "step 1/10  loss 0.5  ETA ?"
    later = progress.line(3, 0.25, progress.rates(3))
    assert "steps/s" in later and "images/s" in later and "nan" not in later
