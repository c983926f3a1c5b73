"""The exported pair as TensorFlow functions and a SavedModel, from the JAX model itself.

The two functions a deployed model needs are the model's own methods, traced
by JAX and serialized by ``jax2tf`` (jax 0.10: native serialization only, one
``XlaCallModule`` op holding the StableHLO of the function, the weights
inside as constants):

* ``predict``: style [1, 256, 256, 3] in [0, 1] -> bottleneck [1, D]
  (``StyleModel.style_code``; arbitrary models only);
* ``transform``: content [1, H, W, 3] in [0, 1] and the style code
  (``bottleneck`` [1, D], or ``style_weights`` [1, N] for an N-style model)
  -> stylized [1, H, W, 3] in [0, 1]
  (``transformer(content, norm_params_from_code(code))``).

So there is no second copy of the network to drift: what is exported is what
``Stylizer`` runs. H and W are symbolic in the StableHLO (``4*h``, ``4*w``:
the network halves the resolution twice), and a few TensorFlow ops around
the call do what ``Stylizer.stylize`` does for other sides: reflect-pad the
bottom and right up to the next multiple of 4 and crop the output back
(``tiling.pad_to_multiple``). With ``size`` given, everything is traced for
that one shape instead (the int8 TFLite file: see converters.py for why).

The functions are lowered for the CPU (``native_serialization_platforms``):
the converters read them on any machine, and TensorFlow here is
tensorflow-cpu.
"""

from __future__ import annotations

import dataclasses
import os

import jax.numpy as jnp
from flax import nnx
from jax.experimental import jax2tf

from arbitrary_style.data._tf import tf
from arbitrary_style.models import StyleModel

# Style images at the predictor: Magenta's TFLite predictor input and the
# Stylizer's default style size (both published predictors were trained or
# distilled at 256 px).
PREDICTOR_SIZE = 256
# The transfer network's stride: sides are padded to multiples of it.
STRIDE = 4
# Smallest content side the exported transformer takes: after padding to a
# multiple of 4, the quarter-resolution residual layers need 2 rows for their
# reflect padding (jax2tf proves the symbolic shapes under this constraint).
MIN_CONTENT_SIDE = 8

PREDICT = "predict"
TRANSFORM = "transform"
STYLE = "style"
CONTENT = "content"
STYLIZED = "stylized"
BOTTLENECK = "bottleneck"
STYLE_WEIGHTS = "style_weights"


@dataclasses.dataclass(frozen=True)
class Interface:
    """The tensors of an exported model.

    Attributes:
      learns_style_space: an arbitrary model (predictor + transformer) or an
        N-style one (transformer only).
      code_name: the transformer's second input, 'bottleneck' or 'style_weights'.
      code_size: its length (D or N).
    """

    learns_style_space: bool
    code_name: str
    code_size: int

    @classmethod
    def of(cls, model: StyleModel) -> Interface:
        learns = bool(model.learns_style_space)
        return cls(learns, BOTTLENECK if learns else STYLE_WEIGHTS, int(model.style_code_size))

    @property
    def signatures(self) -> tuple[str, ...]:
        return (PREDICT, TRANSFORM) if self.learns_style_space else (TRANSFORM,)


def _convert(fn, polymorphic_shapes, constraints=()):
    return jax2tf.convert(
        fn,
        polymorphic_shapes=polymorphic_shapes,
        polymorphic_constraints=constraints,
        with_gradient=False,
        native_serialization_platforms=("cpu",),
    )


def tf_functions(model: StyleModel, size: tuple[int, int] | None = None) -> dict:
    """{'predict': ..., 'transform': ...}: ``tf.function``s of ``model`` with input signatures.

    Args:
      model: the style model (its current weights are baked in).
      size: None for a transformer of any content size (>= MIN_CONTENT_SIDE a
        side); (height, width) for one fixed content size.
    """
    tf_ = tf()
    interface = Interface.of(model)
    graphdef, state = nnx.split(model)

    def style_code(style):
        return nnx.merge(graphdef, state).style_code(style).astype(jnp.float32)

    def stylized(content, code):
        merged = nnx.merge(graphdef, state)
        return merged.transformer(content, merged.norm_params_from_code(code)).astype(jnp.float32)

    code_spec = tf_.TensorSpec([1, interface.code_size], tf_.float32, name=interface.code_name)
    if size is None:
        jax_stylized = _convert(
            stylized,
            [f"(1, {STRIDE}*h, {STRIDE}*w, 3)", None],
            # Padded sides of at least 8 (h, w count the network's 4-pixel steps).
            ("h >= 2", "w >= 2"),
        )
        content_spec = tf_.TensorSpec([1, None, None, 3], tf_.float32, name=CONTENT)
    else:
        jax_stylized = _convert(stylized, None)
        content_spec = tf_.TensorSpec([1, *size, 3], tf_.float32, name=CONTENT)

    def transform(content, code):
        # Stylizer.stylize's padding (tiling.pad_to_multiple): the bottom and
        # right reflected up to a multiple of 4, the output cropped back.
        shape = tf_.shape(content)
        height, width = shape[1], shape[2]
        # Written without a negative operand: tf2onnx maps TFLite's FLOOR_MOD
        # to a remainder that keeps the dividend's sign ((-66) % 4 gave -2).
        pad_h, pad_w = (STRIDE - height % STRIDE) % STRIDE, (STRIDE - width % STRIDE) % STRIDE
        padded = tf_.pad(content, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]], mode="REFLECT")
        if size is not None:
            # Static for the fixed-size trace (tf.pad of computed amounts loses it).
            padded = tf_.ensure_shape(padded, [1, *(-(-side // STRIDE) * STRIDE for side in size), 3])
        out = jax_stylized(padded, code)
        return {STYLIZED: out[:, :height, :width, :]}

    functions = {
        TRANSFORM: tf_.function(transform, autograph=False, input_signature=[content_spec, code_spec]),
    }
    if interface.learns_style_space:
        jax_style_code = _convert(style_code, None)
        style_spec = tf_.TensorSpec([1, PREDICTOR_SIZE, PREDICTOR_SIZE, 3], tf_.float32, name=STYLE)

        def predict(style):
            return {BOTTLENECK: jax_style_code(style)}

        functions[PREDICT] = tf_.function(predict, autograph=False, input_signature=[style_spec])
    return functions


def save(model: StyleModel, directory: str | os.PathLike, size: tuple[int, int] | None = None) -> None:
    """Writes ``model`` as a SavedModel with one signature per function of ``tf_functions``."""
    tf_ = tf()
    functions = tf_functions(model, size)
    module = tf_.Module()
    for name, function in functions.items():
        setattr(module, name, function)
    signatures = {name: function.get_concrete_function() for name, function in functions.items()}
    tf_.saved_model.save(module, os.fspath(directory), signatures=signatures)

