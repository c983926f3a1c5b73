"""Networks of arbitrary-style, built from a config by name."""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import ml_collections
from flax import nnx

from arbitrary_style.models.inception import InceptionV3
from arbitrary_style.models.layers import Conv2d, count_params
from arbitrary_style.models.mobilenet import MobilenetV2
from arbitrary_style.models.predictor import TRUNK_LAYOUT, StylePredictor
from arbitrary_style.models.style_models import (
    ArbitraryStyleModel,
    NStyleModel,
    StyleModel,
    StyleTables,
)
from arbitrary_style.models.transformer import StyleTransferNetwork, transformer_layers
from arbitrary_style.models.vgg import (
    CAFFE_CONVENTION,
    SLIM_CONVENTION,
    VGG,
    InputConvention,
)
from arbitrary_style.registry import lookup

MODEL_KINDS = {"arbitrary": ArbitraryStyleModel, "nstyle": NStyleModel}
LOSS_NETWORKS = {"vgg16": 16, "vgg19": 19}
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

__all__ = [
    "ArbitraryStyleModel",
    "CAFFE_CONVENTION",
    "Conv2d",
    "InceptionV3",
    "InputConvention",
    "MobilenetV2",
    "NStyleModel",
    "SLIM_CONVENTION",
    "StyleModel",
    "StylePredictor",
    "StyleTables",
    "StyleTransferNetwork",
    "VGG",
    "build_loss_network",
    "build_model",
    "conditioning_key",
    "model_class",
    "count_params",
    "require_predictor",
    "resolve_model_config",
    "transformer_layers",
]


def compute_dtype(name: str):
    return lookup("config.model.dtype", name, COMPUTE_DTYPES)


def model_class(model_config: ml_collections.ConfigDict) -> type[StyleModel]:
    """The ``StyleModel`` class that ``config.model.kind`` names."""
    return lookup("config.model.kind", model_config.kind, MODEL_KINDS)


def conditioning_key(model_config: ml_collections.ConfigDict) -> str:
    """The batch entry that conditions ``config.model``'s model ('style' images
    or 'style_id's; ``StyleModel.conditioning_key``)."""
    return model_class(model_config).conditioning_key


def build_model(model_config: ml_collections.ConfigDict, *, rngs: nnx.Rngs) -> StyleModel:
    """The style model that ``config.model`` names (kind 'arbitrary' or 'nstyle')."""
    lookup("config.model.kind", model_config.kind, MODEL_KINDS)
    dtype = compute_dtype(model_config.dtype)
    if model_config.kind == "nstyle":
        return NStyleModel(
            model_config.num_styles, alpha=model_config.alpha, dtype=dtype, rngs=rngs
        )
    lookup("config.model.predictor", model_config.predictor, TRUNK_LAYOUT)
    return ArbitraryStyleModel(
        alpha=model_config.alpha,
        trunk=model_config.predictor,
        bottleneck_dim=model_config.bottleneck_dim,
        depth_multiplier=model_config.predictor_depth_multiplier,
        dtype=dtype,
        rngs=rngs,
    )


def resolve_model_config(
    config: ml_collections.ConfigDict, *, count_styles: Callable[[], int]
) -> None:
    """Fills in, in place, what an N-style config leaves to its data.

    ``model.num_styles`` <= 0 becomes the number of training styles
    (``count_styles()``); ``train.num_steps`` <= 0 becomes
    ``train.steps_per_style`` per style (Turi Create: max_iterations =
    10000 * num_styles by default). An arbitrary model needs ``num_steps`` > 0.
    """
    nstyle = config.model.kind == "nstyle"
    if nstyle and config.model.num_styles <= 0:
        config.model.num_styles = count_styles()
    if config.train.num_steps <= 0:
        if not nstyle or config.train.steps_per_style <= 0:
            raise ValueError(
                "config.train.num_steps must be > 0 (only N-style configs may leave it 0 "
                "and set config.train.steps_per_style instead)"
            )
        config.train.num_steps = config.train.steps_per_style * config.model.num_styles


def require_predictor(model: StyleModel, option: str) -> None:
    """Raises ValueError unless ``model`` has a style predictor (``option`` needs one)."""
    if not isinstance(model, ArbitraryStyleModel):
        raise ValueError(f"{option} applies to the arbitrary model (the one with a style predictor) only")


def build_loss_network(
    loss_config: ml_collections.ConfigDict,
    *,
    rngs: nnx.Rngs,
    input_convention: InputConvention = SLIM_CONVENTION,
    dtype=None,
) -> VGG:
    """The frozen loss network that ``config.loss.network`` names, up to the
    deepest end point the loss weights use."""
    depth = lookup("config.loss.network", loss_config.network, LOSS_NETWORKS)
    used = set(loss_config.content_weights) | set(loss_config.style_weights)
    last = max(used, key=lambda name: int(name.removeprefix("conv")))
    return VGG(
        depth,
        pooling=loss_config.pooling,
        input_convention=input_convention,
        last_end_point=last,
        dtype=dtype,
        rngs=rngs,
    )
