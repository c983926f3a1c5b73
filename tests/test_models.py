"""Networks match docs/reference-model.md §1-§3: sizes, shapes, names, behaviour."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from arbitrary_style import models
from arbitrary_style.models import inception, layers, transformer, vgg


@pytest.fixture(scope="module")
def paper_model():
    """The alpha-1 Inception model as shapes only (nothing allocated)."""
    return nnx.eval_shape(lambda: models.ArbitraryStyleModel(rngs=nnx.Rngs(0)))


def test_paper_parameter_counts(paper_model):
    """docs/reference-model.md §1-§2 counts at alpha 1."""
    assert paper_model.transformer.style_param_size == 2758
    assert len(paper_model.transformer.conditional_layers) == 13
    assert models.count_params(paper_model.transformer) == 1_674_656
    assert paper_model.predictor.head_param_count() == 278_558
    assert models.count_params(paper_model.predictor.bottleneck) == 76_900
    assert models.count_params(paper_model.predictor.trunk) == 8_956_448
    assert models.count_params(paper_model) == 10_986_562


def test_nstyle_numbers_per_style():
    model = nnx.eval_shape(lambda: models.NStyleModel(5, rngs=nnx.Rngs(0)))
    assert model.transformer.style_param_size == 3206
    assert len(model.transformer.conditional_layers) == 16
    assert models.count_params(model.style_tables) == 5 * 3206


def test_lite_transformer_channels():
    """The published lite model: alpha 0.25 gives channels 8/16/32, last layer 3."""
    net = nnx.eval_shape(lambda: models.StyleTransferNetwork(0.25, rngs=nnx.Rngs(0)))
    channels = [c for _, c in net.conditional_layers]
    assert channels == [32] * 10 + [16, 8, 3]
    assert net.contract.conv1.weights.shape == (9, 9, 3, 8)


def test_parameter_paths_are_reference_names(paper_model):
    """Paths map one-to-one onto Magenta's checkpoint names (§7)."""
    t = layers.named_shapes(paper_model.transformer)
    assert t["contract/conv1/weights"] == (9, 9, 3, 32)
    assert t["contract/conv1/BatchNorm/beta"] == (32,)
    assert t["contract/conv3/BatchNorm/moving_variance"] == (128,)
    assert t["residual/residual5/conv2/weights"] == (3, 3, 128, 128)
    assert t["expand/conv1/conv/weights"] == (3, 3, 128, 64)
    assert t["expand/conv3/conv/weights"] == (9, 9, 32, 3)
    assert not any("biases" in name for name in t), "the transfer network has no conv bias"
    p = layers.named_shapes(paper_model.predictor)
    assert p["InceptionV3/Conv2d_1a_3x3/weights"] == (3, 3, 3, 32)
    assert p["InceptionV3/Mixed_5c/Branch_1/Conv_1_0c_5x5/weights"] == (5, 5, 48, 64)
    assert p["InceptionV3/Mixed_5c/Branch_1/Conv2d_0b_1x1/weights"] == (1, 1, 256, 48)
    assert p["InceptionV3/Mixed_6a/Branch_0/Conv2d_1a_1x1/weights"] == (3, 3, 288, 384)
    assert p["InceptionV3/Mixed_6e/Branch_2/Conv2d_0e_1x7/weights"] == (1, 7, 192, 192)
    assert "InceptionV3/Mixed_6e/Branch_2/Conv2d_0e_1x7/BatchNorm/gamma" not in p
    assert p["Conv/weights"] == (1, 1, 768, 100)
    assert p["Conv/biases"] == (100,)
    head = "style_params/transformer/expand/conv3/conv/StyleNorm"
    assert p[f"{head}/Conv/weights"] == (1, 1, 100, 3)
    assert p[f"{head}/Conv_1/biases"] == (3,)
    assert p["style_params/transformer/residual/residual1/conv1/StyleNorm/Conv_1/weights"] == (
        1,
        1,
        100,
        128,
    )


def test_lite_predictor_names():
    pred = nnx.eval_shape(
        lambda: models.StylePredictor(
            models.StyleTransferNetwork(0.25, rngs=nnx.Rngs(0)).conditional_layers,
            trunk="mobilenet_v2",
            rngs=nnx.Rngs(0),
        )
    )
    p = layers.named_shapes(pred)
    assert p["MobilenetV2/Conv_1/weights"] == (1, 1, 320, 1280)
    assert p["MobilenetV2/expanded_conv/depthwise/weights"] == (3, 3, 1, 32)
    assert p["MobilenetV2/expanded_conv_16/project/BatchNorm/gamma"] == (320,)
    assert p["mobilenet_conv/Conv/weights"] == (1, 1, 1280, 100)


def _forward(module, *args, **kwargs):
    graphdef, state = nnx.split(module)

    @jax.jit
    def run(state, *args):
        return nnx.merge(graphdef, state)(*args, **kwargs)

    return run(state, *args)


def test_inception_mixed_6e_shape(paper_model):
    graphdef, state = nnx.split(paper_model.predictor.trunk)
    out = jax.eval_shape(
        lambda s, x: nnx.merge(graphdef, s)(x), state, jax.ShapeDtypeStruct((1, 256, 256, 3), jnp.float32)
    )
    assert out.shape == (1, 14, 14, 768)


@pytest.fixture(scope="module")
def small_model():
    return models.ArbitraryStyleModel(alpha=0.25, depth_multiplier=0.25, rngs=nnx.Rngs(0))


@pytest.mark.parametrize(
    "size, expected",
    [((64, 48), (64, 48)), ((255, 257), (256, 260)), ((33, 17), (36, 20))],
)
def test_transformer_output_size(size, expected):
    net = nnx.eval_shape(lambda: models.StyleTransferNetwork(0.25, rngs=nnx.Rngs(0)))
    graphdef, state = nnx.split(net)
    params = {n: (jnp.zeros((1, c)), jnp.ones((1, c))) for n, c in net.conditional_layers}
    out = jax.eval_shape(
        lambda s, x, p: nnx.merge(graphdef, s)(x, p),
        state,
        jax.ShapeDtypeStruct((1, *size, 3), jnp.float32),
        params,
    )
    assert out.shape == (1, *expected, 3)


def test_output_in_unit_interval_and_styles_differ(small_model):
    rng = np.random.default_rng(0)
    content = jnp.asarray(rng.uniform(size=(1, 32, 32, 3)), jnp.float32)
    content = jnp.concatenate([content, content])
    styles = jnp.asarray(rng.uniform(size=(2, 75, 75, 3)), jnp.float32)
    styles = styles.at[1].set(jnp.linspace(0, 1, 75)[:, None, None] * jnp.ones((75, 75, 3)))
    # Random heads start near zero; scale them up so the two styles matter.
    heads = small_model.predictor.style_params
    nnx.update(heads, jax.tree.map(lambda v: v * 50, nnx.state(heads, nnx.Param)))
    out = np.asarray(_forward(small_model, content, styles))
    assert out.shape == (2, 32, 32, 3)
    assert out.min() > 0 and out.max() < 1
    assert np.abs(out[0] - out[1]).max() > 1e-3


def test_same_avg_pool_excludes_padding():
    ones = jnp.ones((1, 5, 5, 1))
    op = inception.Op("AvgPool_0a_3x3", "avg_pool", kernel=(3, 3))
    np.testing.assert_allclose(inception._pool(op, ones), np.ones((1, 5, 5, 1)), rtol=0, atol=1e-7)


def test_conditional_norm_equals_numpy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 5, 7, 4)).astype(np.float32) * 3 + 1
    beta = rng.normal(size=(2, 4)).astype(np.float32)
    gamma = rng.normal(size=(2, 4)).astype(np.float32)
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = ((x - mean) ** 2).mean(axis=(1, 2), keepdims=True)  # biased
    expected = gamma[:, None, None] * (x - mean) / np.sqrt(var + 1e-5) + beta[:, None, None]
    got = layers.conditional_instance_norm(jnp.asarray(x), jnp.asarray(beta), jnp.asarray(gamma))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_nstyle_blend_is_weighted_sum_of_rows():
    model = models.NStyleModel(3, alpha=0.25, rngs=nnx.Rngs(0))
    tables = model.style_tables
    rows = tables.contract.conv1
    rows.beta[...] = jnp.arange(3 * 8, dtype=jnp.float32).reshape(3, 8)
    one_hot = tables.select(jnp.array([2]))["contract/conv1"][0]
    np.testing.assert_array_equal(one_hot, rows.beta[...][2:3])
    blend = tables.mix(jnp.array([[0.25, 0.0, 0.75]]))["contract/conv1"][0]
    np.testing.assert_allclose(blend[0], 0.25 * rows.beta[...][0] + 0.75 * rows.beta[...][2])
    np.testing.assert_array_equal(tables.contract.conv1.gamma[...][0], np.ones(8))
    with pytest.raises(ValueError, match="3 styles"):
        tables.mix(jnp.ones((1, 4)))


def test_nstyle_any_input_size():
    model = models.NStyleModel(2, alpha=0.25, rngs=nnx.Rngs(0))
    out = _forward(model, jnp.full((1, 20, 28, 3), 0.5), jnp.array([1]))
    assert out.shape == (1, 20, 28, 3)


def test_vgg_end_points_and_pooling():
    net = models.VGG(19, last_end_point="conv4", rngs=nnx.Rngs(0))
    names = layers.named_shapes(net)
    assert names["conv3/conv3_4/weights"] == (3, 3, 256, 256)
    assert names["conv4/conv4_4/biases"] == (512,)
    assert "conv5/conv5_1/weights" not in names
    feats = _forward(net, jnp.full((1, 32, 32, 3), 0.5))
    assert {k: v.shape for k, v in feats.items()} == {
        "conv1": (1, 32, 32, 64),
        "conv2": (1, 16, 16, 128),
        "conv3": (1, 8, 8, 256),
        "conv4": (1, 4, 4, 512),
    }
    assert all(float(v.min()) >= 0 for v in feats.values()), "end points are after ReLU"
    with pytest.raises(ValueError, match="not built"):
        net(jnp.zeros((1, 8, 8, 3)), ("conv5",))


def test_vgg_input_convention_is_a_property_of_the_weights():
    x = jnp.asarray(np.random.default_rng(2).uniform(size=(1, 4, 4, 3)), jnp.float32)
    rgb = vgg.SLIM_CONVENTION.apply(x)
    bgr = vgg.CAFFE_CONVENTION.apply(x)
    np.testing.assert_allclose(rgb[..., ::-1], bgr, rtol=1e-6)
    np.testing.assert_allclose(rgb[..., 0], x[..., 0] * 255 - 123.68, rtol=1e-6)


def test_unknown_names_list_valid_ones():
    with pytest.raises(ValueError, match="mobilenet_v2"):
        models.StylePredictor((), trunk="resnet", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="avg"):
        models.VGG(16, pooling="median", rngs=nnx.Rngs(0))


def test_transformer_layout_matches_reference_table():
    rows = transformer.transformer_layers(1.0)
    assert len(rows) == 16
    assert [(r.kernel_size, r.stride, r.features) for r in rows[:3]] == [
        (9, 1, 32),
        (3, 2, 64),
        (3, 2, 128),
    ]
    assert [r.upsample for r in rows[13:]] == [True, True, False]
    assert rows[-1].kernel_size == 9 and rows[-1].features == 3


@pytest.mark.parametrize(
    "kernel, padding, cin, cout",
    [(9, "REFLECT", 32, 3), (3, "SAME", 16, 8), ((1, 7), "SAME", 16, 4), ((7, 1), "SAME", 16, 4), (1, "VALID", 20, 6)],
)
def test_taps_convolution_equals_xla(kernel, padding, cin, cout):
    x = jnp.asarray(np.random.default_rng(5).normal(size=(2, 13, 11, cin)), jnp.float32)
    convs = {
        impl: layers.Conv2d(cin, cout, kernel, padding=padding, implementation=impl, rngs=nnx.Rngs(0))
        for impl in ("xla", "taps")
    }
    np.testing.assert_allclose(convs["taps"](x), convs["xla"](x), rtol=1e-4, atol=1e-5)
    assert layers.Conv2d(3, 8, 3, stride=2, rngs=nnx.Rngs(0)).implementation == "xla"


@pytest.mark.parametrize("shape", [(2, 5, 7, 16), (1, 1, 1, 16), (1, 2, 3, 16)])
def test_fused_upsample_convolution_equals_upsample_then_convolve(shape):
    x = jnp.asarray(np.random.default_rng(6).normal(size=shape), jnp.float32)
    conv = layers.Conv2d(16, 8, 3, padding="REFLECT", implementation="taps", rngs=nnx.Rngs(0))
    reference = conv.convolve(transformer.upsample_nearest(x)) if min(shape[1:3]) > 1 else None
    fused = conv.convolve_upsampled(x)
    assert fused.shape == (shape[0], 2 * shape[1], 2 * shape[2], 8)
    if reference is not None:
        np.testing.assert_allclose(fused, reference, rtol=1e-4, atol=1e-5)


def test_taps_gradients_equal_xla_gradients():
    x = jnp.asarray(np.random.default_rng(7).normal(size=(2, 12, 10, 16)), jnp.float32)
    grads = {}
    for impl in ("xla", "taps"):
        conv = layers.Conv2d(16, 4, 3, padding="REFLECT", implementation=impl, rngs=nnx.Rngs(0))
        graphdef, state = nnx.split(conv)

        def loss(state, x, graphdef=graphdef):
            c = nnx.merge(graphdef, state)
            return jnp.sum(c.convolve(x) ** 2) + jnp.sum(c.convolve_upsampled(x[:, :6, :5]) ** 3)

        grads[impl] = jax.grad(loss, argnums=(0, 1))(state, x)
    for a, b in zip(jax.tree.leaves(grads["xla"]), jax.tree.leaves(grads["taps"])):
        np.testing.assert_allclose(b, a, rtol=2e-4, atol=1e-4)


def _convolve_and_gradients(conv, x):
    graphdef, state = nnx.split(conv)

    def loss(state, x):
        return jnp.sum(jnp.sin(nnx.merge(graphdef, state).convolve(x)))

    return nnx.merge(graphdef, state).convolve(x), jax.grad(loss, argnums=(0, 1))(state, x)


@pytest.mark.parametrize(
    "cin, cout, kernel, padding, size",
    [(3, 32, 9, "REFLECT", (19, 14)), (32, 3, 9, "REFLECT", (12, 13)), (3, 8, 5, "SAME", (11, 16)), (8, 3, 7, "VALID", (15, 15))],
)
def test_block_convolution_equals_xla(cin, cout, kernel, padding, size):
    x = jnp.asarray(np.random.default_rng(8).normal(size=(2, *size, cin)), jnp.float32)
    results = {
        impl: _convolve_and_gradients(
            layers.Conv2d(cin, cout, kernel, padding=padding, implementation=impl, rngs=nnx.Rngs(0)), x
        )
        for impl in ("xla", "blocks")
    }
    (y_xla, g_xla), (y_blocks, g_blocks) = results["xla"], results["blocks"]
    np.testing.assert_allclose(y_blocks, y_xla, rtol=1e-4, atol=1e-5)
    for a, b in zip(jax.tree.leaves(g_xla), jax.tree.leaves(g_blocks)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=5e-4)


@pytest.mark.parametrize(
    "kernel, stride, padding, size", [(3, 2, "SAME", (33, 20)), (3, 1, "VALID", (17, 9)), ((1, 7), 1, "SAME", (12, 12)), (3, 2, "VALID", (8, 9))]
)
def test_banded_xla_convolution_is_the_same_function(monkeypatch, kernel, stride, padding, size):
    # Bands of 7 output pixels: many bands, the last one short.
    monkeypatch.setattr(layers, "BAND_OUTPUT_PIXELS", 7)
    x = jnp.asarray(np.random.default_rng(9).normal(size=(2, *size, 4)), jnp.float32)
    conv = layers.Conv2d(4, 5, kernel, stride=stride, padding=padding, implementation="xla", rngs=nnx.Rngs(0))
    conv.banded = True
    y_banded, g_banded = _convolve_and_gradients(conv, x)
    assert str(jax.make_jaxpr(conv.convolve)(x)).count("conv_general_dilated") > 1
    conv.banded = False
    y_whole, g_whole = _convolve_and_gradients(conv, x)
    np.testing.assert_allclose(y_banded, y_whole, rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(g_whole), jax.tree.leaves(g_banded)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)


def test_auto_implementation_choices():
    auto = layers.auto_implementation
    assert auto(3, 32, (9, 9)) == "blocks"  # alpha-1 first layer
    assert auto(32, 3, (9, 9)) == "blocks"  # alpha-1 last layer
    assert auto(3, 8, (9, 9)) == "blocks" and auto(8, 3, (9, 9)) == "blocks"  # alpha 0.25
    assert auto(128, 128, (3, 3)) == "taps"
    assert auto(3, 64, (3, 3)) == "xla"
    assert auto(64, 128, (3, 3), stride=2) == "xla"
    assert auto(128, 128, (3, 3), backend="gpu") == "xla"
    assert auto(3, 32, (9, 9), backend="gpu") == "xla"
    with pytest.raises(ValueError, match="square kernel"):
        layers.Conv2d(16, 16, (1, 7), implementation="blocks", rngs=nnx.Rngs(0))


def test_style_image_too_small_for_the_trunk_is_an_error(paper_model):
    # Inception-v3's trunk maps a 32 px image to 0x0 features, whose mean is NaN.
    graphdef, state = nnx.split(paper_model)
    embed = lambda state, images: nnx.merge(graphdef, state).predictor.embed(images)  # noqa: E731
    with pytest.raises(ValueError, match="32x32 style images are too small"):
        jax.eval_shape(embed, state, jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32))
    assert jax.eval_shape(embed, state, jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)).shape == (1, 100)


def test_batch_norm_moving_variance_is_unbiased():
    """Training mode: normalised with the biased batch variance, the moving
    variance updated with the unbiased one (x n/(n-1)), as TF-Slim's fused
    batch norm; inference: nnx.BatchNorm's function of the moving averages."""
    spec = layers.BatchNormSpec(epsilon=1e-3, decay=0.9, scale=True)
    conv = layers.Conv2d(2, 3, 1, batch_norm=spec, rngs=nnx.Rngs(0))
    bn = conv.BatchNorm
    rng = np.random.default_rng(0)
    moving_mean, moving_var = rng.normal(size=3), rng.uniform(0.5, 2.0, size=3)
    scale, bias = rng.uniform(0.5, 2.0, size=3), rng.normal(size=3)
    bn.mean[...], bn.var[...] = jnp.asarray(moving_mean, jnp.float32), jnp.asarray(moving_var, jnp.float32)
    bn.scale[...], bn.bias[...] = jnp.asarray(scale, jnp.float32), jnp.asarray(bias, jnp.float32)
    x = rng.normal(3.0, 2.0, size=(2, 2, 3, 3)).astype(np.float32)  # n = 2*2*3 = 12 per channel

    y = bn(jnp.asarray(x), use_running_average=False)

    values = x.reshape(-1, 3).astype(np.float64)
    n = values.shape[0]
    batch_mean, biased_var = values.mean(0), values.var(0)
    expected = (x - batch_mean) / np.sqrt(biased_var + 1e-3) * scale + bias
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(bn.mean[...]), 0.9 * moving_mean + 0.1 * batch_mean, rtol=1e-6)
    np.testing.assert_allclose(
        np.asarray(bn.var[...]), 0.9 * moving_var + 0.1 * biased_var * n / (n - 1), rtol=1e-6
    )
    # The whole state keeps nnx.BatchNorm's names (checkpoints, weight readers).
    assert set(nnx.to_pure_dict(nnx.state(bn))) == {"mean", "var", "scale", "bias"}

    # Inference mode is unchanged: exactly nnx.BatchNorm's output.
    reference = nnx.BatchNorm(3, epsilon=1e-3, momentum=0.9, rngs=nnx.Rngs(0))
    nnx.update(reference, nnx.state(bn))
    np.testing.assert_array_equal(
        np.asarray(bn(jnp.asarray(x), use_running_average=True)),
        np.asarray(reference(jnp.asarray(x), use_running_average=True)),
    )
