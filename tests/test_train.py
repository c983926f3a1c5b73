"""The training loop in one process: every smoke config trains, the step compiles
once, the NaN guard, N-style fine-tuning, init from a checkpoint, restore_model.

Data comes from the fake source of conftest.py (fixed sizes, no TensorFlow);
the data pipeline has its own tests.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from flax import nnx

from arbitrary_style import data, models
from arbitrary_style.inference.stylizer import Stylizer
from arbitrary_style.training import checkpoints, parallel, trainer
from arbitrary_style.training import step as step_lib

from conftest import fake_global_batch, fake_train_batches, leaves, load_config


def assert_leaves_equal(a, b) -> None:
    for x, y in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def capture_runs(monkeypatch) -> list[trainer.Run]:
    """Records the Run objects that train_and_evaluate builds."""
    runs = []
    setup = trainer.setup

    def recording_setup(*args, **kwargs):
        runs.append(setup(*args, **kwargs))
        return runs[-1]

    monkeypatch.setattr(trainer, "setup", recording_setup)
    return runs


@pytest.mark.parametrize("name", ["nstyle", "demo", "pbn_dtd"])
def test_smoke_variant_trains_and_compiles_once(name, tmp_path, fake_data, monkeypatch):
    runs = capture_runs(monkeypatch)
    config = load_config(name, num_steps=2, log_every=1, print_loss_breakdown=True)
    state, metrics = trainer.train_and_evaluate(config, tmp_path)

    assert int(state["step"]) == 2
    assert np.isfinite(metrics["total"]) and metrics["grad_norm"] > 0
    # Two steps, one compilation of the step (style.md point 12).
    assert runs[0].train_step._cache_size() == 1
    # Every loss term, weighted and unweighted, and the rates were logged.
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert set(runs[0].term_names) <= set(records[-1]) and "steps_per_sec" in records[-1]
    assert json.loads((tmp_path / "config.json").read_text())["model"]["kind"] == config.model.kind
    # The checkpoint holds what the loop ended with.
    _, model = checkpoints.restore_model(tmp_path)
    assert_leaves_equal(
        nnx.state(model, nnx.Param),
        nnx.state(nnx.merge(runs[0].graphdef, *_model_parts(state)), nnx.Param),
    )


    if name in ("demo", "pbn_dtd"):
        # What the Stylizer makes of a workdir we trained (demo: the lite
        # model's shape; pbn_dtd: an Inception-v3 predictor).
        stylizer = Stylizer.from_workdir(tmp_path)
        rng = np.random.default_rng(0)
        content = rng.integers(0, 256, (36, 44, 3), dtype=np.uint8)
        style = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)  # Inception-v3 needs >= 43 px
        out = np.asarray(stylizer.stylize(content, style))
        assert out.shape[:2] == content.shape[:2] and np.isfinite(out.astype(np.float32)).all()
    if name == "pbn_dtd":
        # Below 43 px Inception's Mixed_6a leaves 0x0 features, whose spatial
        # mean is NaN: the NaN this test once gave with a 32 px style.
        with pytest.raises(ValueError, match="32x32 pixels, too small"):
            stylizer.stylize(content, style[:32, :32], style_size=None)  # native size


def test_random_style_sizes_compile_one_step_per_bucket(tmp_path, monkeypatch):
    """The paper's smoke variant with random style sizes on, through the real
    data pipeline (demo data): the step compiles once per distinct size drawn,
    and only the bucket sizes are drawn (config.data.style_size_buckets)."""
    runs = capture_runs(monkeypatch)
    sides = []
    pipeline_batches = data.train_batches

    def recording_batches(config, **kwargs):
        for batch in pipeline_batches(config, **kwargs):
            sides.append(batch["style"].shape[1])
            yield batch

    monkeypatch.setattr(data, "train_batches", recording_batches)
    # A frozen Inception trunk halves each compilation; the count is the same.
    config = load_config("pbn_dtd", num_steps=3, freeze_predictor_trunk=True)
    assert config.data.style_sources == ("demo",)
    config.data.style_random_size = True
    # Two small sizes keep the test fast (Inception needs >= 43 px).
    config.data.style_size_range = (48, 80)
    config.data.style_size_buckets = 2
    state, _ = trainer.train_and_evaluate(config, tmp_path)

    assert int(state["step"]) == 3 and len(sides) == 3
    assert set(sides) <= {48, 64}
    # Three steps, two sizes (seed 0 draws 64, 48, 48): two programs, not three.
    assert len(set(sides)) == 2
    assert runs[0].train_step._cache_size() == len(set(sides))


def _model_parts(state):
    return state["params"], state["batch_stats"], state["frozen"]


def test_nan_guard_stops_naming_step_and_term(tmp_path, monkeypatch):
    bad_step = 2

    def batches_with_nan(config, **kwargs):
        for k, batch in enumerate(fake_train_batches(config, **kwargs), kwargs.get("start_step", 0)):
            if k == bad_step:
                batch = dict(batch, content=np.full_like(batch["content"], np.nan))
            yield batch

    monkeypatch.setattr(data, "train_batches", batches_with_nan)
    config = load_config("nstyle", num_steps=5, checkpoint_every=1, log_every=100)
    with pytest.raises(step_lib.NonFiniteLossError, match=r"step 2 .*content/conv3.*total"):
        trainer.train_and_evaluate(config, tmp_path)
    mngr = checkpoints.manager(tmp_path)
    # Steps 0 and 1 were good and saved; nothing after the bad step was.
    assert mngr.latest_step() == 2 and max(mngr.all_steps()) == 2
    mngr.close()
    _, model = checkpoints.restore_model(tmp_path)
    assert all(np.isfinite(x).all() for x in leaves(nnx.state(model)))


def test_nstyle_finetune_new_styles_changes_only_style_rows(tmp_path, fake_data):
    base_dir, tuned_dir = tmp_path / "base", tmp_path / "tuned"
    trainer.train_and_evaluate(load_config("nstyle", num_steps=1), base_dir)
    _, base = checkpoints.restore_model(base_dir)

    # Add a fourth style to the 3-style model and train only the style rows.
    config = load_config("nstyle", num_steps=2, finetune_all_params=False, init_from=str(base_dir))
    config.model.num_styles = 4
    state, _ = trainer.train_and_evaluate(config, tuned_dir)
    assert state["params"].keys() == {"style_tables"}  # only the rows are optimised
    _, tuned = checkpoints.restore_model(tuned_dir)

    assert_leaves_equal(nnx.state(tuned.transformer), nnx.state(base.transformer))
    for name, _ in base.style_tables.conditional_layers:
        old = getattr_path(base.style_tables, name)
        new = getattr_path(tuned.style_tables, name)
        assert new.beta.shape[0] == 4
        used = set(np.concatenate([fake_global_batch(config, k)["style_id"] for k in range(2)]))
        for row in range(4):
            changed = not np.array_equal(new.gamma[row], (old.gamma[row] if row < 3 else 1.0))
            assert changed == (row in used), (name, row, used)
        # The new row started at the identity (beta 0, gamma 1) and only moved if used.
        if 3 not in used:
            np.testing.assert_array_equal(new.beta[3], 0.0)


def getattr_path(module, path: str):
    for part in path.split("/"):
        module = getattr(module, part)
    return module


def test_freeze_predictor_trunk_leaves_it_out_of_the_optimizer():
    config = load_config("pbn_dtd", freeze_predictor_trunk=True)
    model = nnx.eval_shape(lambda: models.build_model(config.model, rngs=nnx.Rngs(0)))
    _, params, _, frozen = nnx.split(model, model.trainable_filter(config.train), nnx.BatchStat, ...)
    assert "InceptionV3" not in params["predictor"] and "transformer" in params
    assert "InceptionV3" in frozen["predictor"]


def test_batch_must_divide_devices():
    mesh = parallel.make_mesh(jax.devices()[:1])
    assert parallel.check_batch_size(4, mesh, process_count=2) == 2
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        parallel.check_batch_size(3, mesh, process_count=2)


def test_half_written_checkpoint_is_ignored(tmp_path, fake_data):
    config = load_config("nstyle", num_steps=1)
    trainer.train_and_evaluate(config, tmp_path)
    # What a SIGKILL during a save leaves: orbax's temporary directory, never
    # renamed to its final name (its atomic finalize), and a directory without
    # the commit marker.
    ckpt = tmp_path / "checkpoints"
    (ckpt / "7.orbax-checkpoint-tmp-1234" / "model").mkdir(parents=True)
    mngr = checkpoints.manager(tmp_path)
    assert mngr.latest_step() == 1
    mngr.close()
    config.train.num_steps = 2
    state, _ = trainer.train_and_evaluate(config, tmp_path)
    assert int(state["step"]) == 2
