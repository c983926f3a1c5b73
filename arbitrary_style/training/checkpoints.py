"""Checkpoints of a training workdir, and the trained model they hold.

Layout of a workdir:

    config.json             the resolved config of the run (JSON of the ConfigDict)
    checkpoints/<step>/     orbax CheckpointManager steps, three items:
        model/              the full ``nnx.state`` of the style model
                            (parameters and batch-norm moving averages)
        train/              ``step`` and the optimizer state
        manifest/           JSON: the shape, dtype and sha256 of every array
                            of ``model`` and ``train``, taken at save time
        file_checksums.json the sha256 of every file of the three items,
                            written once orbax has committed the step
    damaged_checkpoints/    steps that failed verification when a run resumed,
                            moved out of the way (kept for inspection)

The data position is the step: batches are a function of (seed, step), so
nothing else needs saving to resume exactly. Orbax writes a step into a
temporary directory and renames it when complete (its atomic finalize), so a
process killed mid-save leaves no directory that ``latest_step`` would take
for a checkpoint; the manifest is an item of the same step, so it is committed
by the same rename as the arrays it describes.

Every restore verifies what it reads: each file against ``file_checksums.json``
before orbax reads it, each array's sha256 against the manifest (a damaged
data file can decode without error into wrong values: 8 bytes overwritten
turned a weight of 0.169 into 4.6e26), and every floating-point array finite
(parameters, batch-norm statistics and optimizer moments have no legitimate
non-finite value). A checkpoint that fails to read or to verify is reported in
one line and the newest valid one is used instead. Checkpoints written before
manifests existed are restored with a warning (their values checked finite),
not refused: local workdirs of earlier runs (hours of CPU training) stay
usable, and a damaged file in them still fails to read and is skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from arbitrary_style import models

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
DAMAGED_DIR = "damaged_checkpoints"
MODEL_ITEM = "model"
TRAIN_ITEM = "train"
MANIFEST_ITEM = "manifest"
# Beside the items of a step, written once orbax has committed it: the sha256
# of every file of the items, checked before orbax reads any of them.
FILE_CHECKSUMS = "file_checksums.json"
# Bumped if the manifest's content changes meaning.
MANIFEST_FORMAT = 1
# The longest exception text a one-line report quotes (TensorStore's errors
# carry whole file paths and specs).
MAX_REASON_CHARS = 240

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint that could not be written, or no valid checkpoint to read.

    The message is one line: what failed, why, and what to do.
    """


class DamagedCheckpointError(CheckpointError):
    """One checkpoint step that could not be read or failed verification."""

    def __init__(self, reason: str, step: int | None = None):
        super().__init__(reason if step is None else f"step {step}: {reason}")
        self.reason = reason
        self.step = step


# ---------------------------------------------------------------------------
# Orbax's log records


class _LibraryRecords(logging.Filter):
    """Drops the log records of one library below ``level``.

    Orbax logs through absl (``from absl import logging`` in its modules), so
    its records arrive on the ``absl`` logger with everybody else's; only the
    file they come from tells them apart.
    """

    def __init__(self, package: str, level: int):
        super().__init__()
        self.package = f"/{package}/"
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level or self.package not in record.pathname.replace("\\", "/")


# Orbax reports its bookkeeping at INFO (106 of the 156 lines of the demo's
# log were orbax's: managers created, handlers registered, each save's
# threads), and a failed save as ERROR records with tracebacks that repeat the
# exception it raises to us. Every orbax failure that matters reaches this
# module as an exception and is reported in one line (CheckpointError), so
# orbax's own records are dropped below CRITICAL unless asked for
# (``set_orbax_log_level``, e.g. by a --verbose flag).
_ORBAX_RECORDS = _LibraryRecords("orbax", logging.CRITICAL)


def set_orbax_log_level(level: int) -> None:
    """Shows orbax's log records at ``level`` and above (``logging.INFO`` for all
    of its bookkeeping; the default hides all but CRITICAL)."""
    _ORBAX_RECORDS.level = level
    _quiet_orbax()


def _quiet_orbax() -> None:
    absl_logger = logging.getLogger("absl")
    if _ORBAX_RECORDS not in absl_logger.filters:
        absl_logger.addFilter(_ORBAX_RECORDS)


# ---------------------------------------------------------------------------
# Config


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


# ---------------------------------------------------------------------------
# The manifest


def _host_array(x) -> np.ndarray:
    """A leaf as one host array (a replicated multi-host array: this process's copy)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        if not x.sharding.is_fully_replicated:
            raise NotImplementedError("checkpoint manifests need replicated arrays")
        return np.asarray(x.addressable_data(0))
    return np.asarray(jax.device_get(x))


def _leaves(tree) -> list[tuple[str, np.ndarray]]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(jax.tree_util.keystr(path, simple=True, separator="/"), _host_array(x)) for path, x in flat]


def _sha256(array: np.ndarray) -> str:
    # sha256 rather than a CRC: collision-safe for any change of the bytes,
    # and at 1.4 GB/s (hashlib on the 2-core CI machine) the demo's 12 MB
    # state takes under 10 ms; zlib.crc32 (4.5 GB/s) would save milliseconds.
    # Bytes in memory order of the C-contiguous array; view(uint8) also
    # covers dtypes without a buffer format (bfloat16).
    return hashlib.sha256(np.ascontiguousarray(array).reshape(-1).view(np.uint8)).hexdigest()


def array_manifest(tree) -> dict[str, dict[str, Any]]:
    """{leaf path: {"shape", "dtype", "sha256"}} of every array of ``tree``."""
    return {
        path: {"shape": list(a.shape), "dtype": str(a.dtype), "sha256": _sha256(a)}
        for path, a in _leaves(tree)
    }


def _check_arrays(item: str, tree, recorded: dict[str, dict[str, Any]] | None) -> None:
    """Raises DamagedCheckpointError (without the step) for the first array of
    ``tree`` that differs from ``recorded`` or holds a non-finite value."""
    leaves = _leaves(tree)
    if recorded is not None:
        names = {path for path, _ in leaves}
        missing = sorted(set(recorded) - names)
        extra = sorted(names - set(recorded))
        if missing or extra:
            which = f"{missing[0]} is missing" if missing else f"{extra[0]} is not in the manifest"
            raise DamagedCheckpointError(f"{item}: {which}")
    for path, array in leaves:
        if recorded is not None:
            expected = recorded[path]
            if list(array.shape) != expected["shape"] or str(array.dtype) != expected["dtype"]:
                raise DamagedCheckpointError(
                    f"{item}/{path} is {array.dtype}{list(array.shape)}, "
                    f"saved as {expected['dtype']}{expected['shape']}"
                )
            if _sha256(array) != expected["sha256"]:
                raise DamagedCheckpointError(f"{item}/{path} differs from its sha256 recorded at save time")
        if np.issubdtype(array.dtype, np.inexact):
            bad = array.size - int(np.count_nonzero(np.isfinite(array)))
            if bad:
                raise DamagedCheckpointError(f"{item}/{path} holds {bad} non-finite values")


def _file_digests(step_dir: Path, items: tuple[str, ...]) -> dict[str, str]:
    return {
        str(path.relative_to(step_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for item in items
        for path in sorted((step_dir / item).rglob("*"))
        if path.is_file()
    }


def _check_files(step_dir: Path, items: tuple[str, ...]) -> None:
    """Raises DamagedCheckpointError for the first file of ``items`` that is
    missing or differs from ``FILE_CHECKSUMS``.

    Checked before orbax reads: orbax fails on a truncated file, but leaves
    its other reads of the step pending, and each prints a traceback ("Event
    loop is closed", "Exception ignored in: <coroutine ...>") when collected.
    """
    recorded = json.loads((step_dir / FILE_CHECKSUMS).read_text())
    actual = _file_digests(step_dir, items)
    for name, digest in recorded.items():
        if name.split("/")[0] not in items:
            continue
        if name not in actual:
            raise DamagedCheckpointError(f"file {name} is missing")
        if actual[name] != digest:
            raise DamagedCheckpointError(f"file {name} differs from its sha256 recorded at save time")


# ---------------------------------------------------------------------------
# The manager, save and restore


def manager(workdir: str | Path, *, max_to_keep: int | None = None) -> ocp.CheckpointManager:
    """The orbax manager of ``<workdir>/checkpoints``.

    The training loop decides when to save (``train.checkpoint_every`` and
    the last step) and saves with ``force=True``, so no orbax interval policy
    is configured here.

    Saves are synchronous. Orbax's default writes in background threads, and
    a failed write surfaced only when the next save waited for it,
    ``checkpoint_every`` steps later; worse, when the step's directory could
    not be created, its commit threads waited 5 minutes for a signal that
    never came before the process could exit. Waiting for every save
    anyway, the background buys nothing. The cost is the write that
    training would have overlapped: 0.2 s for the nstyle smoke state (1.3 MB)
    and 1.1 s for pbn_dtd's (9 MB) on the 2-core CI machine (async: 0.05 and
    0.3 s blocking, the rest in the background), once per
    ``checkpoint_every`` steps (default 1000): at most 1 % of a run whose
    steps take 0.1 s. The manifest's hashes add 4 and 25 ms to a save, the
    checks 5 and 24 ms to a restore.
    """
    _quiet_orbax()
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep,
        create=True,
        enable_async_checkpointing=False,
    )
    directory = (Path(workdir) / CHECKPOINT_DIR).absolute()
    return ocp.CheckpointManager(
        directory, item_names=(MODEL_ITEM, TRAIN_ITEM, MANIFEST_ITEM), options=options
    )


def step_path(mngr: ocp.CheckpointManager, step: int) -> Path:
    """The directory of a (finalized) step: orbax's default step name is the number."""
    return Path(mngr.directory) / str(step)


def _reason(error: BaseException) -> str:
    """An exception as a short single line: its innermost cause, which says
    what failed (orbax wraps TensorStore's "OUT_OF_RANGE: Error reading <array>
    ... byte range" in an Exception that quotes a whole TensorStore spec)."""
    while (error.__cause__ or error.__context__) is not None:
        error = error.__cause__ or error.__context__
    text = " ".join(str(error).split()) or "no message"
    if len(text) > MAX_REASON_CHARS:
        text = text[: MAX_REASON_CHARS - 3] + "..."
    return f"{type(error).__name__}: {text}"


def save(
    mngr: ocp.CheckpointManager,
    step: int,
    model_state: nnx.State,
    train_state: dict[str, Any],
    *,
    force: bool = False,
) -> bool:
    """Saves one step with its manifest and returns once it is on disk.

    The manager writes synchronously (``manager``), so a write that fails (a
    full disk, a read-only directory) stops the run at the step that failed.

    Raises:
      CheckpointError: the step could not be written (the message names the
        step, the error and the latest step that is on disk).
    """
    previous = mngr.latest_step()
    manifest = {
        "format": MANIFEST_FORMAT,
        MODEL_ITEM: array_manifest(model_state),
        TRAIN_ITEM: array_manifest(train_state),
    }
    try:
        saved = mngr.save(
            step,
            args=ocp.args.Composite(
                **{
                    MODEL_ITEM: ocp.args.StandardSave(model_state),
                    TRAIN_ITEM: ocp.args.StandardSave(train_state),
                    MANIFEST_ITEM: ocp.args.JsonSave(manifest),
                }
            ),
            force=force,
        )
    except Exception as error:
        kept = f"the latest saved step is {previous}" if previous is not None else "no step was saved"
        raise CheckpointError(
            f"cannot save the checkpoint of step {step} in {mngr.directory}, {_reason(error)}; "
            f"the run stops here and {kept}: free disk space or make the directory writable, "
            "then run again to resume"
        ) from error
    if saved and jax.process_index() == 0:
        # Written after orbax's commit (it cannot be inside it: the hashes are
        # of the committed files); a step killed before this is verified by
        # its array manifest alone.
        step_dir = step_path(mngr, step)
        partial = step_dir / (FILE_CHECKSUMS + ".tmp")
        partial.write_text(json.dumps(_file_digests(step_dir, (MODEL_ITEM, TRAIN_ITEM, MANIFEST_ITEM))))
        partial.replace(step_dir / FILE_CHECKSUMS)
    return saved


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
    """Restores step ``step`` into the given abstract states (shapes, dtypes,
    shardings) and verifies every array it read against the step's manifest.

    A step written before manifests existed is restored with a one-line
    warning: its values are checked finite, its bytes cannot be checked.

    Raises:
      DamagedCheckpointError: the step could not be read, or an array differs
        from the manifest or holds a non-finite value (the message names the
        step and the array).
    """
    has_manifest = (step_path(mngr, step) / MANIFEST_ITEM).exists()
    items = {MODEL_ITEM: ocp.args.StandardRestore(abstract_model_state)}
    if abstract_train_state is not None:
        items[TRAIN_ITEM] = ocp.args.StandardRestore(abstract_train_state)
    if has_manifest:
        items[MANIFEST_ITEM] = ocp.args.JsonRestore()
    try:
        if (step_path(mngr, step) / FILE_CHECKSUMS).exists():
            _check_files(step_path(mngr, step), tuple(items))
        restored = mngr.restore(step, args=ocp.args.Composite(**items))
        manifest = restored[MANIFEST_ITEM] if has_manifest else None
        for item in [name for name in items if name != MANIFEST_ITEM]:
            _check_arrays(item, restored[item], None if manifest is None else manifest[item])
    except DamagedCheckpointError as error:
        raise DamagedCheckpointError(error.reason, step) from None
    except Exception as error:
        # Whatever orbax or TensorStore raise for unreadable files: a
        # truncated data file (OUT_OF_RANGE), a truncated _METADATA
        # (JSONDecodeError), a missing item.
        raise DamagedCheckpointError(_reason(error), step) from error
    if not has_manifest:
        log.warning(
            "checkpoint step %d in %s has no manifest (written before checksums were recorded): "
            "its values are finite but its bytes cannot be verified",
            step,
            mngr.directory,
        )
    return restored[MODEL_ITEM], restored.get(TRAIN_ITEM) if abstract_train_state is not None else None


def restore_newest_valid(
    mngr: ocp.CheckpointManager,
    abstract_model_state: nnx.State,
    abstract_train_state: dict[str, Any] | None = None,
) -> tuple[int | None, nnx.State | None, dict[str, Any] | None, list[DamagedCheckpointError]]:
    """The newest step that reads and verifies, trying the steps newest first.

    Returns:
      (step, model_state, train_state, damaged): ``step`` None (and the
      states None) when there is no checkpoint at all; ``damaged`` what was
      wrong with each newer step, newest first (the caller reports them).

    Raises:
      CheckpointError: there are checkpoints and none of them is valid.
    """
    damaged: list[DamagedCheckpointError] = []
    for step in sorted(mngr.all_steps(), reverse=True):
        try:
            model_state, train_state = restore(mngr, step, abstract_model_state, abstract_train_state)
        except DamagedCheckpointError as error:
            damaged.append(error)
            continue
        return step, model_state, train_state, damaged
    if damaged:
        raise CheckpointError(
            f"no valid checkpoint in {mngr.directory}, {'; '.join(map(str, damaged))}; "
            f"move {mngr.directory} away to train from step 0, or put back an intact copy"
        )
    return None, None, None, []


def set_aside(mngr: ocp.CheckpointManager, step: int) -> Path:
    """Moves a damaged step to ``<workdir>/damaged_checkpoints/`` and returns
    where it went. A resumed run writes that step again, and orbax never
    overwrites a step; the files are kept for inspection. One process only;
    every process then calls ``mngr.reload()``."""
    source = step_path(mngr, step)
    target = Path(mngr.directory).parent / DAMAGED_DIR / str(step)
    suffix = 1
    while target.exists():  # the same step damaged in an earlier resume
        target = target.with_name(f"{step}.{suffix}")
        suffix += 1
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(source, target)
    return target


def restore_model(workdir: str | Path, step: int | None = None):
    """The model a training workdir holds, verified against its manifest.

    Args:
      workdir: a directory written by ``arbitrary_style.train``.
      step: the checkpoint step; None for the newest valid one (a damaged
        newer one is skipped with a warning).

    Returns:
      (config, model): the run's config and its style model with the
      checkpoint's parameters and batch-norm moving averages (call it with
      ``train=False`` for inference).

    Raises:
      FileNotFoundError: no config.json, or no (such) checkpoint.
      CheckpointError: the step asked for is damaged, or no step is valid.
    """
    config = load_config(workdir)
    mngr = manager(workdir)
    try:
        steps = list(mngr.all_steps())
        if not steps or (step is not None and step not in steps):
            raise FileNotFoundError(
                f"no checkpoint{'' if step is None else f' at step {step}'} under "
                f"{Path(workdir) / CHECKPOINT_DIR} (steps there: {steps})"
            )
        with models.layers.shapes_only():  # every value comes from the checkpoint
            abstract_model = nnx.eval_shape(lambda: models.build_model(config.model, rngs=nnx.Rngs(0)))
        graphdef, abstract_state = nnx.split(abstract_model)
        sharding = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        abstract_state = abstract_like(abstract_state, sharding)
        if step is None:
            step, model_state, _, damaged = restore_newest_valid(mngr, abstract_state)
            for error in damaged:
                log.warning(
                    "checkpoint %s is damaged and skipped (%s); using step %d",
                    step_path(mngr, error.step),
                    error.reason,
                    step,
                )
        else:
            try:
                model_state, _ = restore(mngr, step, abstract_state)
            except DamagedCheckpointError as error:
                raise CheckpointError(
                    f"checkpoint {step_path(mngr, step)} is damaged, {error.reason}; "
                    f"choose another step (steps there: {steps})"
                ) from None
    finally:
        mngr.close()
    return config, nnx.merge(graphdef, model_state)
