"""Checkpoints of a training workdir, and the trained model they hold.

Layout of a workdir:

    config.json             the resolved config of the run (JSON of the ConfigDict)
    checkpoints/<step>/     orbax CheckpointManager steps, two items:
        model/              the full ``nnx.state`` of the style model
                            (parameters and batch-norm moving averages)
        train/              ``step`` and the optimizer state

The data position is the step: batches are a function of (seed, step), so
nothing else needs saving to resume exactly. Orbax writes a step into a
temporary directory and renames it when complete (its atomic finalize), so a
process killed mid-save leaves no directory that ``latest_step`` would take
for a checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import ml_collections
import orbax.checkpoint as ocp
from flax import nnx

from arbitrary_style import models

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
MODEL_ITEM = "model"
TRAIN_ITEM = "train"


def save_config(config: ml_collections.ConfigDict, workdir: str | Path) -> Path:
    path = Path(workdir) / CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
    return path


def _tuples(value):
    # JSON has no tuples; configs use tuples so that the command line can override them.
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def load_config(workdir: str | Path) -> ml_collections.ConfigDict:
    """The config a workdir was trained with (locked)."""
    path = Path(workdir) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: {workdir} is not a training workdir (python -m "
            "arbitrary_style.train writes config.json there when it starts)"
        )
    config = ml_collections.ConfigDict(_tuples(json.loads(path.read_text())))
    config.lock()
    return config


def manager(workdir: str | Path, *, max_to_keep: int | None = None) -> ocp.CheckpointManager:
    """The orbax manager of ``<workdir>/checkpoints``.

    The training loop decides when to save (``train.checkpoint_every`` and
    the last step) and saves with ``force=True``, so no orbax interval policy
    is configured here.
    """
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep,
        create=True,
    )
    directory = (Path(workdir) / CHECKPOINT_DIR).absolute()
    return ocp.CheckpointManager(directory, item_names=(MODEL_ITEM, TRAIN_ITEM), options=options)


def save(
    mngr: ocp.CheckpointManager,
    step: int,
    model_state: nnx.State,
    train_state: dict[str, Any],
    *,
    force: bool = False,
) -> bool:
    """Saves one step (asynchronously after the device-to-host copy)."""
    return mngr.save(
        step,
        args=ocp.args.Composite(
            **{
                MODEL_ITEM: ocp.args.StandardSave(model_state),
                TRAIN_ITEM: ocp.args.StandardSave(train_state),
            }
        ),
        force=force,
    )


def abstract_like(tree, sharding=None):
    """ShapeDtypeStructs of ``tree`` (with ``sharding``): what a restore fills."""
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding or getattr(x, "sharding", None)),
        tree,
    )


def restore(
    mngr: ocp.CheckpointManager,
    step: int,
    abstract_model_state: nnx.State,
    abstract_train_state: dict[str, Any] | None = None,
) -> tuple[nnx.State, dict[str, Any] | None]:
    """Restores step ``step`` into the given abstract states (shapes, dtypes, shardings)."""
    items = {MODEL_ITEM: ocp.args.StandardRestore(abstract_model_state)}
    if abstract_train_state is not None:
        items[TRAIN_ITEM] = ocp.args.StandardRestore(abstract_train_state)
    restored = mngr.restore(step, args=ocp.args.Composite(**items))
    return restored[MODEL_ITEM], restored.get(TRAIN_ITEM) if abstract_train_state is not None else None


def restore_model(workdir: str | Path, step: int | None = None):
    """The model a training workdir holds.

    Args:
      workdir: a directory written by ``arbitrary_style.train``.
      step: the checkpoint step; None for the latest.

    Returns:
      (config, model): the run's config and its style model with the
      checkpoint's parameters and batch-norm moving averages (call it with
      ``train=False`` for inference).

    Raises:
      FileNotFoundError: no config.json, or no (such) checkpoint.
    """
    config = load_config(workdir)
    mngr = manager(workdir)
    try:
        if step is None:
            step = mngr.latest_step()
        if step is None or step not in mngr.all_steps():
            raise FileNotFoundError(
                f"no checkpoint{'' if step is None else f' at step {step}'} under "
                f"{Path(workdir) / CHECKPOINT_DIR} (steps there: {list(mngr.all_steps())})"
            )
        abstract_model = nnx.eval_shape(lambda: models.build_model(config.model, rngs=nnx.Rngs(0)))
        graphdef, abstract_state = nnx.split(abstract_model)
        sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        model_state, _ = restore(mngr, step, abstract_like(abstract_state, sharding))
    finally:
        mngr.close()
    return config, nnx.merge(graphdef, model_state)
