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


# Whether our network is wired as Magenta's is tested against Magenta's own
# graph (test_reference_oracle.py: the arbitrary model at alpha 1, the N-style
# model with conditional contract layers). The peer is built from our layer
# table, so comparing it with our network would repeat that check less
# independently; what is left to check here is what the benchmark relies on:
# the peer it times computes the same function as the network it is timed
# against, for both networks it times (stylize.py's NETWORKS, at its
# PARITY_SIZE for the lite one). The lite width (alpha 0.25) has no Magenta
# graph to compare with.
@pytest.mark.parametrize("alpha, size", [(0.25, 64), (1.0, 32)])
def test_tf_peer_computes_the_benchmarked_network(tf_peer, alpha, size):
    network = random_network(alpha, conditional_contract=False)
    norm_params = random_norm_params(network)
    # ~2e-6 in float32 with unit-gain weights; a wrong layer gives ~1e-1.
    assert tf_peer.tf_parity(network, norm_params, size) < 2e-5


def test_tf_peer_rejects_a_batch_of_styles(tf_peer):
    network = random_network(0.25, False)
    norm_params = {
        name: tuple(np.tile(a, (2, 1)) for a in pair) for name, pair in random_norm_params(network).items()
    }
    with pytest.raises(ValueError, match="batch 1"):
        tf_peer.build_tf_transformer(network, norm_params)
