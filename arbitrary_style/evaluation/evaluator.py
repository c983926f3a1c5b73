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

import csv
import dataclasses
import functools
import io
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from arbitrary_style import losses, models
from arbitrary_style.training.trainer import build_loss_network

log = logging.getLogger(__name__)

SETS = ("observed", "unobserved")
SUMMARY_FILE = "summary.json"
LOSSES_PLOT = "losses.png"
SAMPLES_IMAGE = "samples.png"
EVAL_DIR = "eval"
# Quantiles reported per term, besides the mean and the median.
QUANTILES = (0.1, 0.9)


class EvaluationInputError(ValueError):
    """The evaluation cannot run as configured (too few images, a bad set name)."""


# ---------------------------------------------------------------------------
# Config


def eval_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """``config.eval``, or the defaults of ``base_config`` for configs saved
    before the section existed (a workdir's config.json of an older run)."""
    if "eval" in config:
        return config.eval
    from arbitrary_style.config import base_config

    _warn_once(
        "the config has no eval section (a config.json saved before it existed): using "
        "base_config()'s; pass --config=configs/<experiment>.py to use the experiment's"
    )
    return base_config().eval


@functools.cache
def _warn_once(message: str) -> None:
    log.warning(message)


def eval_loss_weights(config: ml_collections.ConfigDict) -> losses.LossWeights:
    # config.eval names its weights as config.loss does.
    return losses.LossWeights.from_config(eval_config(config))


def eval_sets(
    config: ml_collections.ConfigDict, model: nnx.Module | None = None
) -> tuple[str, ...]:
    sets = tuple(eval_config(config).sets)
    unknown = [s for s in sets if s not in SETS]
    if not sets or unknown:
        raise EvaluationInputError(
            f"config.eval.sets={sets!r}: each entry must be one of {', '.join(SETS)}"
        )
    if model is not None and not model.learns_style_space and "unobserved" in sets:
        raise EvaluationInputError(
            "an N-style model has one table row per training style and cannot stylize "
            "unobserved styles; set config.eval.sets=('observed',)"
        )
    return sets


# ---------------------------------------------------------------------------
# Inputs: content photos, style sets, the pair list


def content_set(config: ml_collections.ConfigDict, count: int) -> tuple[np.ndarray, list[str]]:
    """The first ``count`` readable content images of the held-out content split.

    Same preprocessing as training content (shorter side S+2, centre crop S;
    docs/reference-model.md §4). Sources in config order, each in its stored order;
    ``count`` is split over the sources by their mixing weights.

    Returns:
      (float32 [count, S, S, 3] in [0, 1], an id per image).

    Raises:
      EvaluationInputError: the sources hold fewer readable images.
    """
    from arbitrary_style.data import pipeline

    # 'heldout': ImageNet's validation split for the paper's config (photos
    # the model never trained on); folder and demo sources have one set.
    images, ids = pipeline.ordered_images(config, "content", "heldout", count)
    if len(images) < count:
        raise EvaluationInputError(
            f"config.eval.num_contents asks for {count} content images but the content "
            f"sources {tuple(config.data.content_sources)} (held-out split) have only "
            f"{len(images)} readable images"
        )
    return pipeline.center_images(images[:count], int(config.data.image_size)), ids[:count]


def style_images(config: ml_collections.ConfigDict, which: str) -> tuple[np.ndarray, list[str]]:
    """The style set ``which`` ('observed' | 'unobserved'), exactly as many as asked.

    ``config.eval.num_styles`` > 0 asks for that many (and raises when the set
    has fewer); 0 takes what ``data.style_set`` gives (at most
    ``config.data.eval_num_styles``). Ids are '<set>/<index in the set>'; for
    an N-style model the observed index is the style id.
    """
    from arbitrary_style.data import style_set

    wanted = int(eval_config(config).num_styles)
    images = style_set(config, which, limit=wanted if wanted > 0 else None)  # float32
    split = "training" if which == "observed" else "held-out"
    if len(images) == 0 or len(images) < wanted:
        raise EvaluationInputError(
            f"the {which} style set ({split} styles of {tuple(config.data.style_sources)}) has "
            f"{len(images)} readable images; config.eval.num_styles asks for "
            f"{wanted if wanted else 'at least 1'}"
        )
    if wanted > 0:
        images = images[:wanted]
    return images, [f"{which}/{i:04d}" for i in range(len(images))]


def pair_indices(num_pairs: int, num_contents: int, num_styles: int) -> np.ndarray:
    """A fixed list of distinct (content, style) index pairs, int [num_pairs, 2].

    Pair k is (k mod C, (k + k // L) mod S) with L = lcm(C, S): consecutive
    pairs walk all contents and all styles together, and the shift every L
    pairs moves to the next of the gcd(C, S) residue classes, so the first
    C * S pairs are all distinct and every content and style is used as evenly
    as the count allows.

    Raises:
      EvaluationInputError: more pairs asked than C * S distinct ones.
    """
    if num_pairs < 1:
        raise EvaluationInputError(f"config.eval.num_pairs must be >= 1, got {num_pairs}")
    if num_pairs > num_contents * num_styles:
        raise EvaluationInputError(
            f"config.eval.num_pairs={num_pairs} exceeds the {num_contents * num_styles} distinct "
            f"(content, style) pairs of {num_contents} contents x {num_styles} styles"
        )
    k = np.arange(num_pairs, dtype=np.int64)
    period = math.lcm(num_contents, num_styles)
    return np.stack([k % num_contents, (k + k // period) % num_styles], axis=1)


def padded_batches(num_items: int, batch_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(indices [batch_size], mask [batch_size]) per batch; the last is padded
    with index 0 and mask False, so nothing is dropped and shapes are fixed."""
    out = []
    for start in range(0, num_items, batch_size):
        idx = np.arange(start, min(start + batch_size, num_items))
        mask = np.ones(batch_size, bool)
        mask[len(idx) :] = False
        out.append((np.concatenate([idx, np.zeros(batch_size - len(idx), idx.dtype)]), mask))
    return out


# ---------------------------------------------------------------------------
# The jitted step


def _weights_key(w: losses.LossWeights):
    return (tuple(sorted(w.content.items())), tuple(sorted(w.style.items())), w.total_variation)


@functools.lru_cache(maxsize=8)
def _eval_step(graphdef, loss_graphdef, weights_key) -> Callable:
    """Jitted (model_state, loss_state, content, style, style_id) -> (terms [B], stylized).

    Each pair's terms are ``losses.style_transfer_losses`` of that pair alone
    (vmapped over the batch), the training loss's own code. Cached by the
    graph definitions, so periodic evaluations compile once.
    """
    content_w, style_w, tv_w = weights_key
    weights = losses.LossWeights(dict(content_w), dict(style_w), tv_w)

    def step(model_state, loss_state, content, style, style_id):
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
        from jax.experimental import multihost_utils

        return jax.device_put(multihost_utils.process_allgather(x, tiled=True), device)

    graphdef, state = nnx.split(module)
    return graphdef, jax.tree.map(local, state)


# ---------------------------------------------------------------------------
# Data of one evaluation (read once, reused by periodic evaluations)


class EvalData:
    """Content images, style sets and pair lists of ``config`` (deterministic)."""

    def __init__(self, config: ml_collections.ConfigDict, sets: Sequence[str]):
        e = eval_config(config)
        self.num_pairs = int(e.num_pairs)
        if int(e.batch_size) < 1:
            raise EvaluationInputError(f"config.eval.batch_size must be >= 1, got {e.batch_size}")
        num_contents = int(e.num_contents) or self.num_pairs
        self.contents, self.content_ids = content_set(config, num_contents)
        self.styles: dict[str, np.ndarray] = {}
        self.style_ids: dict[str, list[str]] = {}
        self.pairs: dict[str, np.ndarray] = {}
        for which in sets:
            self.styles[which], self.style_ids[which] = style_images(config, which)
            try:
                self.pairs[which] = pair_indices(
                    self.num_pairs, len(self.contents), len(self.styles[which])
                )
            except EvaluationInputError as err:
                raise EvaluationInputError(f"{which} set: {err}") from None
        rng = np.random.default_rng([int(config.seed), 20170530])
        # Uniform noise content (the reference's sanity image).
        self.noise = rng.random(self.contents.shape[1:], dtype=np.float32)


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
    data: EvalData | None = None,
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
    sets = eval_sets(config, model)
    data = EvalData(config, sets) if data is None else data
    e = eval_config(config)
    batch_size = int(e.batch_size)
    weights = eval_loss_weights(config)
    graphdef, model_state = _local_state(model)
    loss_graphdef, loss_state = _local_state(loss_network)
    step_fn = _eval_step(graphdef, loss_graphdef, _weights_key(weights))
    is_chief = jax.process_index() == 0

    from tqdm.auto import tqdm

    plans = {which: padded_batches(len(data.pairs[which]), batch_size) for which in sets}
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
            for idx, mask in plans[which]:
                bar.set_postfix_str(which)
                c, s = pairs[idx, 0], pairs[idx, 1]
                terms, _ = score_batch(data.contents[c], styles[s], s.astype(np.int32))
                on_device.append(terms)
                bar.update(1)
            collected: dict[str, list[np.ndarray]] = {}
            for terms, (_, mask) in zip(jax.device_get(on_device), plans[which]):
                for name, value in terms.items():
                    collected.setdefault(name, []).append(np.asarray(value, np.float32)[mask])
            per_pair[which] = {k: np.concatenate(v) for k, v in sorted(collected.items())}

    summary = summarize(per_pair, step=step, weights=weights, num_pairs=data.num_pairs)
    grid = None
    if is_chief and (out_dir is not None or writer is not None):
        grid = sample_grid(config, data, score_batch, sets, batch_size)
    if is_chief and out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for which in sets:
            write_csv(out / f"{which}.csv", data, which, per_pair[which])
        (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        plot_losses(out / LOSSES_PLOT, per_pair, title=f"step {step}")
        from PIL import Image

        Image.fromarray(grid).save(out / SAMPLES_IMAGE)
    if writer is not None:
        writer.scalars(step, {f"eval/{k}": v for k, v in summary_scalars(summary).items()})
        if grid is not None:
            writer.image(step, "eval/samples", grid[None])
        writer.flush()
    return summary


def summarize(
    per_pair: Mapping[str, Mapping[str, np.ndarray]],
    *,
    step: int,
    weights: losses.LossWeights,
    num_pairs: int,
) -> dict[str, Any]:
    """Per set and term: mean, median, q10, q90, count; unobserved/observed ratios."""

    def number(x) -> float | None:
        x = float(x)
        return x if math.isfinite(x) else None

    summary: dict[str, Any] = {
        "step": int(step),
        "num_pairs": int(num_pairs),
        "loss_weights": {
            "content": dict(sorted(weights.content.items())),
            "style": dict(sorted(weights.style.items())),
            "total_variation": weights.total_variation,
        },
        "sets": {},
    }
    for which, terms in per_pair.items():
        stats = {}
        for name, values in terms.items():
            v = np.asarray(values, np.float64)
            stats[name] = {
                "mean": number(v.mean()),
                "median": number(np.median(v)),
                "q10": number(np.quantile(v, QUANTILES[0])),
                "q90": number(np.quantile(v, QUANTILES[1])),
                "count": int(v.size),
            }
        summary["sets"][which] = stats
    if set(SETS) <= set(per_pair):
        ratios = {}
        for name, obs in summary["sets"]["observed"].items():
            o = obs["mean"]
            u = summary["sets"]["unobserved"][name]["mean"]
            ratios[name] = number(u / o) if o and u is not None else None
        summary["unobserved_over_observed"] = ratios
    return summary


def summary_scalars(summary: Mapping[str, Any]) -> dict[str, float]:
    """Flat {'<set>/<term>': mean, 'unobserved_over_observed/<term>': ratio}
    (TensorBoard names without the 'eval/' prefix)."""
    out = {}
    for which, stats in summary["sets"].items():
        for name, s in stats.items():
            if s["mean"] is not None:
                out[f"{which}/{name}"] = s["mean"]
    for name, r in summary.get("unobserved_over_observed", {}).items():
        if r is not None:
            out[f"unobserved_over_observed/{name}"] = r
    return out


# ---------------------------------------------------------------------------
# Files


def write_csv(path: Path, data: EvalData, which: str, terms: Mapping[str, np.ndarray]) -> None:
    """One row per pair: pair index, content id, style id, every term (%.9g:
    float32 values round-trip exactly)."""
    names = sorted(terms)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["pair", "content_id", "style_id", *names])
    pairs = data.pairs[which]
    for k, (c, s) in enumerate(pairs):
        w.writerow(
            [k, data.content_ids[c], data.style_ids[which][s]]
            + [f"{float(terms[n][k]):.9g}" for n in names]
        )
    path.write_text(buf.getvalue())


def plotted_terms(names: Sequence[str]) -> list[str]:
    """Unweighted terms, then the weighted sums and the total (the weighted
    per-layer terms are the unweighted ones times a constant)."""
    raw = [n for n in names if not n.startswith("weighted/") and n != "total"]
    sums = [
        n for n in ("weighted/content", "weighted/style", "weighted/total_variation") if n in names
    ]
    return raw + sums + (["total"] if "total" in names else [])


def plot_losses(
    path: Path, per_pair: Mapping[str, Mapping[str, np.ndarray]], *, title: str
) -> None:
    """Box plots with every pair drawn as a point, one panel per term,
    observed and unobserved side by side (log scale where all values > 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(per_pair)
    names = plotted_terms(sorted(next(iter(per_pair.values()))))
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    colours = {"observed": "tab:blue", "unobserved": "tab:orange"}
    rng = np.random.default_rng(0)  # fixed jitter: the same picture every run
    for ax, name in zip(axes.flat, names):
        values = [np.asarray(per_pair[s][name], np.float64) for s in sets]
        ax.boxplot(values, tick_labels=sets, showfliers=False, widths=0.5)
        for i, (s, v) in enumerate(zip(sets, values)):
            x = i + 1 + rng.uniform(-0.15, 0.15, v.size)
            ax.scatter(x, v, s=6, alpha=0.5, color=colours.get(s, "gray"))
        if all(v.size and np.all(v > 0) for v in values):
            ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle(f"Evaluation losses per (content, style) pair, {title}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80, metadata={"Software": None})
    plt.close(fig)


def sample_grid(
    config, data: EvalData, score_batch: Callable, sets: Sequence[str], batch_size: int
) -> np.ndarray:
    """uint8 grid: first row the styles, then one row per content (first
    column the content) and a last row of stylized uniform noise.

    Unobserved styles when evaluated (observed otherwise). Goes through the
    evaluation's own jitted step (same batch size: nothing new to compile).
    """
    from arbitrary_style.training import observe

    e = eval_config(config)
    which = "unobserved" if "unobserved" in sets else sets[0]
    styles = data.styles[which][: max(1, int(e.sample_styles))]
    contents = np.concatenate(
        [data.contents[: max(1, int(e.sample_contents))], data.noise[None]]
    )
    cs = np.array([(c, s) for c in range(len(contents)) for s in range(len(styles))])
    out = np.zeros((len(cs), *contents.shape[1:]), np.float32)
    for idx, mask in padded_batches(len(cs), batch_size):
        c, s = cs[idx, 0], cs[idx, 1]
        _, stylized = score_batch(contents[c], styles[s], s.astype(np.int32))
        stylized = np.asarray(jax.device_get(stylized), np.float32)
        out[idx[mask]] = stylized[mask][:, : contents.shape[1], : contents.shape[2]]
    # Column 0: a blank cell, then the contents; column j + 1: style j, then
    # its stylized contents. Cells are the contents' size: styles are cropped
    # to it, or padded with the background (ones).
    size_h, size_w = contents.shape[1:3]
    fitted = np.ones((len(styles), *contents.shape[1:]), np.float32)
    crop = styles[:, :size_h, :size_w]
    fitted[:, : crop.shape[1], : crop.shape[2]] = crop
    stylized = out.reshape(len(contents), len(styles), *out.shape[1:])
    columns = [np.concatenate([np.ones_like(fitted[:1]), contents])] + [
        np.concatenate([fitted[j : j + 1], stylized[:, j]]) for j in range(len(styles))
    ]
    return observe.image_grid(columns, pad=2)


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
        raise EvaluationInputError(
            "give exactly one of --workdir, --pretrained, --magenta_checkpoint"
            + (f" (got {', '.join(chosen)})" if chosen else "")
        )
    if workdir:
        from arbitrary_style.training import checkpoints

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
        raise EvaluationInputError(
            "--config is required with --pretrained / --magenta_checkpoint: it names the data, "
            "the loss network and config.eval (e.g. --config=configs/demo.py)"
        )
    from arbitrary_style import weights

    if pretrained == "magenta-lite":
        model, _ = weights.load_lite_model()
        name = "magenta-lite"
    elif pretrained == "magenta":
        model, _ = weights.load_magenta_checkpoint(weights.resolve("arbitrary_style_transfer"))
        name = "magenta"
    elif pretrained:
        raise ValueError(f"unknown pretrained model {pretrained!r}; known: magenta, magenta-lite")
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
    from arbitrary_style.training import observe

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
    observe.log("mean loss per pair:\n" + format_summary(summary))
    observe.log(f"wrote {out_dir}")
    return summary, out_dir


def _latest_step(workdir: Path) -> int:
    from arbitrary_style.training import checkpoints

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
            state["data"] = EvalData(config, eval_sets(config, model))
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
        return summary_scalars(summary)

    return eval_fn


def format_summary(summary: Mapping[str, Any]) -> str:
    """A table of the means per term and set, with the ratio, for the console."""
    sets = list(summary["sets"])
    names = sorted(next(iter(summary["sets"].values())))
    ratios = summary.get("unobserved_over_observed", {})
    width = max(len(n) for n in names)
    head = f"  {'term':<{width}}  " + "  ".join(f"{s:>12}" for s in sets)
    head += "  unobs/obs" if ratios else ""
    lines = [head]
    for n in names:
        row = f"  {n:<{width}}  " + "  ".join(
            f"{summary['sets'][s][n]['mean']:>12.5g}" if summary["sets"][s][n]["mean"] is not None
            else f"{'nan':>12}"
            for s in sets
        )
        if ratios:
            r = ratios.get(n)
            row += f"  {r:9.3f}" if r is not None else f"  {'-':>9}"
        lines.append(row)
    return "\n".join(lines)
