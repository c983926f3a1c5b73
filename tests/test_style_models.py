"""models.StyleModel: both systems answer the same interface with the same meaning.

Checked against properties worked out from the papers, not against the code
itself: norm parameters are affine in the style code (the predictor's heads
are 1x1 convolutions of the bottleneck, Ghiasi et al. 2017 §3; N-style
parameters are weighted sums of table rows, Dumoulin et al. 2017 §2), a
one-hot weight vector selects one style exactly, and a model's parts add up to
all of its parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from arbitrary_style import models

from conftest import load_config, synthetic_photo

KINDS = {"arbitrary": "demo", "nstyle": "nstyle"}


def model_and_conditioning(kind: str):
    config = load_config(KINDS[kind])
    model = models.build_model(config.model, rngs=nnx.Rngs(0))
    if kind == "arbitrary":
        conditioning = jnp.stack([synthetic_photo(64, 64, seed) for seed in (1, 2)])
    else:
        conditioning = jnp.array([0, 2], jnp.int32)
    return config, model, conditioning


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_call_is_transformer_of_norm_params(kind):
    config, model, conditioning = model_and_conditioning(kind)
    assert isinstance(model, models.StyleModel)
    assert models.conditioning_key(config.model) == model.conditioning_key
    content = jnp.stack([synthetic_photo(40, 48, seed) for seed in (3, 4)])
    expected = model.transformer(content, model.norm_params(conditioning))
    np.testing.assert_array_equal(model(content, conditioning), expected)
    batch = {"content": content, model.conditioning_key: conditioning, "unused": None}
    np.testing.assert_array_equal(model.stylize_batch(batch), expected)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_norm_params_are_affine_in_the_style_code(kind):
    _, model, conditioning = model_and_conditioning(kind)
    codes = model.style_code(conditioning)
    assert codes.shape == (2, model.style_code_size)
    a, b = model.norm_params_from_code(codes[:1]), model.norm_params_from_code(codes[1:])
    mixed = model.norm_params_from_code(0.3 * codes[:1] + 0.7 * codes[1:])
    expected = jax.tree.map(lambda x, y: 0.3 * x + 0.7 * y, a, b)
    for got, want in zip(jax.tree.leaves(mixed), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    channels = dict(model.transformer.conditional_layers)
    assert set(mixed) == set(channels)
    for name, (beta, gamma) in mixed.items():
        assert beta.shape == gamma.shape == (1, channels[name])


def test_nstyle_ids_select_one_table_row_exactly():
    _, model, _ = model_and_conditioning("nstyle")
    tables = model.style_tables
    name = tables.conditional_layers[0][0]
    rows = models.layers.get_module(tables, name)
    rows.beta[...] = jnp.arange(rows.beta.shape[0], dtype=jnp.float32)[:, None] + 0.5
    ids = jnp.array([2, 0], jnp.int32)
    from_ids = model.norm_params(ids)
    from_weights = model.norm_params(jax.nn.one_hot(ids, model.num_styles))
    for got, want in zip(jax.tree.leaves(from_ids), jax.tree.leaves(from_weights), strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(from_ids[name][0][:, 0], [2.5, 0.5])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_parts_add_up_to_the_model(kind):
    _, model, _ = model_and_conditioning(kind)
    parts = model.parts()
    assert len({part.key for part in parts}) == len(parts)
    assert sum(part.count for part in parts) == models.count_params(model)


def test_frozen_trunk_is_left_out_of_the_trainable_parameters():
    config, model, _ = model_and_conditioning("arbitrary")
    config.train.freeze_predictor_trunk = True
    _, trainable, frozen = nnx.split(model, model.trainable_filter(config.train), ...)
    trunk = model.trunk_attribute
    assert trunk not in trainable["predictor"] and trunk in frozen["predictor"]
    assert "transformer" in trainable
    _, nstyle, _ = model_and_conditioning("nstyle")
    assert nstyle.trunk_attribute is None
