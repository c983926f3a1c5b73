"""The train step: a pure function of (state, batch, loss-network state), jitted by ``trainer.setup``.

The forward pass (``training_forward``), the loss terms (``losses.style_transfer_losses``,
and the consistency term when its weight is above 0), the Adam update and the guard that
keeps a non-finite step from changing the state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from arbitrary_style import losses
from arbitrary_style.models import cpu_conv

State = dict[str, Any]



Forward = Callable[[nnx.Module, Mapping[str, jax.Array]], jax.Array]
# The breakdown keys the consistency term adds (with a weight above 0).
CONSISTENCY_TERMS = {"consistency": None, "weighted/consistency": None}



def reference_forward(model: nnx.Module, batch: Mapping[str, jax.Array]) -> jax.Array:
    """The reference's training forward pass: every batch norm in training mode."""
    return model.stylize_batch(batch, train=True)



def training_forward(config: ml_collections.ConfigDict) -> Forward:
    """The forward pass of a train step under ``config.train``.

    Batch norms train (batch statistics, moving averages updated) as in the
    reference, except a frozen predictor trunk's (a fixed function, as its
    weights are) and all of them with ``train.freeze_batch_norm``.
    """
    batch_norm_trains = not config.train.get("freeze_batch_norm", False)
    trunk_trains = batch_norm_trains and not config.train.freeze_predictor_trunk
    if batch_norm_trains and trunk_trains:
        return reference_forward

    def forward(model, batch):
        return model.stylize_batch(batch, train=batch_norm_trains, train_trunk=trunk_trains)

    return forward



def loss_term_names(config: ml_collections.ConfigDict) -> tuple[str, ...]:
    """Sorted keys of ``losses.style_transfer_losses``' breakdown for this config."""
    w = losses.LossWeights.from_config(config.loss)
    x = jnp.zeros((1, 4, 4, 1))
    feats = {k: x for k in w.end_points}
    grams = {k: jnp.zeros((1, 1, 1)) for k in w.style}
    terms = losses.loss_breakdown(
        stylized_images=jnp.zeros((1, 4, 4, 3)),
        stylized_features=feats,
        content_features=feats,
        style_grams=grams,
        weights=w,
    )
    if w.consistency > 0:
        terms = {**terms, **CONSISTENCY_TERMS}
    return tuple(sorted(terms))



def make_train_step(
    graphdef: nnx.GraphDef,
    loss_graphdef: nnx.GraphDef,
    optimizer: optax.GradientTransformation,
    loss_weights: losses.LossWeights,
    term_names: tuple[str, ...],
    forward: Forward = reference_forward,
    cpu_conv_kernels: str = "xla",
) -> Callable[[State, Mapping[str, jax.Array], nnx.State], tuple[State, dict[str, jax.Array]]]:
    """A pure ``train_step(state, batch, loss_network_state) -> (state, metrics)``.

    ``forward(model, batch)`` runs the style model (``training_forward``).

    A step whose loss or gradient is not finite leaves the parameters, batch
    statistics and optimizer state as they were and records the step and the
    offending terms in ``state['guard']``; the loop reads it at log and
    checkpoint steps (the only host syncs) and stops there, so a bad state is
    never saved.
    """

    def loss_fn(params, batch_stats, frozen, loss_network_state, batch, step):
        # copy=True: fresh Variables at this trace level, which batch norm may
        # then update (the inputs' Variables belong to the outer jit trace).
        model = nnx.merge(graphdef, params, batch_stats, frozen, copy=True)
        stylized = forward(model, batch)
        loss_network = nnx.merge(loss_graphdef, loss_network_state)
        terms = losses.style_transfer_losses(
            loss_network,
            content_images=batch["content"],
            style_images=batch["style"],
            stylized_images=stylized,
            weights=loss_weights,
        )
        if loss_weights.consistency > 0:
            terms = with_consistency(terms, params, batch_stats, frozen, batch, stylized, step)
        # Training mode updated the moving averages on the merged copy.
        new_batch_stats = nnx.state(model, nnx.BatchStat)
        return terms["total"], (terms, new_batch_stats)

    def with_consistency(terms, params, batch_stats, frozen, batch, stylized, step):
        """``terms`` with the consistency term (losses.consistency_loss) added.

        The perturbed content goes through a second copy of the model: its
        batch norms (training mode) normalise with the perturbed batch's
        statistics, and their moving-average updates are dropped, so the
        averages advance once per step as without the term.
        """
        perturbation = loss_weights.perturbation
        key = jax.random.fold_in(jax.random.key(perturbation.seed), step)
        perturbed, warp = losses.perturb(key, batch["content"], perturbation)
        twin = nnx.merge(graphdef, params, batch_stats, frozen, copy=True)
        stylized_of_perturbed = forward(twin, {**batch, "content": perturbed})
        perturbed_stylized, valid = warp(stylized)
        value = losses.consistency_loss(stylized_of_perturbed, perturbed_stylized, valid)
        weighted = loss_weights.consistency * value
        return {
            **terms,
            "consistency": value,
            "weighted/consistency": weighted,
            "total": terms["total"] + weighted,
        }

    def train_step(state, batch, loss_network_state):
        with cpu_conv.kernels(cpu_conv_kernels):  # traced: see models/cpu_conv.py
            return kernels_train_step(state, batch, loss_network_state)

    def kernels_train_step(state, batch, loss_network_state):
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (_, (terms, new_batch_stats)), grads = grad_fn(
            state["params"], state["batch_stats"], state["frozen"], loss_network_state, batch, state["step"]
        )
        updates, new_opt_state = optimizer.update(grads, state["opt_state"], state["params"])
        new_params = optax.apply_updates(state["params"], updates)
        grad_norm = optax.tree.norm(grads)

        term_finite = jnp.stack([jnp.isfinite(terms[k]) for k in term_names])
        finite = jnp.all(term_finite) & jnp.isfinite(grad_norm)
        keep = lambda new, old: jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)  # noqa: E731
        guard = state["guard"]
        first_bad = (guard["bad_step"] < 0) & ~finite
        new_state = {
            "step": state["step"] + 1,
            "params": keep(new_params, state["params"]),
            "batch_stats": keep(new_batch_stats, state["batch_stats"]),
            "frozen": state["frozen"],
            "opt_state": keep(new_opt_state, state["opt_state"]),
            "guard": {
                "bad_step": jnp.where(first_bad, state["step"], guard["bad_step"]),
                "bad_terms": jnp.where(first_bad, ~term_finite, guard["bad_terms"]),
                "bad_grad": jnp.where(first_bad, ~jnp.isfinite(grad_norm), guard["bad_grad"]),
            },
        }
        metrics = dict(terms)
        metrics["grad_norm"] = grad_norm
        metrics["learning_rate"] = new_opt_state.hyperparams["learning_rate"]
        return new_state, metrics

    return train_step



def empty_guard(num_terms: int) -> dict[str, jax.Array]:
    return {
        "bad_step": jnp.full((), -1, jnp.int32),
        "bad_terms": jnp.zeros((num_terms,), bool),
        "bad_grad": jnp.zeros((), bool),
    }



class NonFiniteLossError(FloatingPointError):
    """A loss term (or the gradient) became NaN or Inf."""



def check_guard(state: State, term_names: tuple[str, ...], last_good_checkpoint: int | None):
    """Raises NonFiniteLossError naming the first bad step and terms, if any."""
    guard = jax.device_get(state["guard"])
    bad_step = int(guard["bad_step"])
    if bad_step < 0:
        return
    bad = [name for name, flag in zip(term_names, guard["bad_terms"], strict=True) if flag]
    if bool(guard["bad_grad"]):
        bad.append("grad_norm")
    where = (
        f"the last good checkpoint is step {last_good_checkpoint}"
        if last_good_checkpoint is not None
        else "no checkpoint was written"
    )
    raise NonFiniteLossError(
        f"non-finite loss at step {bad_step} (0-based; its batch is batch {bad_step}) in "
        f"{', '.join(bad) or 'the loss'}; the run stops and {where}"
    )
