"""The TensorFlow peer of the transfer network (experiments/benchmarks/tf_peer.py) computes ours."""

from __future__ import annotations


import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, load_module
from flax import nnx

from arbitrary_style.models.transformer import StyleTransferNetwork

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def tf_peer():
    return load_module(ROOT / "experiments" / "benchmarks" / "tf_peer.py", "benchmark_tf_peer")


def random_network(alpha: float, conditional_contract: bool, seed: int = 0) -> StyleTransferNetwork:
    """Random weights of unit gain (N(0, 1 / fan_in)) and batch-norm statistics.

    Not the N(0, 0.01) initialiser: with it the activations shrink layer by
    layer until the batch-norm offsets dominate them, the instance norms then
    divide tiny spatial variations by their tiny spread, and float32 rounding
    is amplified to ~1e-4 (ours, onnxruntime and TF all disagree that much
    with each other). Unit gain keeps the comparison about the graph.
    """
    graphdef, state = nnx.split(nnx.eval_shape(
        lambda: StyleTransferNetwork(alpha, conditional_contract=conditional_contract, rngs=nnx.Rngs(0))
    ))
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


@pytest.mark.parametrize(
    "alpha, size, conditional_contract",
    [(0.25, 64, False), (1.0, 32, False), (0.25, 32, True)],
)
def test_tf_peer_equals_ours(tf_peer, alpha, size, conditional_contract):
    network = random_network(alpha, conditional_contract)
    norm_params = random_norm_params(network)
    assert tf_peer.tf_parity(network, norm_params, size) < 1e-4


def test_tf_peer_rejects_a_batch_of_styles(tf_peer):
    network = random_network(0.25, False)
    norm_params = {
        name: tuple(np.tile(a, (2, 1)) for a in pair) for name, pair in random_norm_params(network).items()
    }
    with pytest.raises(ValueError, match="batch 1"):
        tf_peer.build_tf_transformer(network, norm_params)
