"""Evaluation scores each pair with the training loss.

``evaluator.evaluate`` runs the stylized and content images through the loss
network as one concatenated batch, several pairs per batch (the last one
padded), and applies ``losses.loss_breakdown`` pair by pair; training calls
``losses.style_transfer_losses`` (three loss-network calls). Both must give
the same terms for a pair, so that evaluation numbers are the training loss's.
Here every term of every pair in the CSV files is compared with
``style_transfer_losses`` on that one pair (a batch of 1), with the same
model, the same random VGG and the evaluation's weights (``config.eval``).
"""

from __future__ import annotations

import csv

import jax
import numpy as np
import pytest
from flax import nnx

from arbitrary_style import losses, models
from arbitrary_style.evaluation import evaluator
from arbitrary_style.evaluation import pairs as eval_pairs

from conftest import load_config

SETS = ("observed", "unobserved")


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    config = load_config("demo", "smoke")
    model = models.build_model(config.model, rngs=nnx.Rngs(config.seed))
    vgg = evaluator.build_loss_network(config)  # smoke: a random VGG-19
    data = eval_pairs.EvalData(config, SETS)
    out = tmp_path_factory.mktemp("eval")
    evaluator.evaluate(config, model, vgg, step=0, out_dir=out, data=data, progress=False)
    rows = {which: list(csv.DictReader((out / f"{which}.csv").open())) for which in SETS}
    return config, model, vgg, data, rows


def test_eval_uses_the_eval_weights():
    config = load_config("demo", "smoke")
    weights = losses.LossWeights.from_config(config.eval)
    assert evaluator.eval_loss_weights(config) == weights
    # Magenta's evaluation script weighs style 1e-3 per layer (training: 0.5e-3).
    assert weights.style == {f"conv{i}": 1e-3 for i in (1, 2, 3, 4)}


def test_eval_terms_equal_the_training_loss_per_pair(scored):
    config, model, vgg, data, rows = scored
    weights = losses.LossWeights.from_config(config.eval)
    graphdef, state = nnx.split(model)
    vgg_graphdef, vgg_state = nnx.split(vgg)

    @jax.jit
    def training_terms(state, vgg_state, content, style):
        model = nnx.merge(graphdef, state)
        stylized = model(content, style, train=False)  # batch norms on their moving averages
        return losses.style_transfer_losses(
            nnx.merge(vgg_graphdef, vgg_state),
            content_images=content,
            style_images=style,
            stylized_images=stylized,
            weights=weights,
        )

    for which in SETS:
        assert len(rows[which]) == len(data.pairs[which]) == 5
        for row, (c, s) in zip(rows[which], data.pairs[which], strict=True):
            assert row["content_id"] == data.content_ids[c]
            assert row["style_id"] == data.style_ids[which][s]
            expected = training_terms(
                state, vgg_state, data.contents[c][None], data.styles[which][s][None]
            )
            got = {k: float(v) for k, v in row.items() if k not in ("pair", "content_id", "style_id")}
            assert set(got) == set(expected)
            for key, value in expected.items():
                np.testing.assert_allclose(
                    got[key], float(value), rtol=1e-5, err_msg=f"{which} pair {row['pair']}: {key}"
                )
