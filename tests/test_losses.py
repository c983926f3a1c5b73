"""Losses equal independent numpy formulas (docs/reference-model.md §3)."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from arbitrary_style import losses, models
from arbitrary_style.config import base_config


def np_gram(f):
    b, h, w, c = f.shape
    f = f.reshape(b, h * w, c).astype(np.float64)
    return np.einsum("bnc,bnd->bcd", f, f) / (h * w)


def test_gram_matrix_normalised_by_hw_only():
    f = np.random.default_rng(0).normal(size=(2, 3, 5, 4)).astype(np.float32)
    np.testing.assert_allclose(losses.gram_matrix(jnp.asarray(f)), np_gram(f), rtol=1e-5)


def test_style_loss_across_sizes():
    rng = np.random.default_rng(1)
    style = rng.normal(size=(2, 9, 7, 4)).astype(np.float32)
    stylized = rng.normal(size=(2, 4, 6, 4)).astype(np.float32)
    expected = np.mean((np_gram(style) - np_gram(stylized)) ** 2)
    got = losses.style_loss(losses.gram_matrix(jnp.asarray(style)), jnp.asarray(stylized))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_total_variation_equals_numpy():
    x = np.random.default_rng(2).uniform(size=(3, 6, 5, 3))
    b, h, w, c = x.shape
    dy = np.sum((x[:, 1:] - x[:, :-1]) ** 2) / 2 / ((h - 1) * w * c)
    dx = np.sum((x[:, :, 1:] - x[:, :, :-1]) ** 2) / 2 / (h * (w - 1) * c)
    np.testing.assert_allclose(losses.total_variation(jnp.asarray(x)), (dy + dx) / b, rtol=1e-5)


def test_content_loss_is_feature_mse():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(2, 2, 4, 4, 8))
    np.testing.assert_allclose(
        losses.content_loss(jnp.asarray(a), jnp.asarray(b)), np.mean((a - b) ** 2), rtol=1e-5
    )


def test_breakdown_weights_and_total():
    config = base_config()
    weights = losses.LossWeights.from_config(config.loss)
    assert weights.style == {f"conv{i}": 0.5e-3 for i in (1, 2, 3, 4)}
    assert weights.content == {"conv3": 1.0} and weights.total_variation == 1e4
    vgg = models.VGG(16, last_end_point="conv4", rngs=nnx.Rngs(0))
    rng = np.random.default_rng(4)
    content, stylized = (jnp.asarray(rng.uniform(size=(2, 16, 16, 3)), jnp.float32) for _ in range(2))
    style = jnp.asarray(rng.uniform(size=(2, 24, 24, 3)), jnp.float32)
    terms = losses.style_transfer_losses(
        vgg, content_images=content, style_images=style, stylized_images=stylized, weights=weights
    )
    terms = {k: float(v) for k, v in terms.items()}
    for layer in ("conv1", "conv2", "conv3", "conv4"):
        assert terms[f"weighted/style/{layer}"] == pytest.approx(0.5e-3 * terms[f"style/{layer}"], rel=1e-6)
    assert terms["weighted/content/conv3"] == pytest.approx(terms["content/conv3"], rel=1e-6)
    assert terms["weighted/total_variation"] == pytest.approx(1e4 * terms["total_variation"], rel=1e-6)
    expected_total = (
        terms["weighted/content"] + terms["weighted/style"] + terms["weighted/total_variation"]
    )
    assert terms["total"] == pytest.approx(expected_total, rel=1e-6)
    # Every unweighted term from the loss network's features, in NumPy: the
    # right images reach the right terms (content vs stylized at conv3, the
    # style image's Gram matrices against the stylized image's, TV of the
    # stylized image) at the right layers.
    feats = {name: {k: np.asarray(v, np.float64) for k, v in vgg(x, weights.end_points).items()}
             for name, x in (("content", content), ("style", style), ("stylized", stylized))}
    np.testing.assert_allclose(
        terms["content/conv3"],
        np.mean((feats["content"]["conv3"] - feats["stylized"]["conv3"]) ** 2), rtol=1e-4,
    )
    for layer in ("conv1", "conv2", "conv3", "conv4"):
        expected = np.mean((np_gram(feats["style"][layer]) - np_gram(feats["stylized"][layer])) ** 2)
        np.testing.assert_allclose(terms[f"style/{layer}"], expected, rtol=1e-4, err_msg=layer)
    x = np.asarray(stylized, np.float64)
    tv = (np.sum((x[:, 1:] - x[:, :-1]) ** 2) / 2 / (15 * 16 * 3)
          + np.sum((x[:, :, 1:] - x[:, :, :-1]) ** 2) / 2 / (16 * 15 * 3)) / 2
    np.testing.assert_allclose(terms["total_variation"], tv, rtol=1e-5)
    assert "content/conv3" in losses.format_breakdown(terms)
