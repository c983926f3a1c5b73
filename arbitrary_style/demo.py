r"""``make demo``: train configs/demo.py on the embedded data, then score and draw held-out styles.

    python -m arbitrary_style.demo --workdir=workdirs/demo

Trains (or resumes) the demo config in the workdir, then stylizes every demo
photo with every held-out demo style (styles the model never saw in
training) with the model at the start of training and the trained one, and
writes

* ``heldout_grid.png`` and ``heldout_grid_start.png``: the grids (rows:
  photos; columns: held-out styles);
* ``heldout_scores.json``: the content and style scores
  (``arbitrary_style.evaluation.scorer``) of the identity, the start and the trained
  model, averaged over the pairs.

It ends with the wall time, the first and last logged loss breakdown and the
scores table.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags
from PIL import Image

from arbitrary_style import compilation_cache, losses
from arbitrary_style.training import checkpoints, trainer
from arbitrary_style.evaluation import scorer
from arbitrary_style.data import demo as demo_data
from arbitrary_style.training import observe

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/demo.py", "Config file (default: configs/demo.py).", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", "workdirs/demo", "Training workdir.")

GRID_FILE = "heldout_grid.png"
START_GRID_FILE = "heldout_grid_start.png"
SCORES_FILE = "heldout_scores.json"


@dataclasses.dataclass(frozen=True)
class HeldOut:
    """The demo's held-out pairs: every content photo with every unseen style."""

    contents: np.ndarray  # [N, S, S, 3] float in [0, 1]
    styles: np.ndarray  # [M, S, S, 3]

    @classmethod
    def at(cls, size: int) -> HeldOut:
        return cls(
            contents=np.stack([demo_data.square(x, size) for x in demo_data.content_images()]),
            styles=np.stack([demo_data.square(x, size) for x in demo_data.style_images("heldout")]),
        )

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(photos, styles) of every pair, in ``observe.stylize_pairs``' order flattened."""
        photos = np.tile(self.contents, (len(self.styles), 1, 1, 1))
        styles = np.repeat(self.styles, len(self.contents), axis=0)
        return photos, styles


def start_description(config) -> str:
    """What the run started from, in words."""
    if config.weights.get("model_init", ""):
        return f"start ({config.weights.model_init} weights)"
    return "start (random init)"


def write_heldout_results(workdir: str | Path) -> dict[str, dict[str, float]]:
    """Stylizes the held-out pairs with the start and the trained model;
    writes ``GRID_FILE`` and ``START_GRID_FILE``; returns the scores of the
    identity (the photo itself), the start and the trained model."""
    config, trained = checkpoints.restore_model(workdir)
    held_out = HeldOut.at(config.data.image_size)
    start, loss_network = trainer.build_networks(config)
    photos, styles = held_out.pairs()
    style_scorer = scorer.StyleScorer(loss_network, photos, styles)

    def score(stylized):
        flat = stylized.reshape(photos.shape)
        return scorer.summarize(scorer.content_scores(photos, flat), style_scorer(flat))

    results = {"identity (the photo itself)": score(photos)}
    for name, model, file in (
        (start_description(config), start, START_GRID_FILE),
        ("trained", trained, GRID_FILE),
    ):
        stylized = observe.stylize_pairs(model, held_out.contents, held_out.styles)
        Image.fromarray(observe.pairs_grid(held_out.contents, held_out.styles, stylized)).save(
            Path(workdir) / file
        )
        results[name] = score(stylized)
    return results


def format_scores(results: dict[str, dict[str, float]]) -> str:
    width = max(len(k) for k in results)
    lines = [f"  {'':<{width}}  content score  style score"]
    for name, values in results.items():
        lines.append(
            f"  {name:<{width}}  {values['content_score']:13.3f}  {values['style_score']:11.3f}"
        )
    return "\n".join(lines)


def first_and_last_metrics(workdir: str | Path) -> tuple[dict, dict]:
    """The first and the last log window's mean losses.

    The trainer also logs its very first step alone (step 1, right after
    compiling); the first *window* is the record after it.
    """
    records = [json.loads(x) for x in (Path(workdir) / trainer.METRICS_FILE).read_text().splitlines()]
    first = records[1] if len(records) > 2 and records[0]["step"] == 1 else records[0]
    return first, records[-1]


def loss_only(record: dict) -> dict:
    return {k: v for k, v in record.items() if k.startswith(("content", "style", "total", "weighted"))}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        # The demo's own lines go to stdout; the libraries' INFO records
        # (orbax's checkpoint bookkeeping, about 40 lines) would bury them.
        logging.set_verbosity(logging.WARNING)
    compilation_cache.enable()
    start = time.perf_counter()
    workdir = Path(_WORKDIR.value)
    trainer.train_and_evaluate(_CONFIG.value, workdir)
    trained = time.perf_counter()
    results = write_heldout_results(workdir)
    end = time.perf_counter()
    first, last = first_and_last_metrics(workdir)
    say = observe.log
    say("")
    say(f"demo finished in {observe.format_seconds(end - start)} wall time "
        f"(training {observe.format_seconds(trained - start)}, grids and scores {end - trained:.0f}s)")
    for name, record in (("first", first), ("last", last)):
        say(
            f"{name} logged loss breakdown (mean over the steps up to step {record['step']}):\n"
            f"{losses.format_breakdown(loss_only(record))}"
        )
    say(
        "held-out pairs (every demo photo with every unseen style); content score: edge "
        "correlation with the photo; style score: share of the Gram distance to the style "
        "closed (arbitrary_style/evaluation/scorer.py):\n" + format_scores(results)
    )
    (workdir / SCORES_FILE).write_text(json.dumps(results, indent=2) + "\n")
    say(f"held-out grid (rows: content photos; columns: unseen styles): {workdir / GRID_FILE}")
    say(f"the same grid from the start of training: {workdir / START_GRID_FILE}")


if __name__ == "__main__":
    app.run(main)
