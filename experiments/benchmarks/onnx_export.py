"""A float ONNX graph of our transfer network, the onnxruntime peer of ``stylize_speed``.

    model = export_transfer_network(network, norm_params, size=(512, 512))

Built node by node with ``onnx.helper`` from the module's weights, so that
onnxruntime can run the very network we time in JAX (same weights, same
beta/gamma) and the two latencies compare the runtimes, not the models.
Input and output are NHWC float32 like ours; the graph transposes to ONNX's
NCHW once at each end. Per layer (``StyleTransferNetwork.layers``):

* optional ``Resize`` nearest x2 (asymmetric / floor: exactly ``jnp.repeat``);
* ``Pad`` mode reflect by k // 2, then ``Conv`` VALID without bias;
* contract layers: ``BatchNormalization`` with the moving statistics
  (inference), no scale (slim's ``scale=False``: gamma = 1);
  other layers: ``InstanceNormalization`` with the given beta/gamma as
  constants (batch 1: one style per graph), epsilon as in the model;
* ``Relu``, the residual ``Add`` (no ReLU after it), ``Sigmoid`` at the end.

Not a general exporter: it checks nothing beyond what this network uses, and
``stylize_speed.export_parity`` compares it with the JAX module before any
timing.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from arbitrary_style.models.layers import get_module
from arbitrary_style.models.transformer import CONDITIONAL_NORM_EPSILON

INPUT = "content_nhwc"
OUTPUT = "stylized_nhwc"
OPSET = 17


def _array(value) -> np.ndarray:
    return np.asarray(value[...] if hasattr(value, "__getitem__") else value, np.float32)


def export_transfer_network(
    network,
    norm_params: Mapping[str, tuple[np.ndarray, np.ndarray]],
    size: tuple[int, int] | None = None,
):
    """An ``onnx.ModelProto`` computing ``network(images, norm_params)`` for batch 1.

    Args:
      network: a ``StyleTransferNetwork`` (arbitrary-model layout: batch norm
        in the contract layers; ``conditional_contract=True`` also works).
      norm_params: {conditional layer: (beta, gamma)}, each [1, C] or [C].
      size: static (height, width) of the input, or None for symbolic
        height and width.
    """
    nodes, inits = [], []
    counter = iter(range(10**6))

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op: str, inputs, **attrs) -> str:
        out = f"{op.lower()}_{next(counter)}"
        nodes.append(helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    # Shared constants.
    scales2 = const("scales_x2", np.array([1.0, 1.0, 2.0, 2.0], np.float32))

    x = node("Transpose", [INPUT], perm=[0, 3, 1, 2])
    residual_input = None
    for layer in network.layers:
        conv = get_module(network, layer.name)
        scope = layer.name.replace("/", "_")
        if layer.upsample:
            x = node(
                "Resize",
                [x, "", scales2],
                mode="nearest",
                coordinate_transformation_mode="asymmetric",
                nearest_mode="floor",
            )
        kh, kw = conv.kernel_size
        if conv.padding != "REFLECT":
            raise ValueError(f"{layer.name}: expected reflect padding, got {conv.padding}")
        pads = const(f"{scope}_pads", np.array([0, 0, kh // 2, kw // 2, 0, 0, kh // 2, kw // 2], np.int64))
        padded = node("Pad", [x, pads], mode="reflect")
        # HWIO -> OIHW.
        weights = const(f"{scope}_weights", _array(conv.weights).transpose(3, 2, 0, 1).copy())
        y = node("Conv", [padded, weights], strides=[conv.stride, conv.stride], kernel_shape=[kh, kw])
        channels = layer.features
        bn = conv.BatchNorm
        if bn is not None:
            has_scale = getattr(bn, "scale", None) is not None
            has_bias = getattr(bn, "bias", None) is not None
            scale = _array(bn.scale) if has_scale else np.ones(channels, np.float32)
            bias = _array(bn.bias) if has_bias else np.zeros(channels, np.float32)
            y = node(
                "BatchNormalization",
                [
                    y,
                    const(f"{scope}_bn_scale", scale),
                    const(f"{scope}_bn_bias", bias),
                    const(f"{scope}_bn_mean", _array(bn.mean)),
                    const(f"{scope}_bn_var", _array(bn.var)),
                ],
                epsilon=float(bn.epsilon),
            )
        else:
            beta, gamma = (np.asarray(a, np.float32).reshape(-1, channels) for a in norm_params[layer.name])
            if beta.shape[0] != 1 or gamma.shape[0] != 1:
                raise ValueError("the export bakes one style in: norm_params must have batch 1")
            y = node(
                "InstanceNormalization",
                [y, const(f"{scope}_gamma", gamma[0]), const(f"{scope}_beta", beta[0])],
                epsilon=CONDITIONAL_NORM_EPSILON,
            )
        # The layer table says what follows each norm (TransformerLayer.after).
        if layer.after == "add_input":
            x = node("Add", [residual_input, y])
        elif layer.after == "sigmoid":
            x = node("Sigmoid", [y])
        else:
            if layer.after == "relu_keep_input":
                residual_input = x
            x = node("Relu", [y])
    nodes.append(helper.make_node("Transpose", [x], [OUTPUT], perm=[0, 2, 3, 1], name="to_nhwc"))

    h, w = size if size is not None else ("height", "width")
    graph = helper.make_graph(
        nodes,
        f"transfer_alpha{network.alpha}",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [1, h, w, 3])],
        # Sides that are multiples of 4 come back unchanged (the benchmark's sizes).
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [1, h, w, 3])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # readable by any onnxruntime >= 1.10
    onnx.checker.check_model(model)
    return model
