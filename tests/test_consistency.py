"""The consistency term (losses.perturb, affine_warp, consistency_loss) and its place in training.

The warp is checked against numpy slicing, the loss against maps whose
behaviour under a warp is known (an affine map of the pixel values commutes
with bilinear resampling; one tied to the pixel grid does not; noise alone
gives its variance), and the train step of both model kinds against its own
run without the term.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from arbitrary_style import losses
from arbitrary_style.training import step as step_lib
from arbitrary_style.training import trainer

from conftest import load_config, synthetic_photo


def photos(batch=2, h=24, w=32):
    return jnp.asarray(np.stack([synthetic_photo(h, w, seed=k) for k in range(batch)]))


def test_integer_shift_is_numpy_slicing():
    x = photos()
    matrix = jnp.tile(jnp.eye(2)[None], (2, 1, 1))
    offset = jnp.asarray([[1.0, 2.0], [-3.0, 0.0]])
    warped, valid = losses.affine_warp(x, matrix, offset)
    x = np.asarray(x)
    np.testing.assert_allclose(warped[0, :-1, :-2], x[0, 1:, 2:], atol=1e-6)
    np.testing.assert_allclose(warped[1, 3:], x[1, :-3], atol=1e-6)
    expected = np.zeros((24, 32), bool)
    expected[:-1, :-2] = True
    np.testing.assert_array_equal(np.asarray(valid[0, ..., 0]) > 0, expected)
    assert float(valid[1, :3].max()) == 0.0 and float(valid[1, 3:].min()) == 1.0


def consistency_of(network, perturbation, seed=0):
    x = photos()
    perturbed, warp = losses.perturb(jax.random.key(seed), x, perturbation)
    warped_output, valid = warp(network(x))
    return float(losses.consistency_loss(network(perturbed), warped_output, valid))


def test_zero_for_an_equivariant_map_positive_otherwise():
    motion = losses.Perturbation(max_shift=2.0, max_angle=1.0, noise=0.0)
    # Bilinear resampling is linear with weights summing to 1: it commutes
    # with an affine map of the values.
    assert consistency_of(lambda x: 0.7 * x + 0.1, motion) < 1e-10
    # A pattern fixed to the pixel grid does not move with the content.
    rows = jnp.arange(24, dtype=jnp.float32)[None, :, None, None]
    gridded = consistency_of(lambda x: x + 0.2 * jnp.sin(2.0 * rows), motion)
    assert gridded > 1e-3


def test_noise_alone_gives_its_variance():
    still = losses.Perturbation(max_shift=0.0, max_angle=0.0, noise=0.05)
    value = consistency_of(lambda x: x, still)
    assert value == pytest.approx(0.05**2, rel=0.1)


def test_perturbation_is_a_function_of_the_key():
    x = photos()
    perturbation = losses.Perturbation()
    a, _ = losses.perturb(jax.random.key(3), x, perturbation)
    b, _ = losses.perturb(jax.random.key(3), x, perturbation)
    c, _ = losses.perturb(jax.random.key(4), x, perturbation)
    np.testing.assert_array_equal(a, b)
    assert float(jnp.abs(a - c).mean()) > 1e-3


def test_default_configs_leave_the_term_out():
    for name in ("demo", "nstyle", "pbn_dtd", "nstyle_from_scratch"):
        config = load_config(name, arg=None)
        assert config.loss.consistency.weight == 0.0
        assert "consistency" not in step_lib.loss_term_names(config)


@pytest.mark.parametrize("name", ["nstyle", "demo"])
def test_training_with_the_term(name, tmp_path, fake_data):
    config = load_config(name, num_steps=1, log_every=1)
    config.loss.consistency.weight = 1e3
    state, metrics = trainer.train_and_evaluate(config, tmp_path)
    assert int(state["step"]) == 1
    assert metrics["consistency"] > 0
    assert metrics["weighted/consistency"] == pytest.approx(1e3 * metrics["consistency"], rel=1e-5)
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    others = record["weighted/content"] + record["weighted/style"] + record["weighted/total_variation"]
    assert record["total"] == pytest.approx(others + record["weighted/consistency"], rel=1e-5)


def test_experiment_table_has_every_row():
    # experiments/consistency/compare.py: the table of its README (the runs take minutes).
    from experiments.consistency import compare  # noqa: PLC0415  (imports the training stack)

    figures = dict.fromkeys(
        ("warping_error", "static_change", "static_change_never_covered", "content_loss", "style_loss",
         "content_score"),
        1.0,
    )
    means = {"published lite model": figures, "fine-tuned, weight 0": {**figures, "warping_error": 0.5}}
    record = {"step": 3, "total": 2.0, "weighted/content": 1.0, "weighted/style": 1.0, "consistency": 0.1}
    table = compare.format_table(means, {"fine-tuned, weight 0": record})
    assert "| fine-tuned, weight 0 | 0.5 (0.50x) |" in table
    assert table.splitlines()[-1].endswith("| 0.1 |")
    assert compare.train_config(7, 2.0).loss.consistency.weight == 2.0
