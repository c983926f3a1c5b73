"""Every config file loads, its smoke variant runs a jitted forward and loss on CPU."""

import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from arbitrary_style import losses, models, summary

from conftest import experiment_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG_FILES = sorted((ROOT / "configs").glob("*.py"))


def test_there_are_configs():
    assert {p.stem for p in CONFIG_FILES} >= {"pbn_dtd", "demo", "nstyle"}


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.stem)
def test_config_loads_locked_with_command_in_docstring(path):
    config = experiment_config(path.stem)
    assert config.is_locked
    source = path.read_text()
    assert f"--config=configs/{path.name}" in source.split('"""')[1].split("\n\n")[1]
    with pytest.raises(AttributeError):
        config.model.alphaa = 2  # locked configs catch typos
    with pytest.raises(ValueError, match="smoke"):
        experiment_config(path.stem, "nonexistent")


def test_pbn_dtd_follows_the_reference():
    config = experiment_config("pbn_dtd")
    assert config.model.kind == "arbitrary" and config.model.alpha == 1.0
    assert config.model.predictor == "inception_v3" and config.model.bottleneck_dim == 100
    assert config.loss.network == "vgg16" and config.loss.pooling == "avg"
    assert dict(config.loss.content_weights) == {"conv3": 1.0}
    assert dict(config.loss.style_weights) == {f"conv{i}": 0.5e-3 for i in (1, 2, 3, 4)}
    assert config.loss.total_variation_weight == 1e4
    o = config.optimizer
    assert (o.learning_rate, o.b1, o.b2, o.eps) == (1e-3, 0.9, 0.999, 1e-8)
    assert config.train.batch_size == 8 and config.data.image_size == 256


def test_nstyle_follows_turi_create():
    config = experiment_config("nstyle")
    assert config.model.kind == "nstyle"
    assert dict(config.loss.style_weights) == {f"conv{i}": 1e-4 for i in (1, 2, 3, 4)}
    assert dict(config.loss.content_weights) == {"conv3": 1.0}
    assert config.optimizer.learning_rate == 1e-3
    assert config.train.steps_per_style == 10_000


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.stem)
def test_smoke_variant_jitted_forward_and_loss(path):
    config = experiment_config(path.stem, "smoke")
    model = models.build_model(config.model, rngs=nnx.Rngs(0))
    vgg = models.build_loss_network(config.loss, rngs=nnx.Rngs(1))
    weights = losses.LossWeights.from_config(config.loss)
    size, batch = config.data.image_size, config.train.batch_size
    graphdef, state = nnx.split((model, vgg))
    content = jnp.full((batch, size, size, 3), 0.4)
    style = jax.random.uniform(jax.random.key(0), (batch, size + 8, size + 8, 3))
    if config.model.kind == "nstyle":
        style_input = jnp.arange(batch) % max(config.model.num_styles, 1)
    else:
        style_input = style

    @jax.jit
    def forward_and_loss(state, content, style_input, style):
        model, vgg = nnx.merge(graphdef, state)
        stylized = model(content, style_input, train=False)
        return losses.style_transfer_losses(
            vgg, content_images=content, style_images=style, stylized_images=stylized, weights=weights
        )

    terms = forward_and_loss(state, content, style_input, style)
    assert jnp.isfinite(terms["total"]) and float(terms["total"]) > 0


def test_unknown_part_names_fail_with_valid_list():
    config = experiment_config("pbn_dtd", "smoke")
    with config.unlocked():
        config.loss.network = "alexnet"
    with pytest.raises(ValueError, match="vgg16, vgg19"):
        models.build_loss_network(config.loss, rngs=nnx.Rngs(0))
    with config.unlocked():
        config.model.predictor = "resnet50"
    with pytest.raises(ValueError, match="inception_v3, mobilenet_v2"):
        models.build_model(config.model, rngs=nnx.Rngs(0))


def test_summary_prints_reference_numbers():
    config = experiment_config("pbn_dtd")
    counts = summary.summarize(config)
    assert counts["transformer"] == 1_674_656
    assert counts["style_heads"] == 278_558
    assert counts["bottleneck"] == 76_900
    assert counts["predictor_trunk"] == 8_956_448
    assert counts["style_params_per_style"] == 2758
    out = subprocess.run(
        [sys.executable, "-m", "arbitrary_style.summary", "--config=configs/pbn_dtd.py"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    for figure in ("1,674,656", "278,558", "76,900", "8,956,448", "10,986,562", "2758 numbers"):
        assert figure in out, out
