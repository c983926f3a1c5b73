"""The two published systems as NNX modules.

* ``ArbitraryStyleModel`` (Ghiasi et al. 2017): ``predictor`` (style image ->
  100-d embedding -> norm parameters) and ``transformer``.
* ``NStyleModel`` (Dumoulin et al. 2017; Turi Create's style transfer):
  ``transformer`` with conditional instance norm on all 16 layers and
  ``style_tables`` holding each style's (beta, gamma) rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from arbitrary_style.models.layers import get_module, set_module
from arbitrary_style.models.predictor import StylePredictor
from arbitrary_style.models.transformer import NormParams, StyleTransferNetwork

Array = jax.Array


class ArbitraryStyleModel(nnx.Module):
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

    def __call__(
        self,
        content: Array,
        style: Array,
        *,
        train: bool = False,
        train_trunk: bool | None = None,
    ) -> Array:
        """Stylizes ``content`` [B, H, W, 3] with ``style`` [B, h, w, 3], both in [0, 1].

        ``train`` puts every batch norm in training mode (batch statistics,
        moving averages updated); ``train_trunk`` (default: ``train``) sets the
        predictor trunk's alone, so that a frozen trunk can stay a fixed
        function while the rest trains.
        """
        _, norm_params = self.predictor(style, train=train, train_trunk=train_trunk)
        return self.transformer(content, norm_params, train=train)


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


class NStyleModel(nnx.Module):
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

    def __call__(self, content: Array, style_weights: Array, *, train: bool = False) -> Array:
        """Stylizes ``content`` with a [B, num_styles] weighting of the styles.

        Integer ids of shape [B] are accepted too and select one style each.
        """
        if jnp.issubdtype(style_weights.dtype, jnp.integer):
            norm_params = self.style_tables.select(style_weights)
        else:
            norm_params = self.style_tables.mix(style_weights)
        return self.transformer(content, norm_params, train=train)
