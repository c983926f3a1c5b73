r"""``make demo``: train configs/demo.py on the embedded data, then score and draw held-out styles.

    python -m arbitrary_style.demo --workdir=workdirs/demo

Trains (or resumes) the demo config in the workdir, then stylizes every demo
photo with every held-out demo style (styles the model never saw in
training) with the model at the start of training and the trained one, and
writes

* ``heldout_grid.png`` and ``heldout_grid_start.png``: the grids (rows:
  photos; columns: held-out styles);
* ``heldout_scores.json``: the content and style scores
  (``arbitrary_style.evaluation.scorer``; the pairs and grids are
  ``arbitrary_style.evaluation.heldout``) of the identity, the start and the trained
  model, averaged over the pairs.

It ends with the wall time, the first and last logged loss breakdown and the
scores table.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from absl import app, flags, logging
from ml_collections import config_flags

from arbitrary_style import compilation_cache, losses
from arbitrary_style.evaluation import heldout
from arbitrary_style.training import observe, trainer

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/demo.py", "Config file (default: configs/demo.py).", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", "workdirs/demo", "Training workdir.")


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
    results = heldout.write_heldout_results(workdir)
    end = time.perf_counter()
    first, last = heldout.first_and_last_metrics(workdir)
    say = observe.log
    say("")
    say(f"demo finished in {observe.format_seconds(end - start)} wall time "
        f"(training {observe.format_seconds(trained - start)}, grids and scores {end - trained:.0f}s)")
    for name, record in (("first", first), ("last", last)):
        say(
            f"{name} logged loss breakdown (mean over the steps up to step {record['step']}):\n"
            f"{losses.format_breakdown(heldout.loss_only(record))}"
        )
    say(
        "held-out pairs (every demo photo with every unseen style); content score: edge "
        "correlation with the photo; style score: share of the Gram distance to the style "
        "closed (arbitrary_style/evaluation/scorer.py):\n" + heldout.format_scores(results)
    )
    (workdir / heldout.SCORES_FILE).write_text(json.dumps(results, indent=2) + "\n")
    say(f"held-out grid (rows: content photos; columns: unseen styles): {workdir / heldout.GRID_FILE}")
    say(f"the same grid from the start of training: {workdir / heldout.START_GRID_FILE}")


if __name__ == "__main__":
    app.run(main)
