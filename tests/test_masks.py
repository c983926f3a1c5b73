"""Styles by region and strength maps (Stylizer.stylize(mask=, strength_map=), inference/regions.py).

The references: the single-style output (a mask of ones, a white strength
map), each style's own output (far from a hard boundary), two masks against
the label image they come from, the unpadded network (a mask in a bucket),
and numpy (the per-pixel parameters, the mask pyramid).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from arbitrary_style.data import demo
from arbitrary_style.inference import buckets, regions
from arbitrary_style.inference.stylizer import Stylizer
from arbitrary_style.models import NStyleModel, layers

from conftest import synthetic_photo

H, W = 64, 96


@pytest.fixture(scope="module")
def lite():
    return Stylizer.from_pretrained("magenta-lite")


@pytest.fixture(scope="module")
def codes(lite):
    """Two demo styles' embeddings (the predictor runs once per style)."""
    return [lite.style_code(path) for path in demo.style_images("heldout")[:2]]


@pytest.fixture(scope="module")
def nstyle():
    """A random N-style model at alpha 0.25 with 2 distinct styles."""
    model = NStyleModel(2, alpha=0.25, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    keys = iter(jax.random.split(jax.random.key(1), 1000))
    # Distinct rows per style (tables start at beta 0, gamma 1 for every style).
    state = jax.tree.map(lambda x: x + 0.3 * jax.random.normal(next(keys), x.shape), state)
    return Stylizer(nnx.merge(graphdef, state), name="random N-style")


def content():
    return synthetic_photo(H, W)


def halves():
    left = np.zeros((H, W), np.float32)
    left[:, : W // 2] = 1
    return left, 1 - left


def test_per_pixel_parameters_against_numpy():
    rng = np.random.default_rng(0)
    beta, gamma = rng.normal(size=(2, 1, 3, 5)).astype(np.float32)
    mix = rng.uniform(size=(1, 4, 6, 3)).astype(np.float32)
    mixed_beta, mixed_gamma = layers.mixed_norm_params(
        jnp.asarray(beta), jnp.asarray(gamma), jnp.asarray(mix)
    )
    i, j = 2, 5
    np.testing.assert_allclose(mixed_beta[0, i, j], mix[0, i, j] @ beta[0], rtol=1e-5)
    np.testing.assert_allclose(mixed_gamma[0, i, j], mix[0, i, j] @ gamma[0], rtol=1e-5)
    halved = np.asarray(layers.halve_mix(jnp.asarray(mix[:, :3, :5])))  # odd sides: edge repeated
    assert halved.shape == (1, 2, 3, 3)
    np.testing.assert_allclose(halved[0, 0, 0], mix[0, :2, :2].mean(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_allclose(halved[0, 1, 2], mix[0, 2, 4], rtol=1e-6)


@pytest.mark.parametrize("kind", ["arbitrary", "nstyle"])
def test_mask_of_ones_is_the_single_style(kind, lite, codes, nstyle):
    stylizer, style = (lite, codes[0]) if kind == "arbitrary" else (nstyle, 1)
    single = stylizer.stylize(content(), style)
    masked = stylizer.stylize(content(), [style], mask=[np.ones((10, 7))])
    np.testing.assert_allclose(masked, single, atol=1e-6)


@pytest.mark.parametrize("kind", ["arbitrary", "nstyle"])
def test_hard_halves_match_each_style_away_from_the_boundary(kind, lite, codes, nstyle):
    stylizer, styles = (lite, codes) if kind == "arbitrary" else (nstyle, [0, 1])
    left, right = halves()
    both = stylizer.stylize(content(), styles, mask=[left, right], feather=0)
    own = [stylizer.stylize(content(), style) for style in styles]
    far = 16  # pixels from the boundary
    for half, columns in ((0, slice(0, W // 2 - far)), (1, slice(W // 2 + far, W))):
        to_own = np.abs(both[:, columns] - own[half][:, columns]).mean()
        to_other = np.abs(both[:, columns] - own[1 - half][:, columns]).mean()
        # Closer to its own style than to the other, not equal: the
        # instance-norm statistics are the whole image's (both styles' paths),
        # not each style's own, and the receptive field spans ~50 px.
        assert to_own < 0.8 * to_other, (half, to_own, to_other)


def boundary_jump(image):
    """Largest change between neighbouring columns at the middle, over the median elsewhere."""
    steps = np.abs(np.diff(image, axis=1)).mean(axis=(0, 2))
    return steps[W // 2 - 2 : W // 2 + 1].max() / np.median(steps)


def test_feathering_removes_the_seam(lite, codes):
    left, right = halves()
    hard = lite.stylize(content(), codes, mask=[left, right], feather=0)
    soft = lite.stylize(content(), codes, mask=[left, right], feather=6)
    assert boundary_jump(hard) > 2.0
    assert boundary_jump(soft) < 0.6 * boundary_jump(hard)


def test_label_image_is_its_masks(lite, codes):
    left, right = halves()
    labels = (255 * right).astype(np.uint8)  # 0 left (first style), 255 right
    from_labels = lite.stylize(content(), codes, mask=labels, feather=3)
    from_masks = lite.stylize(content(), codes, mask=[left, right], feather=3)
    np.testing.assert_allclose(from_labels, from_masks, atol=1e-6)
    with pytest.raises(ValueError, match="3 distinct values for 2 styles"):
        lite.stylize(content(), codes, mask=np.asarray([[0, 128, 255]], np.uint8))
    with pytest.raises(ValueError, match="3 masks for 2 styles"):
        lite.stylize(content(), codes, mask=[left, right, left])


def test_strength_map_white_and_black(lite, codes):
    white, black = np.ones((8, 8)), np.zeros((8, 8))
    np.testing.assert_allclose(
        lite.stylize(content(), codes[0], strength_map=white), lite.stylize(content(), codes[0]), atol=1e-6
    )
    np.testing.assert_allclose(
        lite.stylize(content(), codes[0], strength_map=black),
        lite.stylize(content(), codes[0], strength=0.0),
        atol=2e-5,
    )
    # The scalar strength scales the map.
    np.testing.assert_allclose(
        lite.stylize(content(), codes[0], strength=0.5, strength_map=white),
        lite.stylize(content(), codes[0], strength=0.5),
        atol=2e-5,
    )


def test_strength_map_needs_a_style_predictor(nstyle):
    with pytest.raises(ValueError, match="style predictor"):
        nstyle.stylize(content(), 0, strength_map=np.ones((4, 4)))


def test_mask_in_a_bucket_and_in_tiles(lite, codes):
    left, right = halves()
    alone = lite.stylize(content(), codes, mask=[left, right])
    # Planned with a larger size, the image is padded into that bucket.
    bucketed = Stylizer.from_pretrained("magenta-lite")
    # Every compile made dearer than any padding (as tests/test_buckets.py).
    bucketed._program_costs = {"xla": buckets.ProgramCost(100.0, 0.0, 1.0, 0.0, 1.0)}
    bucketed.plan([(H, W), (H + 8, W + 16)])
    assert bucketed._program((H, W)).bucketed
    np.testing.assert_allclose(bucketed.stylize(content(), codes, mask=[left, right]), alone, atol=2e-5)
    # Tiles carry the weights as they carry the pixels: they change a
    # masked image as little as they change one style's.
    tiled = lite.stylize(content(), codes, mask=[left, right], tile=48, overlap=24)
    one_style = np.abs(
        lite.stylize(content(), codes[0], tile=48, overlap=24) - lite.stylize(content(), codes[0])
    ).mean()
    assert np.abs(tiled - alone).mean() < 1.5 * one_style + 1e-3


def test_region_weights_sum_to_one():
    a = np.zeros((5, 5))
    a[:, :2] = 1
    weights = regions.region_weights([a, np.zeros((5, 5))], 2, (20, 30), feather=2)
    assert weights.shape == (20, 30, 2)
    np.testing.assert_allclose(weights.sum(axis=-1), 1, rtol=1e-6)
    # Where no mask covers a pixel the styles share it.
    np.testing.assert_allclose(weights[:, -1], 0.5, rtol=1e-6)
