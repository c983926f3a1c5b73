r"""Evaluates a style model on observed vs unobserved styles (docs/reference-model.md §5).

    python -m arbitrary_style.eval --workdir=DIR [--step=N] [--config=configs/demo.py]
    python -m arbitrary_style.eval --config=configs/demo.py --pretrained=magenta-lite
    python -m arbitrary_style.eval --config=configs/pbn_dtd.py \
        --magenta_checkpoint=arbitrary_style_transfer/model.ckpt --output=DIR

Writes ``<DIR>/eval/<step>/`` (observed.csv, unobserved.csv, summary.json,
losses.png, samples.png; see ``arbitrary_style.evaluation.evaluator``) and TensorBoard
scalars under ``eval/`` in ``<DIR>/tensorboard``. DIR is the workdir, or
``--output`` (default ``workdirs/eval-<name>`` for published weights, whose
step is 0).

The model comes from the workdir's checkpoint (its own config.json says how
to build it); ``--config`` chooses the data, loss network and evaluation
options (``config.eval``) and defaults to the workdir's config.json.
"""

from __future__ import annotations

from absl import flags
from ml_collections import config_flags

# command_line first: it quiets the native logs before JAX loads.
from arbitrary_style import command_line, compilation_cache
from arbitrary_style.command_line import UsageError
from arbitrary_style.inference import PRETRAINED

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file (data, loss network, config.eval); default: the workdir's.",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir to evaluate.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest).")
_PRETRAINED = flags.DEFINE_enum(
    "pretrained", None, list(PRETRAINED), "Evaluate published weights instead."
)
_MAGENTA = flags.DEFINE_string(
    "magenta_checkpoint", None, "Evaluate a Magenta TF1 checkpoint (prefix .../model.ckpt)."
)
_OUTPUT = flags.DEFINE_string(
    "output", None, "Write under this directory instead of the workdir (eval/<step>/ inside)."
)


def main(argv):
    compilation_cache.enable()  # before anything compiles
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}, eval takes only flags")
    config = command_line.config_value(_CONFIG) if _CONFIG.value is not None else None
    # Deferred until the flags have parsed: --help and a bad flag answer without
    # loading the models and the data pipeline.
    from arbitrary_style import preflight  # noqa: PLC0415
    from arbitrary_style.evaluation import evaluator  # noqa: PLC0415

    if config is not None:
        preflight.validate_config(config, training=False, heldout=True)
    # Bad input (a missing workdir or step, too few images) raises a user
    # error, which command_line reports in one line.
    evaluator.run(
        workdir=_WORKDIR.value,
        step=_STEP.value,
        pretrained=_PRETRAINED.value,
        magenta_checkpoint=_MAGENTA.value,
        config=config,
        output=_OUTPUT.value,
    )

if __name__ == "__main__":
    command_line.run_main(main)
