"""Evaluation of a style model on observed and unobserved styles (docs/reference-model.md §5).

The paper's central claim (Ghiasi et al. 2017; its Figure 5): a model
trained on enough paintings stylizes paintings it never saw about as well as
the ones it trained on. ``evaluate`` measures it for one model:

* for each style set in ``config.eval.sets`` ('observed': the training styles,
  'unobserved': the held-out ones, both from ``data.style_set``), a fixed list
  of exactly ``config.eval.num_pairs`` (content, style) pairs (``pair_indices``);
* per pair, every term of ``losses.loss_breakdown`` (content, style per layer,
  total variation, weighted and unweighted, and the total) with the
  evaluation's loss weights (``config.eval``; the reference evaluation script
  weighs style 1e-3 per layer where training uses 0.5e-3), batch norm on its
  moving averages (``train=False``), as the reference evaluation does;
* written to ``<out_dir>``: ``observed.csv`` / ``unobserved.csv`` (one row per
  pair), ``summary.json`` (per set and term: mean, median, 10 % and 90 %
  quantiles, count; and unobserved / observed ratios of the means),
  ``losses.png`` (the distributions side by side) and ``samples.png``
  (content x unobserved style, plus a row of stylized uniform noise, which the
  reference also stylizes as a sanity image); scalars to TensorBoard under
  ``eval/``.

Exactness (style.md point 9): the pair list depends only on the config and
the data's stored order; batches have a fixed size and the last one is padded
with copies of the first pair, whose rows a mask drops, so every pair counts
exactly once and the program compiles once. The same inputs give the same
bytes: CSV and JSON are written with fixed formatting and key order.

``make_eval_fn`` adapts ``evaluate`` to the trainer's periodic hook
(``trainer.maybe_evaluate``, every ``config.train.eval_every`` steps).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from PIL import Image
from tqdm.auto import tqdm

from arbitrary_style import losses, models, weights
from arbitrary_style.evaluation import pairs as eval_pairs
from arbitrary_style.evaluation import report
from arbitrary_style.models import cpu_conv
from arbitrary_style.training import checkpoints, observe
from arbitrary_style.training.networks import build_loss_network

log = logging.getLogger(__name__)

EVAL_DIR = "eval"


def eval_loss_weights(config: ml_collections.ConfigDict) -> losses.LossWeights:
    # config.eval names its weights as config.loss does.
    return losses.LossWeights.from_config(config.eval)


# ---------------------------------------------------------------------------
# The jitted step


def _weights_key(w: losses.LossWeights):
    return (tuple(sorted(w.content.items())), tuple(sorted(w.style.items())), w.total_variation)


@functools.lru_cache(maxsize=8)
def _eval_step(graphdef, loss_graphdef, weights_key, cpu_conv_kernels: str) -> Callable:
    """Jitted (model_state, loss_state, content, style, style_id) -> (terms [B], stylized).

    Each pair's terms are ``losses.style_transfer_losses`` of that pair alone
    (vmapped over the batch), the training loss's own code. Cached by the
    graph definitions, so periodic evaluations compile once. Convolutions use
    the kernels the train step uses (``config.train.cpu_conv_kernels``).
    """
    content_w, style_w, tv_w = weights_key
    weights = losses.LossWeights(dict(content_w), dict(style_w), tv_w)

    def step(model_state, loss_state, content, style, style_id):
        with cpu_conv.kernels(cpu_conv_kernels):  # traced: see models/cpu_conv.py
            return kernels_step(model_state, loss_state, content, style, style_id)

    def kernels_step(model_state, loss_state, content, style, style_id):
        model = nnx.merge(graphdef, model_state)
        batch = {"content": content, "style": style, "style_id": style_id}
        stylized = model.stylize_batch(batch, train=False).astype(jnp.float32)
        vgg = nnx.merge(loss_graphdef, loss_state)

        def one_pair(content_image, style_image, stylized_image):
            return losses.style_transfer_losses(
                vgg,
                content_images=content_image[None],
                style_images=style_image[None],
                stylized_images=stylized_image[None],
                weights=weights,
            )

        terms = jax.vmap(one_pair)(content, style, stylized)
        return terms, stylized

    return jax.jit(step)


def _local_state(module: nnx.Module):
    """(graphdef, state) with the state on this process's first device.

    A model from the trainer is replicated over a mesh that may span hosts;
    every process then evaluates the whole (identical) pair list on one local
    device, so no collective is needed, and process 0 writes the files.
    """
    device = jax.local_devices()[0]

    def local(x):
        if not isinstance(x, jax.Array):
            return x
        if x.is_fully_addressable:
            return jax.device_put(x, device)
        if x.sharding.is_fully_replicated:  # this host holds a full copy
            return jax.device_put(x.addressable_data(0), device)
        return jax.device_put(multihost_utils.process_allgather(x, tiled=True), device)

    graphdef, state = nnx.split(module)
    return graphdef, jax.tree.map(local, state)


# ---------------------------------------------------------------------------
# Data of one evaluation (read once, reused by periodic evaluations)


# ---------------------------------------------------------------------------
# Evaluate


def evaluate(
    config: ml_collections.ConfigDict,
    model: nnx.Module,
    loss_network: models.VGG,
    *,
    step: int,
    out_dir: str | Path | None,
    writer=None,
    data: eval_pairs.EvalData | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluates ``model`` on the configured style sets and writes the results.

    Args:
      config: the run's config (``config.eval``, ``config.data``, ``config.seed``).
      model: an ArbitraryStyleModel or NStyleModel (not modified; batch norm
        uses its moving averages).
      loss_network: the frozen VGG (``build_loss_network(config)``).
      step: the checkpoint step (0 for published weights).
      out_dir: where the files go (callers pass ``<DIR>/eval/<step>``); None
        writes nothing (the summary is still returned).
      writer: an ``observe`` writer for TensorBoard scalars under ``eval/``
        (and the sample grid); None writes none.
      data: inputs read earlier (periodic evaluation); None reads them.
      progress: show a tqdm bar (process 0 only).

    Returns:
      The summary (what summary.json holds).
    """
    sets = eval_pairs.eval_sets(config, model)
    data = eval_pairs.EvalData(config, sets) if data is None else data
    e = config.eval
    batch_size = int(e.batch_size)
    weights = eval_loss_weights(config)
    graphdef, model_state = _local_state(model)
    loss_graphdef, loss_state = _local_state(loss_network)
    step_fn = _eval_step(
        graphdef, loss_graphdef, _weights_key(weights), config.train.cpu_conv_kernels
    )
    is_chief = jax.process_index() == 0

    plans = {which: eval_pairs.padded_batches(len(data.pairs[which]), batch_size) for which in sets}
    bar = tqdm(
        total=sum(len(p) for p in plans.values()),
        desc=f"eval step {step}",
        unit="batch",
        disable=not (progress and is_chief),
    )

    def score_batch(contents, styles, style_ids):
        return step_fn(model_state, loss_state, contents, styles, style_ids)

    per_pair: dict[str, dict[str, np.ndarray]] = {}
    with bar:
        for which in sets:
            pairs, styles = data.pairs[which], data.styles[which]
            on_device = []  # fetched once per set: no host sync per batch
            for idx, _ in plans[which]:
                bar.set_postfix_str(which)
                c, s = pairs[idx, 0], pairs[idx, 1]
                terms, _ = score_batch(data.contents[c], styles[s], s.astype(np.int32))
                on_device.append(terms)
                bar.update(1)
            collected: dict[str, list[np.ndarray]] = {}
            for terms, (_, mask) in zip(jax.device_get(on_device), plans[which], strict=True):
                for name, value in terms.items():
                    collected.setdefault(name, []).append(np.asarray(value, np.float32)[mask])
            per_pair[which] = {k: np.concatenate(v) for k, v in sorted(collected.items())}

    summary = report.summarize(per_pair, step=step, weights=weights, num_pairs=data.num_pairs)
    grid = None
    if is_chief and (out_dir is not None or writer is not None):
        grid = report.sample_grid(config, data, score_batch, sets, batch_size)
    if is_chief and out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for which in sets:
            report.write_csv(out / f"{which}.csv", data, which, per_pair[which])
        (out / report.SUMMARY_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        report.plot_losses(out / report.LOSSES_PLOT, per_pair, title=f"step {step}")
        Image.fromarray(grid).save(out / report.SAMPLES_IMAGE)
    if writer is not None:
        writer.scalars(step, {f"eval/{k}": v for k, v in report.summary_scalars(summary).items()})
        if grid is not None:
            writer.image(step, "eval/samples", grid[None])
        writer.flush()
    return summary


# ---------------------------------------------------------------------------
# Files


# ---------------------------------------------------------------------------
# What to evaluate: a workdir's checkpoint or published weights


@dataclasses.dataclass
class ModelToEvaluate:
    name: str
    model: nnx.Module
    config: ml_collections.ConfigDict  # data, loss network and config.eval
    step: int
    default_root: Path  # <DIR> of <DIR>/eval/<step>


def model_to_evaluate(
    *,
    workdir: str | None = None,
    step: int | None = None,
    pretrained: str | None = None,
    magenta_checkpoint: str | None = None,
    config: ml_collections.ConfigDict | None = None,
) -> ModelToEvaluate:
    """Resolves the command line's choice of model (exactly one of workdir,
    pretrained, magenta_checkpoint) into a model, its config and its step.

    Raises:
      FileNotFoundError: a missing or empty workdir, or no checkpoint (at that step).
      ValueError: not exactly one model source, or published weights without a config.
    """
    chosen = [n for n, v in (("--workdir", workdir), ("--pretrained", pretrained),
                             ("--magenta_checkpoint", magenta_checkpoint)) if v]
    if len(chosen) != 1:
        raise eval_pairs.EvaluationInputError(
            "give exactly one of --workdir, --pretrained, --magenta_checkpoint"
            + (f" (got {', '.join(chosen)})" if chosen else "")
        )
    if workdir:
        path = Path(workdir)
        if not path.is_dir():
            raise FileNotFoundError(f"workdir {workdir} does not exist")
        if not any(path.iterdir()):
            raise FileNotFoundError(
                f"workdir {workdir} is empty: no {checkpoints.CONFIG_FILE} and no "
                f"{checkpoints.CHECKPOINT_DIR}/ (train into it with "
                "python -m arbitrary_style.train)"
            )
        if not (path / checkpoints.CHECKPOINT_DIR).is_dir():
            raise FileNotFoundError(
                f"workdir {workdir} has no {checkpoints.CHECKPOINT_DIR}/ directory: no checkpoint "
                "was saved there yet"
            )
        run_config, model = checkpoints.restore_model(path, step)
        if step is None:
            step = _latest_step(path)
        if config is None:
            config = run_config
        elif config.model.to_dict() != run_config.model.to_dict():
            log.warning(
                "--config's model section differs from %s/%s; the model is built from the "
                "workdir's", workdir, checkpoints.CONFIG_FILE,
            )
        return ModelToEvaluate(f"{workdir}", model, config, int(step), path)
    if config is None:
        raise eval_pairs.EvaluationInputError(
            "--config is required with --pretrained / --magenta_checkpoint: it names the data, "
            "the loss network and config.eval (e.g. --config=configs/demo.py)"
        )
    if pretrained:
        model, name = weights.load_pretrained(pretrained), pretrained
    else:
        model, _ = weights.load_magenta_checkpoint(magenta_checkpoint)
        name = f"magenta checkpoint {magenta_checkpoint}"
    root_name = pretrained or "magenta-checkpoint"
    return ModelToEvaluate(name, model, config, 0, Path("workdirs") / f"eval-{root_name}")


def run(
    *,
    workdir: str | None = None,
    step: int | None = None,
    pretrained: str | None = None,
    magenta_checkpoint: str | None = None,
    config: ml_collections.ConfigDict | None = None,
    output: str | None = None,
    progress: bool = True,
) -> tuple[dict[str, Any], Path]:
    """What ``python -m arbitrary_style.eval`` does (flags as arguments).

    Returns:
      (summary, the directory the files went to).
    """
    source = model_to_evaluate(
        workdir=workdir,
        step=step,
        pretrained=pretrained,
        magenta_checkpoint=magenta_checkpoint,
        config=config,
    )
    root = Path(output) if output else source.default_root
    out_dir = step_dir(root, source.step)
    observe.log(f"evaluating {source.name} (step {source.step}) -> {out_dir}")
    loss_network = build_loss_network(source.config)
    writer = observe.make_writer(root, enabled=True, is_chief=jax.process_index() == 0)
    try:
        summary = evaluate(
            source.config,
            source.model,
            loss_network,
            step=source.step,
            out_dir=out_dir,
            writer=writer,
            progress=progress,
        )
    finally:
        writer.close()
    observe.log("mean loss per pair:\n" + report.format_summary(summary))
    observe.log(f"wrote {out_dir}")
    return summary, out_dir


def _latest_step(workdir: Path) -> int:
    mngr = checkpoints.manager(workdir)
    try:
        return int(mngr.latest_step())
    finally:
        mngr.close()


# ---------------------------------------------------------------------------
# Periodic evaluation during training


def step_dir(root: str | Path, step: int) -> Path:
    """``<root>/eval/<step>``: where one evaluation's files go."""
    return Path(root) / EVAL_DIR / str(int(step))


def make_eval_fn(
    config: ml_collections.ConfigDict,
    workdir: str | Path,
    *,
    loss_network: models.VGG | None = None,
) -> Callable[[nnx.Module, int], dict[str, float]]:
    """``eval_fn(model, step) -> {name: scalar}`` for ``trainer.train_and_evaluate``.

    Writes ``<workdir>/eval/<step>/`` like the command line does and returns
    the scalars that the trainer's hook logs under ``eval/``. Inputs and the
    loss network are prepared once, on the first call.
    """
    state: dict[str, Any] = {"loss_network": loss_network}

    def eval_fn(model: nnx.Module, step: int) -> dict[str, float]:
        if state.get("data") is None:
            state["data"] = eval_pairs.EvalData(config, eval_pairs.eval_sets(config, model))
        if state["loss_network"] is None:
            state["loss_network"] = build_loss_network(config)
        summary = evaluate(
            config,
            model,
            state["loss_network"],
            step=step,
            out_dir=step_dir(workdir, step),
            writer=None,  # the trainer's hook writes the returned scalars
            data=state["data"],
        )
        return report.summary_scalars(summary)

    return eval_fn


