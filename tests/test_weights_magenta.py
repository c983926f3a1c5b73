"""Magenta-named TF1 checkpoint -> ArbitraryStyleModel, checked with independent numpy.

The checkpoint is written here with TensorFlow (graph mode, tf.compat.v1.Saver),
reference variable names (docs/reference-model.md §7) and random values, plus the
extras a real training checkpoint holds (VGG, Adam slots, global_step). Every
check below recomputes a layer in numpy from the values written, so a
transposed kernel or a swapped beta/gamma/moving statistic fails.
Small widths (alpha 0.25, Inception depth 0.25) keep it fast; the names are
the same at every width.
"""

from __future__ import annotations

import functools
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from arbitrary_style import Stylizer
from arbitrary_style.models import ArbitraryStyleModel
from arbitrary_style.models.layers import conditional_instance_norm
from arbitrary_style.weights import (
    WeightsFormatError,
    WeightsMismatchError,
    WeightSource,
    load_into,
    load_magenta_checkpoint,
)
from arbitrary_style.weights.core import module_variables
from arbitrary_style.weights.tf_checkpoint import MAGENTA_TABLE

ALPHA, DEPTH = 0.25, 0.25
EXTRAS = {
    "vgg_16/conv1/conv1_1/weights": (3, 3, 3, 64),
    "vgg_16/conv1/conv1_1/biases": (64,),
    "global_step": (),
    "transformer/contract/conv1/weights/Adam": (9, 9, 3, 8),
    "transformer/contract/conv1/weights/Adam_1": (9, 9, 3, 8),
    "beta1_power": (),
}


@functools.lru_cache
def reference_names_and_shapes() -> dict[str, tuple[int, ...]]:
    """Magenta's names for a model of these widths: transformer/... and the predictor's own."""
    model = nnx.eval_shape(
        lambda: ArbitraryStyleModel(alpha=ALPHA, depth_multiplier=DEPTH, rngs=nnx.Rngs(0))
    )
    names = {}
    for name, variable in module_variables(model).items():
        name = name.removeprefix("predictor/")
        names[name] = tuple(variable.get_value().shape)
    return names


def random_values(shapes, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = {}
    for name, shape in shapes.items():
        if name.endswith("moving_variance"):
            values[name] = rng.uniform(0.5, 2.0, shape)
        elif name.endswith("global_step"):
            values[name] = np.array(1234, np.int64)
            continue
        else:
            values[name] = rng.normal(0.0, 0.2, shape)
        values[name] = values[name].astype(np.float32)
    return values


def write_tf1_checkpoint(prefix, values) -> None:
    # Deferred: TensorFlow takes about 10 s to import, and this file's tests
    # that write no TF checkpoint run without it; its GPUs are hidden at once.
    import tensorflow as tf  # noqa: PLC0415

    tf.config.set_visible_devices([], "GPU")
    graph = tf.Graph()
    with graph.as_default():
        variables = {name: tf.compat.v1.Variable(value, name=name) for name, value in values.items()}
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(prefix), write_meta_graph=False)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    shapes = reference_names_and_shapes() | EXTRAS
    values = random_values(shapes)
    prefix = tmp_path_factory.mktemp("magenta") / "model.ckpt"
    write_tf1_checkpoint(prefix, values)
    return prefix, values


@pytest.fixture(scope="module")
def loaded(checkpoint):
    prefix, _ = checkpoint
    return load_magenta_checkpoint(prefix)


def np_conv(x, w, stride=1):
    """VALID convolution of [H, W, C] with an HWIO kernel, float64, by shifted sums."""
    kh, kw = w.shape[:2]
    oh, ow = (x.shape[0] - kh) // stride + 1, (x.shape[1] - kw) // stride + 1
    out = np.zeros((oh, ow, w.shape[3]))
    for i in range(kh):
        for j in range(kw):
            patch = x[i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride]
            out += patch.astype(np.float64) @ w[i, j].astype(np.float64)
    return out


def np_reflect_conv(x, w, stride=1):
    k = w.shape[0] // 2
    return np_conv(np.pad(x, ((k, k), (k, k), (0, 0)), mode="reflect"), w, stride)


def np_instance_norm(y, beta, gamma, eps=1e-5):
    mean, var = y.mean((0, 1)), y.var((0, 1))
    return gamma * (y - mean) / np.sqrt(var + eps) + beta


def test_reference_names_are_magentas():
    names = reference_names_and_shapes()
    for name in (
        "transformer/contract/conv1/weights",
        "transformer/contract/conv1/BatchNorm/beta",
        "transformer/contract/conv3/BatchNorm/moving_mean",
        "transformer/contract/conv3/BatchNorm/moving_variance",
        "transformer/residual/residual5/conv2/weights",
        "transformer/expand/conv3/conv/weights",
        "Conv/weights",
        "Conv/biases",
        "style_params/transformer/residual/residual1/conv1/StyleNorm/Conv/weights",
        "style_params/transformer/expand/conv3/conv/StyleNorm/Conv_1/biases",
        "InceptionV3/Conv2d_1a_3x3/BatchNorm/moving_variance",
        "InceptionV3/Mixed_5c/Branch_1/Conv_1_0c_5x5/weights",
        "InceptionV3/Mixed_5c/Branch_1/Conv2d_0b_1x1/weights",
        "InceptionV3/Mixed_6a/Branch_1/Conv2d_1a_1x1/weights",
        "InceptionV3/Mixed_6e/Branch_3/Conv2d_0b_1x1/BatchNorm/beta",
    ):
        assert name in names, name
    # Slim batch norm without scale: no gamma anywhere in the arbitrary model.
    assert not [n for n in names if n.endswith("/gamma")]
    assert names["transformer/contract/conv1/weights"] == (9, 9, 3, 8)  # HWIO


def test_everything_lands_and_extras_are_skipped(checkpoint, loaded):
    _, values = checkpoint
    model, report = loaded
    assert set(report.skipped) == set(EXTRAS)
    assert report.loaded == len(values) - len(EXTRAS)
    for name, variable in module_variables(model).items():
        np.testing.assert_array_equal(
            np.asarray(variable.get_value()), values[name.removeprefix("predictor/")], err_msg=name
        )


def test_contract_conv_and_batch_norm(checkpoint, loaded):
    _, v = checkpoint
    model, _ = loaded
    x = np.random.default_rng(1).uniform(size=(20, 24, 3)).astype(np.float32)
    scope = "transformer/contract/conv1"
    y = np_reflect_conv(x, v[f"{scope}/weights"])
    expected = (y - v[f"{scope}/BatchNorm/moving_mean"]) / np.sqrt(
        v[f"{scope}/BatchNorm/moving_variance"] + 1e-3
    ) + v[f"{scope}/BatchNorm/beta"]
    got = model.transformer.contract.conv1(jnp.asarray(x)[None])[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def np_heads(v, embedding, layer):
    scope = f"style_params/transformer/{layer}/StyleNorm"
    beta = embedding @ v[f"{scope}/Conv/weights"][0, 0] + v[f"{scope}/Conv/biases"]
    gamma = embedding @ v[f"{scope}/Conv_1/weights"][0, 0] + v[f"{scope}/Conv_1/biases"]
    return beta, gamma


def test_heads_give_beta_from_conv_and_gamma_from_conv_1(checkpoint, loaded):
    _, v = checkpoint
    model, _ = loaded
    s = np.random.default_rng(2).normal(size=(1, 100)).astype(np.float32)
    params = model.predictor.norm_params(jnp.asarray(s))
    assert len(params) == 13
    for layer, (beta, gamma) in params.items():
        np_beta, np_gamma = np_heads(v, s[0], layer)
        np.testing.assert_allclose(beta[0], np_beta, rtol=1e-4, atol=1e-4, err_msg=layer)
        np.testing.assert_allclose(gamma[0], np_gamma, rtol=1e-4, atol=1e-4, err_msg=layer)


def test_residual_conv_with_conditional_norm(checkpoint, loaded):
    _, v = checkpoint
    model, _ = loaded
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 7, 32)).astype(np.float32)
    s = rng.normal(size=(1, 100)).astype(np.float32)
    layer = "residual/residual3/conv1"
    beta, gamma = np_heads(v, s[0], layer)
    expected = np_instance_norm(np_reflect_conv(x, v[f"transformer/{layer}/weights"]), beta, gamma)
    conv = model.transformer.residual.residual3.conv1
    b, g = model.predictor.norm_params(jnp.asarray(s))[layer]
    got = conditional_instance_norm(conv.convolve(jnp.asarray(x)[None]), b, g)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)


def test_expand_conv(checkpoint, loaded):
    _, v = checkpoint
    model, _ = loaded
    x = np.random.default_rng(4).normal(size=(5, 6, 32)).astype(np.float32)
    up = x.repeat(2, axis=0).repeat(2, axis=1)
    expected = np_reflect_conv(up, v["transformer/expand/conv1/conv/weights"])
    got = model.transformer.expand.conv1.conv.convolve(jnp.asarray(up)[None])[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_bottleneck_and_inception_stem(checkpoint, loaded):
    _, v = checkpoint
    model, _ = loaded
    rng = np.random.default_rng(5)
    pooled = rng.normal(size=(1, 1, 1, 192)).astype(np.float32)  # Mixed_6e at depth 0.25
    expected = pooled[0, 0, 0] @ v["Conv/weights"][0, 0] + v["Conv/biases"]
    bottleneck = model.predictor.bottleneck(jnp.asarray(pooled))[0, 0, 0]
    np.testing.assert_allclose(bottleneck, expected, rtol=1e-4, atol=1e-4)
    x = rng.uniform(size=(15, 17, 3)).astype(np.float32)
    scope = "InceptionV3/Conv2d_1a_3x3"
    y = np_conv(x, v[f"{scope}/weights"], stride=2)
    y = (y - v[f"{scope}/BatchNorm/moving_mean"]) / np.sqrt(v[f"{scope}/BatchNorm/moving_variance"] + 1e-3)
    expected = np.clip(y + v[f"{scope}/BatchNorm/beta"], 0, 6)  # ReLU6
    got = model.predictor.InceptionV3.Conv2d_1a_3x3(jnp.asarray(x)[None])[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_stylizer_from_magenta_checkpoint(checkpoint):
    prefix, _ = checkpoint
    stylizer = Stylizer.from_magenta_checkpoint(prefix)
    rng = np.random.default_rng(6)
    style = rng.uniform(size=(75, 80, 3))
    assert stylizer.style_embedding(style).shape == (100,)
    out = stylizer.stylize(rng.uniform(size=(30, 42, 3)), style)
    assert out.shape == (30, 42, 3) and out.dtype == np.float32
    assert np.all((out >= 0) & (out <= 1))


def test_truncated_checkpoint_fails_clearly(checkpoint, tmp_path):
    prefix, _ = checkpoint
    for path in prefix.parent.glob(prefix.name + ".*"):
        shutil.copy(path, tmp_path / path.name)
    (data,) = tmp_path.glob("model.ckpt.data-*")
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])
    with pytest.raises(WeightsFormatError, match="truncated or damaged|not a readable"):
        load_magenta_checkpoint(tmp_path / "model.ckpt")


def test_not_a_checkpoint_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="no TensorFlow checkpoint"):
        load_magenta_checkpoint(tmp_path / "nothing.ckpt")
    (tmp_path / "junk.ckpt.index").write_bytes(b"not a checkpoint index" * 10)
    with pytest.raises(WeightsFormatError, match="not a readable TensorFlow checkpoint"):
        load_magenta_checkpoint(tmp_path / "junk.ckpt")


def test_mismatch_lists_missing_unexpected_and_misshaped(checkpoint, loaded):
    _, values = checkpoint
    model, _ = loaded
    bad = dict(values)
    del bad["transformer/residual/residual2/conv2/weights"]
    bad["transformer/residual/residual9/conv1/weights"] = np.zeros((3, 3, 32, 32), np.float32)
    bad["Conv/weights"] = bad["Conv/weights"].transpose(0, 1, 3, 2)
    before = np.asarray(model.predictor.bottleneck.weights.get_value())
    with pytest.raises(WeightsMismatchError) as error:
        load_into(model, WeightSource.from_arrays(bad, "edited checkpoint"), MAGENTA_TABLE)
    message = str(error.value)
    assert "missing from the file (1)" in message
    assert "transformer/residual/residual2/conv2/weights" in message
    assert "unexpected in the file (1)" in message and "residual9" in message
    assert "mis-shaped (1)" in message and "Conv/weights -> predictor/Conv/weights" in message
    # Nothing was assigned.
    np.testing.assert_array_equal(model.predictor.bottleneck.weights.get_value(), before)
