"""Networks match docs/reference-model.md §1-§3: sizes, shapes, names, behaviour."""

import functools
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from arbitrary_style import models
from arbitrary_style.models import cpu_conv, inception, layers, transformer, vgg


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


def _numpy_conv(x, weights, stride=1, padding="VALID", groups=1):
    """Direct convolution in float64: a sum over kernel taps of strided windows."""
    x, weights = np.asarray(x, np.float64), np.asarray(weights, np.float64)
    kh, kw, cin_group, cout = weights.shape
    if padding == "REFLECT":
        x = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)), mode="reflect")
    elif padding == "SAME":
        # TensorFlow: output ceil(n / stride), the odd pixel of padding after.
        pads = []
        for k, n in ((kh, x.shape[1]), (kw, x.shape[2])):
            total = max((-(-n // stride) - 1) * stride + k - n, 0)
            pads.append((total // 2, total - total // 2))
        x = np.pad(x, ((0, 0), *pads, (0, 0)))
    ho, wo = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    cout_group = cout // groups
    y = np.zeros((x.shape[0], ho, wo, cout))
    for g in range(groups):
        xg = x[..., g * cin_group : (g + 1) * cin_group]
        outputs = slice(g * cout_group, (g + 1) * cout_group)
        for dy in range(kh):
            for dx in range(kw):
                rows = slice(dy, dy + (ho - 1) * stride + 1, stride)
                cols = slice(dx, dx + (wo - 1) * stride + 1, stride)
                window = xg[:, rows, cols]
                y[..., outputs] += window @ weights[dy, dx, :, outputs]
    return y


def _lax_conv(x, weights, stride=1, padding="VALID"):
    """The convolution written directly with lax (explicit padding), for reference gradients."""
    kh, kw = weights.shape[:2]
    if padding == "REFLECT":
        x = jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)), mode="reflect")
    return jax.lax.conv_general_dilated(
        x, weights, (stride, stride), "SAME" if padding == "SAME" else "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )


def _convolve_and_gradients(conv, x, mode, *, upsample=False):
    """Output and gradients (weights, input) of sum(sin(conv)) traced under ``cpu_conv.kernels(mode)``."""
    graphdef, state = nnx.split(conv)

    def apply(state, x):
        with cpu_conv.kernels(mode):
            c = nnx.merge(graphdef, state)
            return c.convolve_upsampled(x) if upsample else c.convolve(x)

    def loss(state, x):
        return jnp.sum(jnp.sin(apply(state, x)))

    return apply(state, x), jax.grad(loss, argnums=(0, 1))(state, x), jax.make_jaxpr(apply)(state, x)


def _reference_gradients(conv, x, *, upsample=False):
    """Gradients (weights, input) of sum(sin(conv)) with ``_lax_conv``, Conv2d not involved."""

    def loss(weights, x):
        if upsample:
            x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
        return jnp.sum(jnp.sin(_lax_conv(x, weights, conv.stride, conv.padding)))

    return jax.grad(loss, argnums=(0, 1))(conv.weights[...], x)


def _assert_matches_references(
    conv, x, mode, *, upsample=False, rtol=1e-4, atol=1e-5, grad_rtol=2e-4, grad_atol=5e-4
):
    """``conv`` under ``mode`` against the plain path, numpy (values) and lax (gradients)."""
    y, (g_state, g_x), jaxpr = _convolve_and_gradients(conv, x, mode, upsample=upsample)
    y_plain, (g_state_plain, g_x_plain), _ = _convolve_and_gradients(conv, x, "xla", upsample=upsample)
    x_in = np.repeat(np.repeat(np.asarray(x), 2, axis=1), 2, axis=2) if upsample else x
    expected = _numpy_conv(x_in, conv.weights[...], conv.stride, conv.padding, conv.groups)
    np.testing.assert_allclose(y, expected, rtol=rtol, atol=atol)
    np.testing.assert_allclose(y_plain, expected, rtol=rtol, atol=atol)
    np.testing.assert_allclose(y, y_plain, rtol=rtol, atol=atol)
    g_weights_ref, g_x_ref = _reference_gradients(conv, x, upsample=upsample)
    for got in ((g_state.weights[...], g_x), (g_state_plain.weights[...], g_x_plain)):
        np.testing.assert_allclose(got[0], g_weights_ref, rtol=grad_rtol, atol=grad_atol)
        np.testing.assert_allclose(got[1], g_x_ref, rtol=grad_rtol, atol=grad_atol)
    return jaxpr


@pytest.mark.parametrize(
    "kernel, padding, cin, cout",
    [
        (9, "REFLECT", 32, 3),
        (3, "SAME", 16, 8),
        ((1, 7), "SAME", 16, 4),
        ((7, 1), "SAME", 16, 4),
        (1, "VALID", 20, 6),
    ],
)
def test_taps_convolution_equals_plain_and_numpy(kernel, padding, cin, cout):
    x = jnp.asarray(np.random.default_rng(5).normal(size=(2, 13, 11, cin)), jnp.float32)
    conv = layers.Conv2d(cin, cout, kernel, padding=padding, rngs=nnx.Rngs(0))
    jaxpr = _assert_matches_references(conv, x, "taps")
    # The taps kernel ran: a matmul and shifted sums, no XLA convolution.
    assert "conv_general_dilated" not in str(jaxpr)


@pytest.mark.parametrize("shape", [(2, 5, 7, 16), (1, 1, 1, 16), (1, 2, 3, 16)])
def test_fused_upsample_convolution_equals_upsample_then_convolve(shape):
    x = jnp.asarray(np.random.default_rng(6).normal(size=shape), jnp.float32)
    conv = layers.Conv2d(16, 8, 3, padding="REFLECT", rngs=nnx.Rngs(0))
    jaxpr = _assert_matches_references(conv, x, "taps", upsample=True)
    assert "conv_general_dilated" not in str(jaxpr)


@pytest.mark.parametrize("mode", ["taps", "auto"])
def test_taps_gradients_equal_plain_gradients(mode):
    x = jnp.asarray(np.random.default_rng(7).normal(size=(2, 12, 10, 16)), jnp.float32)
    conv = layers.Conv2d(16, 4, 3, padding="REFLECT", rngs=nnx.Rngs(0))
    assert cpu_conv.choose_kernel(mode, (3, 3), 16, 4) == "taps"
    _assert_matches_references(conv, x, mode, grad_rtol=2e-4, grad_atol=1e-4)
    _assert_matches_references(conv, x[:, :6, :5], mode, upsample=True, grad_rtol=2e-4, grad_atol=1e-4)


@pytest.mark.parametrize(
    "cin, cout, kernel, padding, size",
    [
        (3, 32, 9, "REFLECT", (19, 14)),
        (32, 3, 9, "REFLECT", (12, 13)),
        (3, 8, 5, "SAME", (11, 16)),
        (8, 3, 7, "VALID", (15, 15)),
    ],
)
def test_block_convolution_equals_plain_and_numpy(cin, cout, kernel, padding, size):
    # On the CPU backend 'auto' runs these layers on 2x2 pixel blocks (with a
    # taps inner convolution for 32->3, banded XLA for the others).
    assert cpu_conv.choose_kernel("auto", (kernel, kernel), cin, cout, backend="cpu") == "blocks"
    x = jnp.asarray(np.random.default_rng(8).normal(size=(2, *size, cin)), jnp.float32)
    conv = layers.Conv2d(cin, cout, kernel, padding=padding, rngs=nnx.Rngs(0))
    if jax.default_backend() == "cpu":
        jaxpr = _assert_matches_references(conv, x, "auto")
        # The block kernel: ceil((k - 1) / 2) + 1 taps, 4x the input and output channels.
        taps = (kernel - 1 + 1) // 2 + 1
        assert f"[{taps},{taps},{4 * cin},{4 * cout}]" in str(jaxpr)
    block = functools.partial(cpu_conv.conv_by_blocks, block=cpu_conv.BLOCK_SIZE)
    y = jax.jit(block)(_pad_for_numpy(x, kernel, padding), conv.weights[...])
    np.testing.assert_allclose(y, _numpy_conv(x, conv.weights[...], 1, padding), rtol=1e-4, atol=1e-5)


def _pad_for_numpy(x, kernel, padding):
    """The stride-1 padded input of a square kernel (what Conv2d hands the kernels)."""
    if padding == "VALID":
        return x
    mode = "reflect" if padding == "REFLECT" else "constant"
    before, after = (kernel - 1) // 2, kernel // 2
    return jnp.pad(x, ((0, 0), (before, after), (before, after), (0, 0)), mode=mode)


@pytest.mark.parametrize(
    "kernel, stride, padding, size",
    [
        (3, 2, "SAME", (33, 20)),
        (3, 1, "VALID", (17, 9)),
        ((1, 7), 1, "SAME", (12, 12)),
        (3, 2, "VALID", (8, 9)),
    ],
)
def test_banded_xla_convolution_is_the_same_function(monkeypatch, kernel, stride, padding, size):
    # Bands of 7 output pixels: many bands, the last one short.
    monkeypatch.setattr(cpu_conv, "BAND_OUTPUT_PIXELS", 7)
    monkeypatch.setattr(cpu_conv, "BANDS_MIN_FEATURES", 1)
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    assert cpu_conv.choose_kernel("auto", (kh, kw), 4, 5, stride=stride, backend="cpu") == "bands"
    x = jnp.asarray(np.random.default_rng(9).normal(size=(2, *size, 4)), jnp.float32)
    conv = layers.Conv2d(4, 5, kernel, stride=stride, padding=padding, rngs=nnx.Rngs(0))
    if jax.default_backend() == "cpu":
        jaxpr = _assert_matches_references(conv, x, "auto", rtol=1e-5, grad_rtol=1e-5, grad_atol=1e-5)
        assert str(jaxpr).count("conv_general_dilated") > 1
    padded = x if padding == "VALID" else _pad_same(x, (kh, kw), stride)
    banded = cpu_conv.banded_xla_conv(padded, conv.weights[...], stride)
    expected = _numpy_conv(x, conv.weights[...], stride, padding)
    np.testing.assert_allclose(banded, expected, rtol=1e-5, atol=1e-5)


def _pad_same(x, kernel_size, stride):
    pads = [layers.same_padding(k, stride, n) for k, n in zip(kernel_size, x.shape[1:3], strict=True)]
    return jnp.pad(x, ((0, 0), *pads, (0, 0)))


def test_plain_convolution_is_one_xla_convolution():
    """Outside ``cpu_conv.kernels`` every layer is one lax convolution, whatever its shape."""
    x = jnp.zeros((1, 96, 96, 32))
    for conv in (
        layers.Conv2d(32, 3, 9, padding="REFLECT", rngs=nnx.Rngs(0)),
        layers.Conv2d(32, 64, 3, stride=2, rngs=nnx.Rngs(0)),
        layers.Conv2d(32, 32, 3, padding="REFLECT", rngs=nnx.Rngs(0)),
    ):
        assert cpu_conv.active_mode() == "xla"
        assert str(jax.make_jaxpr(conv)(x)).count("conv_general_dilated") == 1
        assert str(jax.make_jaxpr(conv.convolve_upsampled)(x)).count("conv_general_dilated") == 1


def test_kernel_choices():
    def auto(cin, cout, kernel, **kwargs):
        return cpu_conv.choose_kernel("auto", kernel, cin, cout, backend="cpu", **kwargs)

    assert auto(3, 32, (9, 9)) == "blocks"  # alpha-1 first layer
    assert auto(32, 3, (9, 9)) == "blocks"  # alpha-1 last layer
    assert auto(3, 8, (9, 9)) == "blocks" and auto(8, 3, (9, 9)) == "blocks"  # alpha 0.25
    assert auto(128, 128, (3, 3)) == "taps"
    assert auto(3, 64, (3, 3)) == "bands"
    assert auto(64, 128, (3, 3), stride=2) == "bands"
    assert auto(64, 64, (3, 3), groups=64) == "bands"
    # Fewer output channels (the alpha-0.25 network): one XLA call, no bands.
    assert auto(8, 16, (3, 3), stride=2) == "xla" and auto(32, 32, (3, 3), groups=32) == "xla"
    assert auto(16, 16, (1, 7)) == "taps"  # never blocks for a non-square kernel
    for kernel, cin, cout in (((3, 3), 128, 128), ((9, 9), 3, 32)):
        assert cpu_conv.choose_kernel("auto", kernel, cin, cout, backend="gpu") == "xla"
        assert cpu_conv.choose_kernel("xla", kernel, cin, cout, backend="cpu") == "xla"
    # 'taps' forces taps wherever stride 1 and no groups allow it, the 'auto' choice elsewhere.
    assert cpu_conv.choose_kernel("taps", (9, 9), 3, 32, backend="cpu") == "taps"
    assert cpu_conv.choose_kernel("taps", (3, 3), 3, 64, backend="gpu") == "taps"
    assert cpu_conv.choose_kernel("taps", (3, 3), 64, 128, stride=2, backend="cpu") == "bands"
    assert cpu_conv.choose_kernel("taps", (3, 3), 64, 128, stride=2, backend="gpu") == "xla"
    assert cpu_conv.choose_kernel("taps", (3, 3), 64, 64, groups=64, backend="cpu") == "bands"
    with pytest.raises(ValueError, match="square kernel"):
        cpu_conv.conv_by_blocks(jnp.zeros((1, 8, 8, 2)), jnp.zeros((1, 7, 2, 2)))


def test_kernel_mode_is_scoped_to_its_context():
    assert cpu_conv.active_mode() == "xla"
    with cpu_conv.kernels("auto"):
        assert cpu_conv.active_mode() == "auto"
        with cpu_conv.kernels("taps"):
            assert cpu_conv.active_mode() == "taps"
        assert cpu_conv.active_mode() == "auto"
        # Another thread starts from the default, whatever this one has entered.
        seen = []
        thread = threading.Thread(target=lambda: seen.append(cpu_conv.active_mode()))
        thread.start()
        thread.join()
        assert seen == ["xla"]
    assert cpu_conv.active_mode() == "xla"
    with pytest.raises(RuntimeError), cpu_conv.kernels("taps"):
        raise RuntimeError
    assert cpu_conv.active_mode() == "xla"
    with pytest.raises(ValueError, match="'xla', 'auto', 'taps'"), cpu_conv.kernels("blocks"):
        pass
    assert cpu_conv.active_mode() == "xla"


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
