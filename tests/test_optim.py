"""The optimizer: TF's Adam (tf.compat.v1.train.AdamOptimizer), the reference's."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from arbitrary_style.training import optim

from conftest import load_config

STEPS = 5


def tf_adam_numpy(params, gradients, learning_rate, b1, b2, eps):
    """TF's Adam (training/adam.py, ApplyAdam) in float64: the parameters after each step."""
    m = np.zeros_like(params)
    v = np.zeros_like(params)
    trajectory = []
    for t, g in enumerate(gradients, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        lr_t = learning_rate * np.sqrt(1 - b2**t) / (1 - b1**t)
        params = params - lr_t * m / (np.sqrt(v) + eps)
        trajectory.append(params)
    return trajectory


def test_tf_adam_steps_match_numpy():
    """Several steps from the config's optimizer on gradients spanning eps / sqrt(1 - b2).

    Gradients near 1e-8..1e-6 are where the eps conventions part: optax.adam
    (eps after the bias correction) moves them up to 0.7 lr differently.
    """
    config = load_config("pbn_dtd")
    o = config.optimizer
    rng = np.random.default_rng(0)
    params = rng.normal(size=6)
    scales = np.array([1e-1, 1e-3, 1e-6, 3e-7, 5e-8, 1e-8])
    gradients = [scales * rng.normal(1.0, 0.5, size=6) for _ in range(STEPS)]
    expected = tf_adam_numpy(params, gradients, o.learning_rate, o.b1, o.b2, o.eps)

    optimizer = optim.make_optimizer(config)
    ours = jnp.asarray(params, jnp.float32)
    state = optimizer.init(ours)
    update = jax.jit(optimizer.update)
    for step, g in enumerate(gradients):
        updates, state = update(jnp.asarray(g, jnp.float32), state, ours)
        ours = optax.apply_updates(ours, updates)
        # float32 rounds parameters ~1 to 6e-8 a step, the updates to ~1e-6 of lr.
        tolerance = 1e-6 * np.abs(expected[step]) + 1e-5 * o.learning_rate
        np.testing.assert_array_less(np.abs(np.asarray(ours, np.float64) - expected[step]), tolerance)
    assert float(state.hyperparams["learning_rate"]) == np.float32(o.learning_rate)
    # The moments are optax.adam's state (the checkpoint layout).
    assert isinstance(state.inner_state[0], optax.ScaleByAdamState)
    assert int(state.inner_state[0].count) == STEPS

    # optax.adam's convention differs measurably on the small gradients.
    adam = optax.adam(o.learning_rate, o.b1, o.b2, o.eps)
    moved = jnp.asarray(params, jnp.float32)
    adam_state = adam.init(moved)
    for g in gradients:
        updates, adam_state = adam.update(jnp.asarray(g, jnp.float32), adam_state, moved)
        moved = optax.apply_updates(moved, updates)
    assert np.max(np.abs(np.asarray(moved, np.float64) - expected[-1])) > 0.1 * o.learning_rate


def test_tf_adam_state_is_optax_adams():
    """Train states saved with optax.adam restore into this optimizer's state."""
    config = load_config("pbn_dtd")
    o = config.optimizer
    params = {"a": jnp.ones((3,)), "b": {"c": jnp.zeros((2, 2))}}
    ours = optim.make_optimizer(config).init(params)
    adam = optax.inject_hyperparams(optax.adam)(
        learning_rate=o.learning_rate, b1=o.b1, b2=o.b2, eps=o.eps
    ).init(params)
    assert jax.tree.structure(ours) == jax.tree.structure(adam)
