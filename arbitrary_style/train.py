r"""Trains a style model: flags, then ``trainer.train_and_evaluate``.

    python -m arbitrary_style.train --config=configs/pbn_dtd.py --workdir=DIR
    python -m arbitrary_style.train --config=configs/demo.py:smoke --workdir=DIR \
        --config.train.num_steps=10

The run resumes from DIR's latest checkpoint when there is one. Multi-host:
set ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``
on every host (or run under a cluster manager JAX detects); every host then
reads its own share of each batch.

The config and the workdir are checked before anything is built
(``arbitrary_style.preflight``); a bad one ends in one ``error: ...`` line
and exit status 2 (``--verbose`` shows the traceback and the library logs).

Compiled programs are kept in JAX's persistent compilation cache
(``arbitrary_style.compilation_cache``; ``ARBITRARY_STYLE_COMPILATION_CACHE=off``
turns it off), so a restarted or repeated run skips most of its compile time.
"""

from __future__ import annotations

from absl import flags
from ml_collections import config_flags

# command_line first: it quiets the native logs before JAX loads.
from arbitrary_style import command_line, compilation_cache, preflight
from arbitrary_style.command_line import UsageError
from arbitrary_style.evaluation import evaluator
from arbitrary_style.training import trainer

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, optionally with ':variant'.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and config.json.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    compilation_cache.enable()  # before anything compiles
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}, train takes only flags")
    config = command_line.config_value(_CONFIG)
    preflight.validate_config(config, heldout=bool(config.train.eval_every))
    workdir = preflight.check_workdir(_WORKDIR.value)
    # Periodic observed-vs-unobserved evaluation, every config.train.eval_every steps.
    eval_fn = evaluator.make_eval_fn(config, workdir) if config.train.eval_every else None
    trainer.train_and_evaluate(config, workdir, eval_fn=eval_fn)


if __name__ == "__main__":
    command_line.run_main(main)
