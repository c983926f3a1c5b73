"""The two published systems as NNX modules, behind one interface.

* ``ArbitraryStyleModel`` (Ghiasi et al. 2017): ``predictor`` (style image ->
  100-d embedding -> norm parameters) and ``transformer``.
* ``NStyleModel`` (Dumoulin et al. 2017; Turi Create's style transfer):
  ``transformer`` with conditional instance norm on all 16 layers and
  ``style_tables`` holding each style's (beta, gamma) rows.

Both condition the same transfer network the same way: a batch's
*conditioning* (the style images, or the style weights) becomes a *style
code* (the predictor's bottleneck S, or the weight vector over the styles),
the code becomes the conditional-norm parameters {layer: (beta, gamma)}, and
those drive the transfer network (docs/reference-model.md §1-§2). Code that
trains, evaluates or stylizes talks to ``StyleModel`` only: what differs
between the two systems lives here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from arbitrary_style.models.layers import count_params, get_module, set_module
from arbitrary_style.models.predictor import StylePredictor
from arbitrary_style.models.transformer import NormParams, StyleTransferNetwork

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class ModelPart:
    """One part of a style model, for parameter summaries."""

    key: str  # a stable name, e.g. 'style_heads'
    label: str  # what a summary prints
    count: int  # parameters
    note: str = ""


class StyleModel(nnx.Module):
    """What a style model offers; ``ArbitraryStyleModel`` and ``NStyleModel`` implement it.

    Attributes:
      conditioning_key: the batch entry that conditions the model ('style':
        style images [B, h, w, 3] in [0, 1]; 'style_id': style ids [B]).
      learns_style_space: whether the model stylizes with styles it never saw
        (the arbitrary model's predictor does; an N-style model has one table
        row per training style).
      transformer: the conditional transfer network.
    """

    conditioning_key: ClassVar[str]
    learns_style_space: ClassVar[bool]
    transformer: StyleTransferNetwork

    def style_code(self, conditioning: Array, *, train: bool = False) -> Array:
        """A batch's conditioning -> [B, D] style codes, which blend linearly."""
        raise NotImplementedError

    def norm_params_from_code(self, code: Array) -> NormParams:
        """[B, D] style codes -> {layer: (beta [B, C], gamma [B, C])}."""
        raise NotImplementedError

    def norm_params(self, conditioning: Array, *, train: bool = False) -> NormParams:
        """A batch's conditioning -> the conditional-norm parameters.

        ``train`` is the batch-norm mode of the conditioning path (the
        predictor trunk's; an N-style model has none).
        """
        return self.norm_params_from_code(self.style_code(conditioning, train=train))

    def __call__(
        self,
        content: Array,
        conditioning: Array,
        *,
        train: bool = False,
        train_trunk: bool | None = None,
    ) -> Array:
        """Stylizes ``content`` [B, H, W, 3] in [0, 1] under ``conditioning``.

        ``train`` puts every batch norm in training mode (batch statistics,
        moving averages updated); ``train_trunk`` (default: ``train``) sets the
        conditioning path's alone, so that a frozen predictor trunk can stay a
        fixed function while the rest trains.
        """
        trunk_mode = train if train_trunk is None else train_trunk
        return self.transformer(content, self.norm_params(conditioning, train=trunk_mode), train=train)

    def stylize_batch(
        self, batch: Mapping[str, Array], *, train: bool = False, train_trunk: bool | None = None
    ) -> Array:
        """The output for a training or evaluation batch ({'content', conditioning_key, ...})."""
        return self(
            batch["content"], batch[self.conditioning_key], train=train, train_trunk=train_trunk
        )

    @property
    def style_code_size(self) -> int:
        """D, the length of a style code."""
        raise NotImplementedError

    @property
    def trunk_attribute(self) -> str | None:
        """The module-path element of a pretrained trunk that training may
        freeze (weights and batch-norm statistics), if the model has one."""
        return None

    def trainable_filter(self, train_config) -> nnx.filterlib.Filter:
        """The NNX filter of the parameters the optimizer updates under ``config.train``."""
        raise NotImplementedError

    def parts(self) -> list[ModelPart]:
        """The model's parts and their parameter counts (shapes suffice: works
        under ``nnx.eval_shape``)."""
        raise NotImplementedError

    def style_code_description(self) -> str:
        """What a style code is, for summaries."""
        raise NotImplementedError


class ArbitraryStyleModel(StyleModel):
    """Style predictor + transfer network (docs/reference-model.md §1-§2)."""

    def __init__(
        self,
        *,
        alpha: float = 1.0,
        trunk: str = "inception_v3",
        bottleneck_dim: int = 100,
        depth_multiplier: float = 1.0,
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ):
        self.transformer = StyleTransferNetwork(alpha, dtype=dtype, rngs=rngs)
        self.predictor = StylePredictor(
            self.transformer.conditional_layers,
            trunk=trunk,
            bottleneck_dim=bottleneck_dim,
            depth_multiplier=depth_multiplier,
            dtype=dtype,
            rngs=rngs,
        )

    conditioning_key = "style"
    learns_style_space = True

    def style_code(self, conditioning: Array, *, train: bool = False) -> Array:
        """Style images [B, h, w, 3] in [0, 1] -> the bottleneck embeddings S [B, 100]."""
        return self.predictor.embed(conditioning, train=train)

    def norm_params_from_code(self, code: Array) -> NormParams:
        return self.predictor.norm_params(code)

    def parts(self) -> list[ModelPart]:
        p = self.predictor
        return [
            ModelPart("transformer", "transformer", count_params(self.transformer),
                      "conv weights + contract BN betas"),
            ModelPart("predictor_trunk", f"predictor trunk ({p.trunk_name})",
                      count_params(p.trunk), "weights + BN betas"),
            ModelPart("bottleneck", f"bottleneck ({p.bottleneck_dim}-d)", count_params(p.bottleneck)),
            ModelPart("style_heads", f"style heads ({len(p.conditional_layers)} layers)",
                      p.head_param_count()),
        ]

    def style_code_description(self) -> str:
        return f"bottleneck: {self.predictor.bottleneck_dim} numbers"

    @property
    def style_code_size(self) -> int:
        return self.predictor.bottleneck_dim

    @property
    def trunk_attribute(self) -> str:
        return self.predictor.trunk_attribute

    def trainable_filter(self, train_config) -> nnx.filterlib.Filter:
        """Everything (the reference fine-tunes Inception), or all but the
        predictor trunk with ``train.freeze_predictor_trunk``."""
        if train_config.freeze_predictor_trunk:
            return nnx.All(nnx.Param, nnx.Not(nnx.PathContains(self.trunk_attribute)))
        return nnx.Param


class StyleTables(nnx.Module):
    """Per-style conditional instance-norm parameters (Dumoulin et al. 2017).

    For every conditional layer, ``<layer>/beta`` and ``<layer>/gamma`` are
    [num_styles, C] tables initialised to 0 and 1. A style is a row; a blend
    of styles is a weighted sum of rows (weights used as given, not
    normalised, as in the reference), so a one-hot weight vector selects one
    style exactly as Turi Create's Core ML ``index`` input does.
    """

    def __init__(self, conditional_layers: Sequence[tuple[str, int]], num_styles: int):
        if num_styles < 1:
            raise ValueError(f"num_styles must be >= 1, got {num_styles}")
        self.num_styles = num_styles
        self.conditional_layers = tuple(conditional_layers)
        for name, channels in self.conditional_layers:
            set_module(self, name, StyleRows(num_styles, channels))

    def mix(self, style_weights: Array) -> NormParams:
        """[B, num_styles] weights -> {layer: (beta [B, C], gamma [B, C])}."""
        if style_weights.shape[-1] != self.num_styles:
            raise ValueError(
                f"style weights have {style_weights.shape[-1]} entries, the model has "
                f"{self.num_styles} styles"
            )
        w = style_weights.astype(jnp.float32)
        return {
            name: (w @ rows.beta[...], w @ rows.gamma[...])
            for name, rows in ((n, get_module(self, n)) for n, _ in self.conditional_layers)
        }

    def select(self, style_ids: Array) -> NormParams:
        """[B] integer style ids -> norm parameters (a one-hot mix)."""
        return self.mix(jax.nn.one_hot(style_ids, self.num_styles))


class StyleRows(nnx.Module):
    """One layer's tables: ``beta`` and ``gamma`` of shape [num_styles, C]."""

    def __init__(self, num_styles: int, channels: int):
        self.beta = nnx.Param(jnp.zeros((num_styles, channels)))
        self.gamma = nnx.Param(jnp.ones((num_styles, channels)))


class NStyleModel(StyleModel):
    """N-style transfer network: one network, per-style norm tables."""

    def __init__(
        self,
        num_styles: int,
        *,
        alpha: float = 1.0,
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ):
        self.transformer = StyleTransferNetwork(
            alpha, conditional_contract=True, dtype=dtype, rngs=rngs
        )
        self.style_tables = StyleTables(self.transformer.conditional_layers, num_styles)

    @property
    def num_styles(self) -> int:
        return self.style_tables.num_styles

    conditioning_key = "style_id"
    learns_style_space = False

    def style_code(self, conditioning: Array, *, train: bool = False) -> Array:
        """[B] integer style ids (one style each) or [B, num_styles] weights -> [B, num_styles] weights."""
        del train  # no batch norm before the tables
        if jnp.issubdtype(conditioning.dtype, jnp.integer):
            return jax.nn.one_hot(conditioning, self.num_styles)
        return conditioning

    def norm_params_from_code(self, code: Array) -> NormParams:
        return self.style_tables.mix(code)

    def parts(self) -> list[ModelPart]:
        return [
            ModelPart("transformer", "transformer", count_params(self.transformer), "conv weights"),
            ModelPart("style_tables", f"style tables ({self.num_styles} styles)",
                      count_params(self.style_tables)),
        ]

    def style_code_description(self) -> str:
        return f"style weights: {self.num_styles} numbers (one per style)"

    @property
    def style_code_size(self) -> int:
        return self.num_styles

    def trainable_filter(self, train_config) -> nnx.filterlib.Filter:
        """Everything, or only the per-style (beta, gamma) rows with
        ``train.finetune_all_params=False`` (Dumoulin et al. 2017: "fine-tune
        only the instance norm parameters", how new styles are added)."""
        if train_config.finetune_all_params:
            return nnx.Param
        return nnx.All(nnx.Param, nnx.PathContains("style_tables"))
