r"""Trains a style model: flags, then ``trainer.train_and_evaluate``.

    python -m arbitrary_style.train --config=configs/pbn_dtd.py --workdir=DIR
    python -m arbitrary_style.train --config=configs/demo.py:smoke --workdir=DIR \
        --config.train.num_steps=10

The run resumes from DIR's latest checkpoint when there is one. Multi-host:
set ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``
on every host (or run under a cluster manager JAX detects); every host then
reads its own share of each batch.

Compiled programs are kept in JAX's persistent compilation cache
(``arbitrary_style.compilation_cache``; ``ARBITRARY_STYLE_COMPILATION_CACHE=off``
turns it off), so a restarted or repeated run skips most of its compile time.
"""

from __future__ import annotations

from absl import app, flags
from ml_collections import config_flags

from arbitrary_style import compilation_cache
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
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config, workdir = _CONFIG.value, _WORKDIR.value
    # Periodic observed-vs-unobserved evaluation, every config.train.eval_every steps.
    eval_fn = evaluator.make_eval_fn(config, workdir) if config.train.eval_every else None
    trainer.train_and_evaluate(config, workdir, eval_fn=eval_fn)


if __name__ == "__main__":
    app.run(main)
