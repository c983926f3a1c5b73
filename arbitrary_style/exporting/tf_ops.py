"""The exported transformer as a graph of plain TensorFlow ops, for converters that read no StableHLO.

graphs.py serializes the model's own JAX methods (jax2tf: one
``XlaCallModule`` op). coremltools (9.0) cannot read that op, but converts
graphs of ordinary TF ops; this module writes the transformer in such ops,
from the model's weights, for the Core ML export (coreml.py):

* the style code -> the conditional-norm parameters: the model's
  ``norm_params_from_code`` is affine in the code for both kinds of model
  (the arbitrary model's linear 1x1 heads with biases, the N-style model's
  weighted sum of table rows), so it is taken as one matrix and one offset
  (``norm_param_map``: its Jacobian and its value at 0, computed by JAX from
  the model itself) and written as one ``tf.matmul``;
* the transfer network: Magenta's graph (image_stylization/model.py
  ``transform``, model_util.py): reflect ``tf.pad`` and a VALID bias-free
  ``conv2d`` per layer, the contract layers' batch norm with its moving
  statistics (arbitrary model), the other layers' conditional instance norm
  (``tf.nn.moments`` over H, W and ``tf.nn.batch_normalization``), nearest
  x2 upsampling, ReLU, the residual adds and the final sigmoid, walked from
  the network's own layer table (``StyleTransferNetwork.layers``);
* around it, ``Stylizer``'s padding of other sides to multiples of 4
  (``tiling.pad_to_multiple``) and the crop back, as graphs.py does.

Two forms are chosen for coremltools' TF front end, which needs them
(measured with coremltools 9.0): ``MirrorPad`` must have constant amounts,
so the bottom and right are reflected by 3 (the most a multiple of 4 can
need) and sliced to the padded size (the first rows of a reflection by 3 are
the reflection by fewer); and the upsampling's output size is the input's
shape times a constant [2, 2], which the converter reads as a scale factor
(a size computed otherwise needs iOS 17).

This graph is checked against the JAX model (``Stylizer``) by checks.py and
tests/test_export.py within 1e-4, and the transfer network alone against
Magenta's own ``transform`` by the benchmark peer in
experiments/benchmarks/tf_peer.py (tests/test_tf_peer.py), which builds the
same ops with one style baked in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from arbitrary_style.data._tf import tf
from arbitrary_style.exporting import graphs
from arbitrary_style.models import StyleModel
from arbitrary_style.models.layers import get_module
from arbitrary_style.models.transformer import CONDITIONAL_NORM_EPSILON, StyleTransferNetwork

# How far from affine norm_params_from_code may measure (float32 rounding of
# the heads' products) before it is refused: a nonlinear head is off by O(1).
AFFINE_TOLERANCE = 1e-4


def _array(value) -> np.ndarray:
    return np.asarray(value[...], np.float32)


def norm_param_map(model: StyleModel) -> tuple[np.ndarray, np.ndarray, tuple[tuple[str, int], ...]]:
    """(matrix [D, P], offset [P], layout): ``norm_params_from_code(c) == c @ matrix + offset``.

    The P columns hold, for each (layer, channels) of ``layout`` in turn, the
    layer's beta then its gamma. Both come from ``model.norm_params_from_code``
    itself: the offset is its value at the zero code, the matrix its Jacobian
    there (exact for an affine map, no differences of rounded values).

    Raises:
      ValueError: the map is not affine (checked at a random code).
    """
    layout = tuple(model.transformer.conditional_layers)
    size = int(model.style_code_size)
    graphdef, state = nnx.split(model)

    def flat(state, code):
        params = nnx.merge(graphdef, state).norm_params_from_code(code)
        return jnp.concatenate([part[0].astype(jnp.float32) for name, _ in layout for part in params[name]])

    @jax.jit
    def evaluate(state, zero, code):
        # One compiled program: eager, the heads' 26 small products took 2.8 s.
        return flat(state, zero), jax.jacfwd(flat, argnums=1)(state, zero), flat(state, code)

    code = np.random.default_rng(0).normal(size=(1, size)).astype(np.float32)
    zero = jnp.zeros((1, size), jnp.float32)
    offset, jacobian, at_code = (np.asarray(a) for a in evaluate(state, zero, code))
    matrix = jacobian[:, 0, :].T
    error = float(np.max(np.abs(at_code - (code @ matrix + offset)[0])))
    if not error <= AFFINE_TOLERANCE * max(1.0, float(np.max(np.abs(offset)))):
        raise ValueError(
            f"the model's norm_params_from_code is not affine in the style code (off by {error:.2g}), "
            "so it cannot be written as one matrix product"
        )
    return matrix, offset, layout


def norm_params_from_code(model: StyleModel) -> Callable:
    """A TF-op function: code [1, D] -> {layer: (beta [1, C], gamma [1, C])}, as the model's."""
    tf_ = tf()
    matrix, offset, layout = norm_param_map(model)
    matrix, offset = tf_.constant(matrix), tf_.constant(offset[None])
    sizes = [channels for _, channels in layout for _ in range(2)]

    def params(code):
        parts = tf_.split(tf_.matmul(code, matrix) + offset, sizes, axis=1)
        return {name: (parts[2 * i], parts[2 * i + 1]) for i, (name, _) in enumerate(layout)}

    return params


def transfer_network(network: StyleTransferNetwork) -> Callable:
    """A TF-op function ``(images [1, H, W, 3], norm_params) -> stylized``: ``network``'s computation.

    H and W must be multiples of 4; ``norm_params`` is {conditional layer:
    (beta [1, C], gamma [1, C])}, tensors of the graph (not constants), so one
    graph serves every style.
    """
    tf_ = tf()
    # Every weight as a constant, made once here (not at each trace).
    plan = []
    for layer in network.layers:
        conv = get_module(network, layer.name)
        if conv.padding != "REFLECT" or conv.biases is not None:
            raise ValueError(f"{layer.name}: expected a reflect-padded convolution without bias")
        kh, kw = conv.kernel_size
        # Ours is HWIO, tf.nn.conv2d's filter layout.
        step = {"layer": layer, "pads": [[0, 0], [kh // 2, kh // 2], [kw // 2, kw // 2], [0, 0]],
                "weights": tf_.constant(_array(conv.weights)), "stride": conv.stride}
        bn = conv.BatchNorm
        if bn is not None:
            # Slim batch_norm at inference, the moving averages; scale=False is a gamma of ones.
            ones = np.ones(layer.features, np.float32)
            scale = _array(bn.scale) if bn.scale is not None else ones
            bias = _array(bn.bias) if bn.bias is not None else 0 * ones
            statistics = (_array(bn.mean), _array(bn.var), bias, scale)
            step["batch_norm"] = tuple(tf_.constant(a) for a in statistics)
            step["epsilon"] = float(bn.epsilon)
        plan.append(step)

    def forward(images, norm_params: Mapping):
        x, residual_input = images, None
        for step in plan:
            layer = step["layer"]
            if layer.upsample:
                # Magenta model_util.upsampling: nearest neighbour to twice the
                # size (asymmetric, floor: our jnp.repeat); the size as shape
                # times a constant, which coremltools reads as a scale factor.
                size = tf_.shape(x)[1:3] * tf_.constant([2, 2])
                x = tf_.raw_ops.ResizeNearestNeighbor(
                    images=x, size=size, align_corners=False, half_pixel_centers=False
                )
            padded = tf_.pad(x, step["pads"], mode="REFLECT")
            y = tf_.nn.conv2d(padded, step["weights"], strides=step["stride"], padding="VALID")
            if "batch_norm" in step:
                mean, var, offset, scale = step["batch_norm"]
                y = tf_.nn.batch_normalization(y, mean, var, offset, scale, step["epsilon"])
            else:
                # Magenta ops.conditional_instance_norm: moments over H and W.
                beta, gamma = norm_params[layer.name]
                mean, var = tf_.nn.moments(y, axes=[1, 2], keepdims=True)
                y = tf_.nn.batch_normalization(
                    y, mean, var, beta[:, None, None, :], gamma[:, None, None, :], CONDITIONAL_NORM_EPSILON
                )
            # What follows each norm: the layer table's TransformerLayer.after.
            if layer.after == "add_input":
                x = residual_input + y
            elif layer.after == "sigmoid":
                x = tf_.sigmoid(y)
            else:
                if layer.after == "relu_keep_input":
                    residual_input = x
                x = tf_.nn.relu(y)
        return x

    return forward


def transform_function(model: StyleModel):
    """The exported ``transform`` in plain TF ops: a ``tf.function`` of (content, code) -> {'stylized'}.

    Inputs ``content`` [1, H, W, 3] (H, W >= ``graphs.MIN_CONTENT_SIDE``, any
    value) and the style code (``bottleneck`` or ``style_weights`` [1, D]),
    the tensors of graphs.py's ``transform``.
    """
    tf_ = tf()
    interface = graphs.Interface.of(model)
    params_of = norm_params_from_code(model)
    network = transfer_network(model.transformer)
    stride = graphs.STRIDE

    def transform(content, code):
        shape = tf_.shape(content)
        height, width = shape[1], shape[2]
        # The reflection by stride - 1, sliced to the next multiple of the
        # stride (see the module docstring): tiling.pad_to_multiple's padding.
        reach = stride - 1
        padded = tf_.pad(content, [[0, 0], [0, reach], [0, reach], [0, 0]], mode="REFLECT")
        padded = padded[:, : (height + reach) // stride * stride, : (width + reach) // stride * stride, :]
        out = network(padded, params_of(code))
        return {graphs.STYLIZED: out[:, :height, :width, :]}

    signature = [
        tf_.TensorSpec([1, None, None, 3], tf_.float32, name=graphs.CONTENT),
        tf_.TensorSpec([1, interface.code_size], tf_.float32, name=interface.code_name),
    ]
    return tf_.function(transform, autograph=False, input_signature=signature)
