"""Shape buckets (inference/buckets.py, ``StyleTransferNetwork(region=...)``).

The claim to test: an image padded into a larger bucket gives the output of
the network on the image alone, to float rounding, for both model kinds and
both kernel families, and images of several sizes then share one program.
The reference is the unpadded network (``region=None``), which the reference
oracle tests compare with Magenta's own graph.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from arbitrary_style import weights
from arbitrary_style.inference import buckets
from arbitrary_style.inference.stylizer import Stylizer
from arbitrary_style.models import NStyleModel, cpu_conv, layers
from arbitrary_style.models.transformer import StyleTransferNetwork

from conftest import synthetic_photo


def _norm_params(network, seed=0):
    rng = np.random.default_rng(seed)
    return {
        name: (
            jnp.asarray(rng.normal(0, 0.5, (1, c)), jnp.float32),
            jnp.asarray(1 + 0.3 * rng.normal(size=(1, c)), jnp.float32),
        )
        for name, c in network.conditional_layers
    }


def test_reflect_beyond_is_reflect_padding():
    x = np.random.default_rng(0).normal(size=(1, 9, 11, 2)).astype(np.float32)
    array = np.full((1, 16, 20, 2), 99.0, np.float32)
    array[:, :9, :11] = x
    got = np.asarray(layers.reflect_beyond(jnp.asarray(array), jnp.array([9, 11]), 4))
    expected = np.pad(x, ((0, 0), (0, 4), (0, 4), (0, 0)), mode="reflect")
    np.testing.assert_array_equal(got[:, :13, :15], expected)
    assert (got[:, 13:] == 99).all() and (got[:, :, 15:] == 99).all()  # further out: untouched


def test_region_moments_are_the_regions_own():
    x = np.random.default_rng(1).normal(size=(2, 12, 16, 3)).astype(np.float32)
    mean, var = layers.instance_norm_moments(jnp.asarray(x), jnp.array([8, 12]))
    np.testing.assert_allclose(mean, x[:, :8, :12].mean(axis=(1, 2), keepdims=True), atol=1e-6)
    np.testing.assert_allclose(var, x[:, :8, :12].var(axis=(1, 2), keepdims=True), atol=1e-6)


@pytest.mark.parametrize("conditional_contract", [False, True], ids=["arbitrary", "n-style"])
@pytest.mark.parametrize("mode", ["xla", "auto"])
def test_padded_network_equals_unpadded(conditional_contract, mode):
    network = StyleTransferNetwork(0.25, conditional_contract=conditional_contract, rngs=nnx.Rngs(0))
    params = _norm_params(network)
    image = synthetic_photo(36, 52, 3)[None]
    with cpu_conv.kernels(mode):
        alone = network(jnp.asarray(image), params)
    stylize_in = jax.jit(
        lambda array, region: _with_kernels(mode, lambda: network(array, params, region=region))
    )
    for bucket in [(40, 56), (68, 68), (52, 100)]:
        array = np.full((1, *bucket, 3), 0.5, np.float32)
        array[:, :36, :52] = image
        out = stylize_in(jnp.asarray(array), jnp.array([36, 52]))
        # Float rounding only (the unpadded network itself differs by 6e-5
        # between the two kernel families: random N(0, 0.01) weights make the
        # instance norms amplify rounding); a pixel of wrong padding changes
        # the output by 1e-1 or more.
        np.testing.assert_allclose(out[:, :36, :52], alone, atol=1e-4)


def _with_kernels(mode, compute):
    with cpu_conv.kernels(mode):
        return compute()


def test_stylizer_folder_of_sizes_shares_programs_and_matches_exact_shapes():
    lite = Stylizer.from_pretrained("magenta-lite")
    exact = Stylizer(weights.load_pretrained("magenta-lite"), buckets=False, cpu_conv_kernels="xla")
    style = synthetic_photo(64, 64, 7)
    sizes = [(60, 80), (64, 72), (56, 84), (61, 79)]
    contents = [synthetic_photo(h, w, seed) for seed, (h, w) in enumerate(sizes)]
    # One program for the lot: cheap to compile on an accelerator anyway, and
    # on a CPU forced by making every compile cost more than any padding.
    lite._program_costs = {"xla": buckets.ProgramCost(100.0, 0.0, 1.0, 0.0, 1.0)}
    lite.plan(sizes)
    before = lite.traces["transfer"]
    for content in contents:
        out = lite.stylize(content, style)
        np.testing.assert_allclose(out, exact.stylize(content, style), atol=1e-5)
    assert lite.traces["transfer"] == before + 1
    assert len({lite._programs[size] for size in [(60, 80), (64, 72), (56, 84), (64, 80)]}) == 1


def _lite_or_n_style(kind, **options):
    if kind == "arbitrary":
        return Stylizer(weights.load_pretrained("magenta-lite"), **options)
    return Stylizer(NStyleModel(2, alpha=0.25, rngs=nnx.Rngs(0)), **options)


@pytest.mark.parametrize("kind", ["arbitrary", "n-style"])
@pytest.mark.parametrize("mode", ["xla", "auto"])
def test_portrait_images_run_transposed_in_landscape_programs(kind, mode):
    """A portrait image through the transposed kernels, transposed back,
    equals the network on it as it is; it shares the landscape program."""
    turning = _lite_or_n_style(kind, cpu_conv_kernels=mode)
    upright = _lite_or_n_style(kind, cpu_conv_kernels=mode, buckets=False)
    style = synthetic_photo(64, 64, 7) if kind == "arbitrary" else 1
    portrait, landscape = synthetic_photo(84, 60, 1), synthetic_photo(60, 84, 2)
    turning.plan([portrait.shape[:2], landscape.shape[:2]])
    assert turning._programs[(84, 60)].transposed and turning._programs[(84, 60)].shape == (60, 84)
    before = turning.traces["transfer"]
    for content in (portrait, landscape):
        # As for buckets: float rounding, against 1e-1 for one pixel out of place.
        expected = upright.stylize(content, style)
        np.testing.assert_allclose(turning.stylize(content, style), expected, atol=1e-4)
    assert turning.traces["transfer"] == before + 1
    assert not upright._programs[(84, 60)].transposed


def test_plan_files_portrait_sizes_as_landscape():
    sizes = [(640, 428), (480, 640), (376, 500), (800, 600), (600, 800)]
    dear_compile = {"xla": buckets.ProgramCost(100.0, 0.0, 1.0, 0.0, 1.0)}
    upright = buckets.plan(sizes, dear_compile)
    turned = buckets.plan(sizes, dear_compile, transpose=True)
    assert {p.shape for p in upright.values()} == {(836, 836)}
    assert {p.shape for p in turned.values()} == {(644, 836)}  # 26 % fewer pixels to run
    assert [size for size, p in turned.items() if p.transposed] == [(640, 428), (800, 600)]


def test_plan_merges_only_when_it_saves_time():
    sizes = [(376, 500), (428, 640), (480, 640)] * 4
    cheap_compile = {"xla": buckets.ProgramCost(0.01, 0.0, 1.0, 0.0, 1.0)}
    dear_compile = {"xla": buckets.ProgramCost(100.0, 0.0, 1.0, 0.0, 1.0)}
    separate = buckets.plan(sizes, cheap_compile)
    assert all(not p.bucketed and p.shape == size for size, p in separate.items())
    merged = buckets.plan(sizes, dear_compile)
    assert len(set(merged.values())) == 1
    program = merged[(376, 500)]
    assert program.bucketed and program.shape == (512 + 4, 640 + 4)  # ladder sides + margin
    # The bucket never exceeds max_pixels: those sizes stay apart.
    assert len(set(buckets.plan(sizes, dear_compile, max_pixels=300_000).values())) > 1


def test_plan_picks_kernels_by_image_count():
    costs = {
        "xla": buckets.ProgramCost(1.0, 0.0, 1.0, 0.0, 1.0),  # cheap to compile, slow to run
        "auto": buckets.ProgramCost(5.0, 0.0, 0.5, 0.0, 1.0),
    }
    assert buckets.plan([(400, 500)], costs)[(400, 500)].kernels == "xla"
    assert buckets.plan([(400, 500)] * 100, costs)[(400, 500)].kernels == "auto"
