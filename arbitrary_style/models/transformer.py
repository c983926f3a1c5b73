"""The style transfer ("transformer") network, docs/reference-model.md §1.

Encoder/decoder of 16 convolutions: 3 contracting, 5 residual blocks of 2, and 3
expanding (two after a nearest-neighbour x2 upsampling). All convolutions are
reflect-padded, bias-free and initialised N(0, 0.01). The normalisation
parameters of the *conditional* layers come from outside the network: the
style predictor (arbitrary model, Ghiasi et al. 2017) or per-style tables
(N-style model, Dumoulin et al. 2017). Module paths equal Magenta's variable
scopes under ``transformer/``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from arbitrary_style.models.layers import (
    BatchNormSpec,
    Conv2d,
    conditional_instance_norm,
    fit_mix,
    get_module,
    halve_mix,
    instance_norm_moments,
    mixed_norm_params,
    reflect_beyond,
    repeat_beyond,
    set_module,
    transformer_init,
    upsample_nearest,
)

Array = jax.Array
# {layer name: (beta [B, C], gamma [B, C])}, the conditional-norm parameters
# (with a per-pixel ``mix`` of K styles: beta [B, K, C], gamma [B, K, C]).
NormParams = Mapping[str, tuple[Array, Array]]

# Contract-layer batch norm of the arbitrary model (slim defaults in Magenta's
# arbitrary_image_stylization: no scale, eps 1e-3, decay 0.999).
TRANSFORMER_BATCH_NORM = BatchNormSpec(epsilon=1e-3, decay=0.999, scale=False)
# Magenta `conditional_style_norm` / `conditional_instance_norm` epsilon.
CONDITIONAL_NORM_EPSILON = 1e-5


@dataclasses.dataclass(frozen=True)
class TransformerLayer:
    """One convolution of the transfer network."""

    name: str  # Magenta variable scope under 'transformer/'
    kernel_size: int
    stride: int
    features: int
    upsample: bool = False  # nearest-neighbour x2 before the convolution
    group: str = "contract"  # contract | residual | expand
    # What follows the norm (Magenta model.transform / model_util.residual_block):
    # 'relu'; 'relu_keep_input' (first conv of a residual block: its input is
    # kept for the add); 'add_input' (second conv: + the kept input, no ReLU
    # after the conv nor after the add); 'sigmoid' (the last layer).
    after: str = "relu"


def scale_width(channels: int, alpha: float) -> int:
    """Channels at width multiplier alpha (Magenta: int(alpha * channels))."""
    return int(alpha * channels)


def transformer_layers(alpha: float = 1.0) -> tuple[TransformerLayer, ...]:
    """The 16 convolutions in order (docs/reference-model.md §1 table)."""
    c32, c64, c128 = (scale_width(c, alpha) for c in (32, 64, 128))
    layers = [
        TransformerLayer("contract/conv1", 9, 1, c32),
        TransformerLayer("contract/conv2", 3, 2, c64),
        TransformerLayer("contract/conv3", 3, 2, c128),
    ]
    for r in range(1, 6):
        for j, after in ((1, "relu_keep_input"), (2, "add_input")):
            layers.append(
                TransformerLayer(
                    f"residual/residual{r}/conv{j}", 3, 1, c128, group="residual", after=after
                )
            )
    layers += [
        TransformerLayer("expand/conv1/conv", 3, 1, c64, upsample=True, group="expand"),
        TransformerLayer("expand/conv2/conv", 3, 1, c32, upsample=True, group="expand"),
        # The last layer keeps 3 channels at every alpha.
        TransformerLayer("expand/conv3/conv", 9, 1, 3, group="expand", after="sigmoid"),
    ]
    return tuple(layers)


class StyleTransferNetwork(nnx.Module):
    """The transfer network at width multiplier ``alpha``.

    Args:
      alpha: width multiplier (1 for the paper's model, 0.25 for the lite one).
      conditional_contract: False for the arbitrary model (contract layers use
        batch norm, 13 conditional layers, 2758 numbers per style at alpha 1);
        True for the N-style model (conditional instance norm on all 16 layers,
        3206 numbers per style).
      dtype: compute dtype of the convolutions.
    """

    def __init__(
        self,
        alpha: float = 1.0,
        *,
        conditional_contract: bool = False,
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ):
        self.alpha = alpha
        self.layers = transformer_layers(alpha)
        self.conditional_contract = conditional_contract
        in_features = 3
        for layer in self.layers:
            batch_norm = (
                TRANSFORMER_BATCH_NORM
                if layer.group == "contract" and not conditional_contract
                else None
            )
            conv = Conv2d(
                in_features,
                layer.features,
                layer.kernel_size,
                stride=layer.stride,
                padding="REFLECT",
                use_bias=False,
                batch_norm=batch_norm,
                activation=None,
                kernel_init=transformer_init,
                dtype=dtype,
                rngs=rngs,
            )
            set_module(self, layer.name, conv)
            in_features = layer.features

    @property
    def conditional_layers(self) -> tuple[tuple[str, int], ...]:
        """(name, channels) of every layer whose norm parameters come from outside."""
        return tuple(
            (layer.name, layer.features)
            for layer in self.layers
            if layer.group != "contract" or self.conditional_contract
        )

    @property
    def style_param_size(self) -> int:
        """Numbers per style: beta and gamma of every conditional layer."""
        return 2 * sum(c for _, c in self.conditional_layers)

    def _apply_layer(
        self,
        layer: TransformerLayer,
        x: Array,
        norm_params: NormParams,
        train: bool,
        moments: Mapping[str, tuple[Array, Array]] | None,
        recorded: dict[str, tuple[Array, Array]] | None,
        region: Array | None,
        mix_levels: list[Array] | None = None,
        level: int = 0,
    ) -> Array:
        conv: Conv2d = get_module(self, layer.name)
        if region is not None:
            # The image fills only the top-left region of x (at this layer's
            # input resolution): reflect it beyond its own edge, as the layer's
            # reflect padding would, and take statistics inside it.
            if layer.upsample and conv.BatchNorm is None and layer.kernel_size == 3:
                # Upsampled 3x3 layers keep their fused kernels: the edge
                # row repeated before upsampling is the reflection after it.
                y = conv.convolve_upsampled(repeat_beyond(x, region))
                region = 2 * region
            else:
                if layer.upsample:
                    x, region = upsample_nearest(x), 2 * region
                x = reflect_beyond(x, region, layer.kernel_size // 2)
                if conv.BatchNorm is not None:
                    return conv(x, train=train)
                y = conv.convolve(x)
                if layer.stride != 1:
                    region = region // layer.stride
        elif conv.BatchNorm is not None:
            return conv(upsample_nearest(x) if layer.upsample else x, train=train)
        else:
            y = conv.convolve_upsampled(x) if layer.upsample else conv.convolve(x)
        layer_moments = None if moments is None else moments.get(layer.name)
        if layer_moments is None:
            layer_moments = instance_norm_moments(y, region)
        if recorded is not None:
            recorded[layer.name] = layer_moments
        beta, gamma = norm_params[layer.name]
        if mix_levels is not None:
            # The weights at this layer's resolution (the expanding layers
            # reuse the contracting layers' means, extended by their edge).
            beta, gamma = mixed_norm_params(beta, gamma, fit_mix(mix_levels[level], y.shape[1:3]))
        return conditional_instance_norm(
            y, beta, gamma, epsilon=CONDITIONAL_NORM_EPSILON, moments=layer_moments
        )

    def __call__(
        self,
        images: Array,
        norm_params: NormParams,
        *,
        train: bool = False,
        moments: Mapping[str, tuple[Array, Array]] | None = None,
        region: Array | None = None,
        mix: Array | None = None,
    ) -> Array:
        """Stylizes ``images`` [B, H, W, 3] in [0, 1].

        Args:
          images: content batch.
          norm_params: {layer name: (beta, gamma)}, each [B, C], for every name in
            ``conditional_layers``.
          train: batch statistics in the contract batch norms (and update their
            moving averages) instead of the moving averages.
          moments: optional instance-norm statistics (mean, var), each
            [B, 1, 1, C], per conditional layer, used instead of the image's
            own: a tile of a large image is normalised with the statistics of
            the whole image (see ``norm_moments``).
          region: optional int32 (height, width), multiples of 4: the images
            fill only this top-left part of the array (padded to a fixed
            shape, so that one compiled program serves many sizes); inside it
            the result is the network's on the region alone, up to float
            rounding (reflect padding at the region's edge, instance-norm
            statistics over the region; ``layers.reflect_beyond``). Outside
            it the values mean nothing. The array must exceed the region by
            at least 4 pixels a side (``layers.reflect_beyond``).
          mix: optional [B, H, W, K] per-pixel weights of K styles (summing to
            1 over K), at the images' resolution and padded as they are; then
            every ``norm_params`` entry holds K sets, [B, K, C] each, mixed
            per pixel (``layers.mixed_norm_params``) by the weights averaged
            down to each layer's resolution (``layers.halve_mix``). The
            instance-norm statistics stay the image's own: a mix of one
            style with weight 1 everywhere is that style's output.

        Returns:
          [B, H', W', 3] in (0, 1), with H' = 4 * ceil(ceil(H / 2) / 2) (H itself
          when H is a multiple of 4), likewise W'.
        """
        return self._forward(
            images, norm_params, train=train, moments=moments, region=region, mix=mix
        )[0]

    def norm_moments(
        self,
        images: Array,
        norm_params: NormParams,
        *,
        region: Array | None = None,
        mix: Array | None = None,
    ) -> dict[str, tuple[Array, Array]]:
        """The instance-norm statistics every conditional layer sees for ``images``
        (of their top-left ``region`` only, if given; ``mix``: see ``__call__``)."""
        return self._forward(
            images, norm_params, train=False, moments=None, record=True, region=region, mix=mix
        )[1]

    def _forward(self, images, norm_params, *, train, moments, record=False, region=None, mix=None):
        missing = [n for n, _ in self.conditional_layers if n not in norm_params]
        if missing:
            raise KeyError(f"norm_params lacks conditional layers: {missing}")
        recorded = {} if record else None
        x = images
        residual_input = None
        if region is not None:
            region = jnp.asarray(region, jnp.int32)
        # The weights at full, 1/2 and 1/4 resolution; ``level`` is the
        # resolution of the current layer's output.
        mix_levels = None
        if mix is not None:
            mix_levels = [mix]
            for _ in range(2):
                mix_levels.append(halve_mix(mix_levels[-1]))
        level = 0
        for layer in self.layers:
            level += (layer.stride == 2) - layer.upsample
            y = self._apply_layer(
                layer, x, norm_params, train, moments, recorded, region, mix_levels, level
            )
            if region is not None and (layer.upsample or layer.stride != 1):
                region = (2 * region if layer.upsample else region) // layer.stride
            if layer.after == "add_input":
                x = residual_input + y
            elif layer.after == "sigmoid":
                x = jax.nn.sigmoid(y)  # after the norm (docs/reference-model.md §1)
            else:
                if layer.after == "relu_keep_input":
                    residual_input = x
                x = jax.nn.relu(y)
        return x, recorded
