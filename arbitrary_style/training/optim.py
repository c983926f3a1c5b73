"""The optimizer: Adam as TensorFlow computes it (the reference trains with ``tf.train.AdamOptimizer``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax


def scale_by_tf_adam(
    b1: float, b2: float, eps: float, eps_root: float = 0.0
) -> optax.GradientTransformation:
    """Adam's direction as TF's ``tf.compat.v1.train.AdamOptimizer`` computes it.

    TF (training/adam.py ``_apply_dense``, kernel ``ApplyAdam`` in
    training_ops.cc) folds both bias corrections into the step size,
    ``lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)``, and adds eps to the
    uncorrected ``sqrt(v)``: ``update = lr_t * m / (sqrt(v) + eps)``, Kingma
    & Ba's "epsilon hat" (section 2). optax's ``scale_by_adam`` adds eps after
    the bias correction, which is eps / sqrt(1 - b2^t) in TF's form: at step
    1, TF moves a parameter by lr * g / (|g| + 3.2e-7), optax by
    lr * g / (|g| + 1e-8). The moments and their state are ``scale_by_adam``'s
    (TF's slots m and v hold the same values), so checkpoints keep their layout.
    Returns ``m * sqrt(1 - b2^t) / (1 - b1^t) / (sqrt(v + eps_root) + eps)``;
    the learning rate is applied after it. ``eps_root`` is optax's (TF has
    none: 0).
    """

    def init_fn(params):
        return optax.ScaleByAdamState(
            count=jnp.zeros([], jnp.int32),
            mu=optax.tree.zeros_like(params),
            nu=optax.tree.zeros_like(params),
        )

    def update_fn(updates, state, params=None):
        del params
        # ApplyAdam's moment updates: m += (g - m) * (1 - b1), v += (g^2 - v) * (1 - b2).
        mu = jax.tree.map(lambda m, g: m + (g - m) * (1 - b1), state.mu, updates)
        nu = jax.tree.map(lambda v, g: v + (jnp.square(g) - v) * (1 - b2), state.nu, updates)
        count = optax.safe_increment(state.count)
        t = count.astype(jnp.float32)
        correction = jnp.sqrt(1 - b2**t) / (1 - b1**t)
        directions = jax.tree.map(
            lambda m, v: (m * correction.astype(m.dtype)) / (jnp.sqrt(v + eps_root) + eps),
            mu,
            nu,
        )
        return directions, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init_fn, update_fn)



def tf_adam(
    learning_rate: float, b1: float, b2: float, eps: float, eps_root: float = 0.0
) -> optax.GradientTransformation:
    """``tf.compat.v1.train.AdamOptimizer`` (see ``scale_by_tf_adam``), the
    reference's optimizer. Its state is ``optax.adam``'s, hyperparameters
    included under inject_hyperparams (hence ``eps_root``), so that train
    states checkpointed with optax.adam restore into it."""
    return optax.chain(
        scale_by_tf_adam(b1, b2, eps, eps_root), optax.scale_by_learning_rate(learning_rate)
    )



def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """TF's Adam (``tf_adam``) from ``config.optimizer``; the learning rate
    sits in the optimizer state (inject_hyperparams) so that the logged value
    is the one used."""
    o = config.optimizer
    return optax.inject_hyperparams(tf_adam)(
        learning_rate=o.learning_rate, b1=o.b1, b2=o.b2, eps=o.eps
    )
