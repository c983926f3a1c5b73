"""The style prediction network P(style) -> S (docs/reference-model.md §2).

A trunk (Inception-v3 to Mixed_6e, or the lite MobileNetV2), its spatial mean,
a linear 1x1 convolution to the 100-d bottleneck, and for every conditional
layer of the transfer network two linear 1x1 convolutions giving beta
(``StyleNorm/Conv``) and gamma (``StyleNorm/Conv_1``). Module paths equal the
checkpoint names: ``InceptionV3/...``, ``Conv`` (bottleneck; the lite model's
is ``mobilenet_conv/Conv``) and ``style_params/transformer/<layer>/StyleNorm``.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from arbitrary_style.models.inception import InceptionV3
from arbitrary_style.models.layers import Conv2d, get_module, set_module
from arbitrary_style.models.mobilenet import MobilenetV2
from arbitrary_style.models.transformer import NormParams

Array = jax.Array

# Trunk name -> (module attribute, bottleneck path) in the reference checkpoints.
TRUNK_LAYOUT = {
    "inception_v3": ("InceptionV3", "Conv"),
    "mobilenet_v2": ("MobilenetV2", "mobilenet_conv/Conv"),
}


def head_path(layer: str) -> str:
    """Scope of one layer's beta/gamma heads (Magenta `style_prediction`)."""
    return f"style_params/transformer/{layer}/StyleNorm"


class StylePredictor(nnx.Module):
    """Predicts the conditional-norm parameters of a transfer network.

    Args:
      conditional_layers: (name, channels) of the transfer network's
        conditional layers (``StyleTransferNetwork.conditional_layers``).
      trunk: 'inception_v3' or 'mobilenet_v2'.
      bottleneck_dim: size of the style embedding S (100 in the paper).
      depth_multiplier: Inception channel multiplier (1 = published model).
      dtype: compute dtype of the trunk.
    """

    def __init__(
        self,
        conditional_layers: Sequence[tuple[str, int]],
        *,
        trunk: str = "inception_v3",
        bottleneck_dim: int = 100,
        depth_multiplier: float = 1.0,
        dtype: jnp.dtype | None = None,
        rngs: nnx.Rngs,
    ):
        if trunk not in TRUNK_LAYOUT:
            raise ValueError(f"unknown predictor trunk {trunk!r}; valid: {sorted(TRUNK_LAYOUT)}")
        self.trunk_name = trunk
        self.conditional_layers = tuple(conditional_layers)
        self.bottleneck_dim = bottleneck_dim
        trunk_attr, bottleneck_path = TRUNK_LAYOUT[trunk]
        if trunk == "inception_v3":
            trunk_module = InceptionV3(depth_multiplier=depth_multiplier, dtype=dtype, rngs=rngs)
        else:
            trunk_module = MobilenetV2(dtype=dtype, rngs=rngs)
        setattr(self, trunk_attr, trunk_module)
        # slim.conv2d defaults: Xavier-uniform weights, zero biases, no
        # activation and no norm for these linear layers.
        linear = lambda i, o: Conv2d(i, o, 1, use_bias=True, rngs=rngs)  # noqa: E731
        set_module(self, bottleneck_path, linear(trunk_module.out_features, bottleneck_dim))
        for name, channels in self.conditional_layers:
            set_module(self, f"{head_path(name)}/Conv", linear(bottleneck_dim, channels))
            set_module(self, f"{head_path(name)}/Conv_1", linear(bottleneck_dim, channels))

    @property
    def trunk_attribute(self) -> str:
        """The trunk's attribute name (its element in module and checkpoint paths)."""
        return TRUNK_LAYOUT[self.trunk_name][0]

    @property
    def trunk(self) -> nnx.Module:
        return getattr(self, self.trunk_attribute)

    @property
    def bottleneck(self) -> Conv2d:
        return get_module(self, TRUNK_LAYOUT[self.trunk_name][1])

    def embed(self, style_images: Array, *, train: bool = False) -> Array:
        """[B, H, W, 3] style images in [0, 1] -> [B, bottleneck_dim] embeddings S."""
        features = self.trunk(style_images, train=train)
        if 0 in features.shape[1:3]:
            # A trunk with VALID strided layers (Inception: Mixed_6a) maps a
            # small image to 0x0 features, whose mean is NaN; say so at trace time.
            h, w = style_images.shape[1:3]
            hint = " (Inception-v3 needs >= 43 px a side)" if self.trunk_name == "inception_v3" else ""
            raise ValueError(
                f"a {h}x{w} image is too small for the {self.trunk_name} style predictor: "
                f"{h}x{w} style images are too small for its trunk, whose output is "
                f"{features.shape[1]}x{features.shape[2]}{hint}"
            )
        pooled = jnp.mean(features.astype(jnp.float32), axis=(1, 2), keepdims=True)
        return self.bottleneck(pooled)[:, 0, 0, :]

    def norm_params(self, embedding: Array) -> NormParams:
        """[B, bottleneck_dim] embeddings -> {layer: (beta [B, C], gamma [B, C])}."""
        s = embedding[:, None, None, :]
        params = {}
        for name, _ in self.conditional_layers:
            beta = get_module(self, f"{head_path(name)}/Conv")(s)[:, 0, 0, :]
            gamma = get_module(self, f"{head_path(name)}/Conv_1")(s)[:, 0, 0, :]
            params[name] = (beta, gamma)
        return params

    def __call__(
        self, style_images: Array, *, train: bool = False, train_trunk: bool | None = None
    ) -> tuple[Array, NormParams]:
        """Style images -> (embedding, norm parameters).

        ``train`` is the batch-norm mode; the predictor's only batch norms are
        the trunk's, so ``train_trunk`` (default: ``train``) overrides it.
        """
        embedding = self.embed(style_images, train=train if train_trunk is None else train_trunk)
        return embedding, self.norm_params(embedding)

    def head_param_count(self) -> int:
        """Parameters of the beta/gamma heads (278,558 for 13 layers at alpha 1)."""
        return sum(
            int(x.size) for x in jax.tree.leaves(nnx.state(self.style_params, nnx.Param))
        )
