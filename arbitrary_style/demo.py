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

from absl import flags
from ml_collections import config_flags

# command_line first: it quiets the native logs before JAX loads.
from arbitrary_style import command_line, compilation_cache, losses, preflight
from arbitrary_style.command_line import UsageError
from arbitrary_style.evaluation import heldout
from arbitrary_style.training import observe, trainer

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/demo.py", "Config file (default: configs/demo.py).", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", "workdirs/demo", "Training workdir.")


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}, demo takes only flags")
    # The demo's own lines go to stdout; the libraries' INFO records are off
    # unless --verbose (command_line.configure_logging).
    compilation_cache.enable()
    config = command_line.config_value(_CONFIG)
    preflight.validate_config(config)
    workdir = preflight.check_workdir(_WORKDIR.value)
    start = time.perf_counter()
    trainer.train_and_evaluate(config, workdir)
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
    command_line.run_main(main)
