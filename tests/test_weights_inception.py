"""``init_predictor_trunk``: slim's inception_v3 ImageNet checkpoint into the predictor.

A slim-named checkpoint (full depth, random values, with the classifier layers
the real one has beyond Mixed_6e) is written here and loaded into a model
whose other parts must stay untouched.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from flax import nnx

from arbitrary_style.models import ArbitraryStyleModel
from arbitrary_style.weights import WeightsMismatchError, init_predictor_trunk
from arbitrary_style.weights.core import module_variables

from conftest import write_tf_checkpoint

CLASSIFIER_EXTRAS = {
    "InceptionV3/Mixed_7a/Branch_0/Conv2d_0a_1x1/weights": (1, 1, 768, 192),
    "InceptionV3/Mixed_7c/Branch_3/Conv2d_0b_1x1/BatchNorm/beta": (192,),
    "InceptionV3/AuxLogits/Conv2d_2b_1x1/biases": (1001,),
    "InceptionV3/Logits/Conv2d_1c_1x1/weights": (1, 1, 2048, 1001),
    "global_step": (),
}


@functools.lru_cache
def cached_abstract_model(depth_multiplier=1.0):
    """For tests that must not change the model."""
    return abstract_model(depth_multiplier)


def abstract_model(depth_multiplier=1.0):
    return nnx.eval_shape(
        lambda: ArbitraryStyleModel(alpha=0.25, depth_multiplier=depth_multiplier, rngs=nnx.Rngs(0))
    )


@pytest.fixture(scope="module")
def slim_checkpoint(tmp_path_factory):
    rng = np.random.default_rng(0)
    trunk = cached_abstract_model().predictor.InceptionV3
    values = {
        f"InceptionV3/{name}": rng.normal(0, 0.1, variable.get_value().shape).astype(np.float32)
        for name, variable in module_variables(trunk).items()
    }
    for name, shape in CLASSIFIER_EXTRAS.items():
        values[name] = np.zeros(shape, np.int64 if name == "global_step" else np.float32)
    prefix = tmp_path_factory.mktemp("slim") / "inception_v3.ckpt"
    write_tf_checkpoint(prefix, values)
    return prefix, values


def test_trunk_is_loaded_in_place(slim_checkpoint):
    prefix, values = slim_checkpoint
    model = abstract_model()
    init_predictor_trunk(str(prefix), model)
    trunk = module_variables(model.predictor.InceptionV3)
    assert len(trunk) == len(values) - len(CLASSIFIER_EXTRAS)
    for name, variable in trunk.items():
        np.testing.assert_array_equal(variable.get_value(), values[f"InceptionV3/{name}"], err_msg=name)
    # Betas and both moving statistics, no gamma (slim batch norm without scale).
    assert "Mixed_6e/Branch_2/Conv2d_0e_1x7/BatchNorm/moving_variance" in trunk
    assert not [n for n in trunk if n.endswith("gamma")]
    # Everything else is left as it was (here: still abstract shapes).
    assert isinstance(model.predictor.bottleneck.weights.get_value(), jax_shape_type())
    assert isinstance(model.transformer.contract.conv1.weights.get_value(), jax_shape_type())


def jax_shape_type():
    return jax.ShapeDtypeStruct


def test_depth_multiplier_mismatch_lists_misshaped(slim_checkpoint):
    prefix, _ = slim_checkpoint
    with pytest.raises(WeightsMismatchError, match="mis-shaped"):
        init_predictor_trunk(str(prefix), cached_abstract_model(depth_multiplier=0.5))


def test_unknown_name(tmp_path, monkeypatch):
    monkeypatch.setenv("ARBITRARY_STYLE_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="inception_v3_2016_08_28.tar.gz"):
        init_predictor_trunk("inception_v3", cached_abstract_model())
    with pytest.raises(FileNotFoundError, match="neither a known weights name"):
        init_predictor_trunk(str(tmp_path / "missing.ckpt"), cached_abstract_model())
