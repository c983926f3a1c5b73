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
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils

from arbitrary_style import data as data_lib
from arbitrary_style import losses, models
from arbitrary_style.inference import style_record
from arbitrary_style.models import cpu_conv
from arbitrary_style.training import checkpoints, networks, observe, optim, parallel
from arbitrary_style.training import step as step_lib

# Fields of the train state that a checkpoint holds (besides the model).
TRAIN_ITEM_FIELDS = ("step", "opt_state")
# One JSON line per log step (process 0): what TensorBoard shows, for scripts.
METRICS_FILE = "metrics.jsonl"

log = logging.getLogger(__name__)


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
# Config


# ---------------------------------------------------------------------------
# Networks and what trains


# ---------------------------------------------------------------------------
# The step


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
    state: step_lib.State
    train_step: Callable
    term_names: tuple[str, ...]
    trainable: Any
    local_batch_size: int
    param_counts: dict[str, int]
    forward: step_lib.Forward


def setup(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None) -> Run:
    """Builds networks, the sharded initial state and the jitted step (nothing runs)."""
    mesh = parallel.make_mesh() if mesh is None else mesh
    cpu_conv.check_mode(config.train.cpu_conv_kernels)
    local_batch_size = parallel.check_batch_size(config.train.batch_size, mesh)
    model, vgg = networks.build_networks(config)
    if config.train.init_from:
        _, source = checkpoints.restore_model(config.train.init_from)
        networks.adopt_parameters(model, source)
    trainable = model.trainable_filter(config.train)
    graphdef, params, batch_stats, frozen = nnx.split(model, trainable, nnx.BatchStat, ...)
    loss_graphdef, loss_network_state = nnx.split(vgg)
    count = lambda tree: sum(int(np.size(x)) for x in jax.tree.leaves(tree))  # noqa: E731
    param_counts = {
        "trainable": count(params),
        "frozen": count(nnx.filter_state(frozen, nnx.Param)) if jax.tree.leaves(frozen) else 0,
        "loss_network": count(loss_network_state),
    }
    optimizer = optim.make_optimizer(config)
    term_names = step_lib.loss_term_names(config)
    rep = parallel.replicated(mesh)
    state = parallel.replicate(
        {"step": np.zeros((), np.int32), "params": params, "batch_stats": batch_stats, "frozen": frozen},
        rep,
    )
    state["opt_state"] = jax.jit(optimizer.init, out_shardings=rep)(state["params"])
    state["guard"] = jax.jit(functools.partial(step_lib.empty_guard, len(term_names)), out_shardings=rep)()
    forward = step_lib.training_forward(config)
    step = step_lib.make_train_step(
        graphdef,
        loss_graphdef,
        optimizer,
        losses.LossWeights.from_config(config.loss),
        term_names,
        forward,
        cpu_conv_kernels=config.train.cpu_conv_kernels,
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


def model_state(state: step_lib.State) -> nnx.State:
    """The full ``nnx.state`` of the model (what checkpoints and restore_model hold)."""
    return nnx.merge_state(state["params"], state["batch_stats"], state["frozen"])


def restore_into(
    run: Run, mngr
) -> tuple[int | None, step_lib.State, list[checkpoints.DamagedCheckpointError]]:
    """The train state of the newest valid checkpoint, restored straight into
    the mesh's shardings and verified (``checkpoints.restore_newest_valid``).

    Returns:
      (step, state, damaged): ``step`` None and ``run.state`` when there is
      no checkpoint; ``damaged`` what was wrong with each newer step.

    Raises:
      checkpoints.CheckpointError: there are checkpoints and none is valid.
    """
    state = run.state
    abstract_model = checkpoints.abstract_like(model_state(state))
    abstract_train = checkpoints.abstract_like({k: state[k] for k in TRAIN_ITEM_FIELDS})
    step, restored_model, restored_train, damaged = checkpoints.restore_newest_valid(
        mngr, abstract_model, abstract_train
    )
    if step is None:
        return None, state, damaged
    params, batch_stats, frozen = nnx.split_state(restored_model, run.trainable, nnx.BatchStat, ...)
    restored = {
        **restored_train,
        "params": params,
        "batch_stats": batch_stats,
        "frozen": frozen,
        "guard": state["guard"],
    }
    return step, restored, damaged


def make_preview(run: Run) -> Callable:
    """Jitted stylization of a batch with the current parameters (for image grids).

    Batch norm runs as in the step (``run.forward``): early in training the
    moving averages lag far behind (decay 0.999) and would show nothing useful.
    """

    def preview(state, batch):
        model = nnx.merge(
            run.graphdef, state["params"], state["batch_stats"], state["frozen"], copy=True
        )
        with cpu_conv.kernels(run.config.train.cpu_conv_kernels):
            return run.forward(model, batch)

    return jax.jit(preview)


def maybe_evaluate(config, eval_fn, run: Run, state: step_lib.State, step: int, writer) -> None:
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


def recalibrate_batch_norm(run: Run, state: step_lib.State, batches: Iterator) -> step_lib.State:
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
        with cpu_conv.kernels(run.config.train.cpu_conv_kernels):
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
) -> tuple[step_lib.State, dict[str, float]]:
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
      step_lib.NonFiniteLossError: a loss term became NaN/Inf (the message names the
        step and the term; checkpoints written before it are kept).
      checkpoints.CheckpointError: no checkpoint of the workdir is valid, or
        a checkpoint could not be saved (the run stops at that step).
    """
    parallel.maybe_initialize_distributed()
    workdir = Path(workdir)
    config = resolve_config(config)
    is_chief = jax.process_index() == 0
    tc = config.train

    run = setup(config)
    mngr = checkpoints.manager(workdir, max_to_keep=tc.max_checkpoints_to_keep)
    try:
        latest, state, damaged = restore_into(run, mngr)
    except BaseException:
        mngr.close()
        raise
    start_step = 0 if latest is None else int(latest)
    if damaged:
        if is_chief:
            for error in damaged:
                path = checkpoints.step_path(mngr, error.step)
                moved = checkpoints.set_aside(mngr, error.step)
                log.warning(
                    "checkpoint %s is damaged (%s); moved to %s, resuming from step %d",
                    path,
                    error.reason,
                    moved,
                    latest,
                )
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("damaged checkpoints set aside")
        mngr.reload()
    if is_chief:
        checkpoints.save_config(config, workdir)
        # A run killed after its last checkpoint logged steps that this run
        # computes again: one row per step.
        _drop_rows_after(workdir / METRICS_FILE, start_step)
        record_missing = not (workdir / style_record.STYLE_RECORD).exists()
        if record_missing and not models.model_class(config.model).learns_style_space:
            # Which image each style row trains on, for stylize's output names
            # and contact sheets (inference/style_record.py).
            style_record.write_style_record(workdir, *data_lib.style_table_sources(config))
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
                step_lib.check_guard(state, run.term_names, last_saved)
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
                    step_lib.check_guard(state, run.term_names, last_saved)
                    state = recalibrate_batch_norm(run, state, batches)
                    say(
                        f"batch norm: after {tc.num_steps} steps the initial moving averages "
                        f"still weigh {stale:.0%}; replaced by the mean statistics of "
                        f"{tc.recalibrate_batch_norm_batches} training batches"
                    )
            if done % tc.checkpoint_every == 0 or last:
                step_lib.check_guard(state, run.term_names, last_saved)
                # Returns once the step is on disk, so that a failed write
                # stops the run here (checkpoints.manager says what it costs).
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
            step_lib.check_guard(state, run.term_names, last_saved)
    finally:
        mngr.close()
        writer.flush()
        writer.close()
    return state, last_metrics


def _drop_rows_after(path: Path, step: int) -> None:
    """Removes the rows of ``path`` (JSON lines) whose step is after ``step``."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
    if len(kept) == len(lines):
        return
    partial = path.with_name(path.name + ".tmp")
    partial.write_text("".join(kept))
    partial.replace(path)  # atomic: a kill now leaves the old file or the new one


def _append_jsonl(path: Path, record: Mapping[str, float]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def _gather(x: jax.Array) -> np.ndarray:
    """A global (possibly multi-host) array as one host numpy array."""
    if x.is_fully_addressable:
        return np.asarray(jax.device_get(x))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))

