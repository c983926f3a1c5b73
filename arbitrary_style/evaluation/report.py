"""What an evaluation writes: per-pair CSV rows, the summary (JSON and
TensorBoard scalars), the loss distributions plot and the sample grid.

The same inputs give the same bytes: CSV and JSON are written with fixed
formatting and key order.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from arbitrary_style import losses
from arbitrary_style.evaluation.pairs import SETS, EvalData, padded_batches
from arbitrary_style.training import observe

SUMMARY_FILE = "summary.json"



LOSSES_PLOT = "losses.png"



SAMPLES_IMAGE = "samples.png"



# Quantiles reported per term, besides the mean and the median.
QUANTILES = (0.1, 0.9)



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
    # Deferred: matplotlib takes 1.6 s to import and only the plots need it;
    # the file backend is chosen before pyplot loads.
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    sets = list(per_pair)
    names = plotted_terms(sorted(next(iter(per_pair.values()))))
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    colours = {"observed": "tab:blue", "unobserved": "tab:orange"}
    rng = np.random.default_rng(0)  # fixed jitter: the same picture every run
    # The grid may have more panels than terms; the spare ones are hidden below.
    for ax, name in zip(axes.flat, names, strict=False):
        values = [np.asarray(per_pair[s][name], np.float64) for s in sets]
        ax.boxplot(values, tick_labels=sets, showfliers=False, widths=0.5)
        for i, (s, v) in enumerate(zip(sets, values, strict=True)):
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
    e = config.eval
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
