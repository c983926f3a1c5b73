"""The TensorFlow peer of the transfer network (experiments/benchmarks/tf_peer.py) is Magenta's graph.

The peer is written from our layer table, so comparing it with our network
would compare that table with itself. The oracle here is Magenta's own
``nza_model.transform`` (the arbitrary model's transfer network, built with
TF-Slim in TF1 graph mode, imported as tests/test_reference_oracle.py does),
given the same weights by name and the same beta/gamma through its
``conditional_style_norm``: if the peer's wiring, padding, upsampling or norms
differ from the reference's, the two graphs disagree. Both widths the
benchmark times are checked (alpha 0.25 and 1).
"""

from __future__ import annotations

import importlib
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from test_reference_oracle import import_magenta, session

from arbitrary_style.models.transformer import StyleTransferNetwork
from arbitrary_style.weights.core import module_variables
from experiments.benchmarks import tf_peer

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def tf():
    """TensorFlow (GPUs hidden), with the legacy layers TF-Slim's batch norm needs.

    As test_reference_oracle.py's fixture: TF 2.21 loads
    tf.compat.v1.layers.BatchNormalization from tf_keras.legacy_tf_layers,
    which tf_keras 2.21 ships as tf_keras.src.legacy_tf_layers only.
    """
    module = tf_peer.tf()
    for name in ("legacy_tf_layers", "legacy_tf_layers.normalization"):
        sys.modules.setdefault(f"tf_keras.{name}", importlib.import_module(f"tf_keras.src.{name}"))
    return module


def random_network(alpha: float, seed: int = 0) -> StyleTransferNetwork:
    """Random weights of unit gain (N(0, 1 / fan_in)) and batch-norm statistics.

    Not the N(0, 0.01) initialiser: with it the activations shrink layer by
    layer until the batch-norm offsets dominate them, the instance norms then
    divide tiny spatial variations by their tiny spread, and float32 rounding
    is amplified to ~1e-4 (ours, onnxruntime and TF all disagree that much
    with each other). Unit gain keeps the comparison about the graph.
    """
    graphdef, state = nnx.split(nnx.eval_shape(lambda: StyleTransferNetwork(alpha, rngs=nnx.Rngs(0))))
    rng = np.random.default_rng(seed)
    for path, variable in nnx.to_flat_state(state):
        shape = variable.get_value().shape
        if path[-1] == "weights":
            value = rng.normal(0.0, 1.0 / np.sqrt(np.prod(shape[:3])), shape)
        elif path[-1] == "var":
            value = rng.uniform(0.5, 1.5, shape)
        else:  # batch-norm offset and mean
            value = rng.normal(0.0, 0.1, shape)
        variable.set_value(jnp.asarray(value, jnp.float32))
    return nnx.merge(graphdef, state)


def random_norm_params(network: StyleTransferNetwork, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    return {
        name: (
            rng.normal(0.0, 0.5, (1, channels)).astype(np.float32),
            rng.uniform(0.5, 1.5, (1, channels)).astype(np.float32),
        )
        for name, channels in network.conditional_layers
    }


def magenta_transform(tf, network, norm_params, image: np.ndarray, alpha: float) -> np.ndarray:
    """Magenta's ``nza_model.transform`` at inference, with ``network``'s weights and one style."""
    nza_model = import_magenta("models.arbitrary_image_stylization.nza_model")
    ops = import_magenta("models.image_stylization.ops")
    graph = tf.Graph()
    with graph.as_default():
        content = tf.compat.v1.placeholder(tf.float32, image.shape)
        # As build_model passes the style predictor's output: {'<scope>/beta': [1, C], ...}.
        scopes, _ = nza_model.style_normalization_activations(alpha=alpha)
        style_params = {}
        for scope in scopes:
            beta, gamma = norm_params[scope.removeprefix("transformer/").removesuffix("/StyleNorm")]
            style_params[f"{scope}/beta"] = tf.constant(beta)
            style_params[f"{scope}/gamma"] = tf.constant(gamma)
        stylized = nza_model.transform(
            content,
            normalizer_fn=ops.conditional_style_norm,
            normalizer_params={"style_params": style_params},
            is_training=False,
            alpha=alpha,
        )
        reference = {v.op.name.removeprefix("transformer/"): v for v in tf.compat.v1.global_variables()}
        ours = module_variables(network)
        assert set(reference) == set(ours), set(reference) ^ set(ours)
        with session(tf, graph) as sess:
            for name, variable in reference.items():
                variable.load(np.asarray(ours[name].get_value(), np.float32), sess)
            return sess.run(stylized, {content: image})


@pytest.mark.parametrize("alpha, size", [(0.25, 64), (1.0, 32)])
def test_tf_peer_computes_magentas_graph(tf, alpha, size):
    network = random_network(alpha)
    norm_params = random_norm_params(network)
    image = np.random.default_rng(2).random((1, size, size, 3), dtype=np.float32)
    reference = magenta_transform(tf, network, norm_params, image, alpha)
    peer = tf_peer.build_tf_transformer(network, norm_params)(tf.constant(image)).numpy()
    assert peer.shape == reference.shape == (1, size, size, 3)
    # Float32 rounding of two TF graphs of the same ops: ~1e-6; a wrong layer gives ~1e-1.
    np.testing.assert_allclose(peer, reference, atol=2e-5, rtol=0)


def test_tf_peer_rejects_a_batch_of_styles():
    network = random_network(0.25)
    norm_params = {
        name: tuple(np.tile(a, (2, 1)) for a in pair) for name, pair in random_norm_params(network).items()
    }
    with pytest.raises(ValueError, match="batch 1"):
        tf_peer.build_tf_transformer(network, norm_params)


def test_tf_peer_main_times_the_peer():
    result = tf_peer.main(["--alpha=0.25", "--sizes=32", "--repeats=2"])
    # Against our jitted network, with the benchmark's N(0, 0.01) weights
    # (their rounding noise: up to ~2e-4, see tf_peer.py).
    assert result["parity_max_abs"] < 5e-4
    assert result["median_ms"][32] > 0
