"""The Core ML transformer: tf_ops.py's graph converted by coremltools, and its spec validated.

Route (coremltools 9.0, tensorflow-cpu 2.21): coremltools' TensorFlow 2
front end reads the concrete function of ``tf_ops.transform_function``
(plain TF ops; it has no front end for jax2tf's ``XlaCallModule``, TFLite
or ONNX) and writes an ML Program (``.mlpackage``):

* inputs ``content`` float32 [1, H, W, 3] (H and W each from 8 to
  ``MAX_SIDE``, ``ct.RangeDim``) and ``bottleneck`` / ``style_weights``
  [1, D]; output ``stylized`` [1, H, W, 3]: the tensors of the other formats,
  as multi-arrays (not images), values in [0, 1];
* float32 weights and computation (``compute_precision=FLOAT32``): what the
  checks compare is the float32 graph. Core ML's default for ML Programs,
  float16, would let the Neural Engine run it, at an error this project does
  not measure (nothing here can run a Core ML model);
* deployment target iOS 15 / macOS 12, the first with ML Programs.

Running a Core ML model needs macOS (or iOS): coremltools on Linux converts
and reads specs but cannot predict. So the checks on Linux are: the graph
that was converted matches the JAX model (checks.py, within 1e-4), and the
saved package, read back, has the inputs, outputs and shape ranges of the
manifest and as many convolutions as the network (``spec_problems``).

No predictor: the style predictor's trunk (MobileNetV2 or Inception-v3)
has no TF-op form in this project, and writing one would be a second copy
of it beside the JAX model (``PREDICTOR_NOTE``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pathlib

import numpy as np

from arbitrary_style.exporting import graphs, tf_ops
from arbitrary_style.models import StyleModel
from arbitrary_style.models.layers import get_module

SUFFIX = ".mlpackage"
# Largest content side the package declares (Core ML wants bounded ranges to
# plan GPU memory); 4096 covers the photos Stylizer takes whole.
MAX_SIDE = 4096
PREDICTOR_NOTE = (
    "no Core ML predictor: coremltools reads no jax2tf/TFLite/ONNX graph, and the predictor's "
    "trunk (MobileNetV2 or Inception-v3) has no plain-TF-op form here; run predictor.tflite or "
    "predictor.onnx (or ship precomputed bottlenecks) and feed the bottleneck to transformer.mlpackage"
)


def _coremltools():
    # Deferred: only the coreml format needs coremltools (the export extra).
    # Its import logs that the installed TensorFlow and scikit-learn versions
    # are untested and that its macOS runtime is absent (Linux): nothing a
    # user of this command can act on.
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    import coremltools  # noqa: PLC0415

    return coremltools


def convert(model: StyleModel):
    """The transformer of ``model`` as a coremltools ``MLModel`` (ML Program, float32)."""
    ct = _coremltools()
    interface = graphs.Interface.of(model)
    function = tf_ops.transform_function(model)
    side = ct.RangeDim(lower_bound=graphs.MIN_CONTENT_SIDE, upper_bound=MAX_SIDE)
    inputs = [
        ct.TensorType(name=graphs.CONTENT, shape=ct.Shape((1, side, side, 3))),
        ct.TensorType(name=interface.code_name, shape=(1, interface.code_size)),
    ]
    with contextlib.redirect_stderr(io.StringIO()):
        # The converter's progress bars (tqdm, on stderr); the command prints its own summary.
        mlmodel = ct.convert(
            [function.get_concrete_function()],
            source="tensorflow",
            inputs=inputs,
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT32,
            minimum_deployment_target=ct.target.iOS15,
        )
    spec = mlmodel.get_spec()
    # A TF2 function's output is named after its graph node ('Identity').
    (output,) = spec.description.output
    ct.utils.rename_feature(spec, output.name, graphs.STYLIZED)
    spec.description.metadata.shortDescription = (
        f"Stylizes content [1, H, W, 3] in [0, 1] under {interface.code_name} [1, {interface.code_size}]"
    )
    return ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=True)


def save(model: StyleModel, path: str | os.PathLike) -> None:
    """Writes the transformer of ``model`` to ``path`` (an .mlpackage folder)."""
    convert(model).save(os.fspath(path))


def spec_problems(path: str | os.PathLike, model: StyleModel) -> list[str]:
    """What in the saved package differs from the manifest's transformer (empty: none).

    Reads the package back (``skip_model_load``: Linux has no Core ML
    runtime) and checks the inputs' and output's names, types and shapes
    (the content's sides a range from ``MIN_CONTENT_SIDE`` up), that it is an
    ML Program, and that its program holds one convolution per layer of the
    network.
    """
    ct = _coremltools()
    interface = graphs.Interface.of(model)
    path = pathlib.Path(path)
    if not (path / "Manifest.json").is_file():
        return [f"{path} is not an .mlpackage (no Manifest.json)"]
    spec = ct.models.MLModel(os.fspath(path), skip_model_load=True).get_spec()
    problems = []
    if spec.WhichOneof("Type") != "mlProgram":
        problems.append(f"model type {spec.WhichOneof('Type')}, expected mlProgram")
    described = {
        "inputs": [_describe(feature) for feature in spec.description.input],
        "outputs": [_describe(feature) for feature in spec.description.output],
    }
    image = (graphs.MIN_CONTENT_SIDE, MAX_SIDE)
    expected = {
        "inputs": [
            (graphs.CONTENT, "FLOAT32", ((1, 1), image, image, (3, 3))),
            (interface.code_name, "FLOAT32", (1, interface.code_size)),
        ],
        # Core ML leaves an ML Program's output shape to the runtime.
        "outputs": [(graphs.STYLIZED, "FLOAT32", ())],
    }
    for side in ("inputs", "outputs"):
        if described[side] != expected[side]:
            problems.append(f"{side} {described[side]}, expected {expected[side]}")
    if spec.WhichOneof("Type") == "mlProgram":
        convolutions = sum(
            op.type == "conv"
            for function in spec.mlProgram.functions.values()
            for block in function.block_specializations.values()
            for op in block.operations
        )
        if convolutions != len(model.transformer.layers):
            problems.append(f"{convolutions} convolutions, the network has {len(model.transformer.layers)}")
    return problems


def weight_difference(path: str | os.PathLike, model: StyleModel) -> float:
    """Max |package - model| over the convolution kernels and the norm-parameter map (inf: no match).

    The package's ML Program, read back into coremltools' MIL
    (``milproto.load``), must hold the network's 16 kernels in layer order
    (OIHW there, HWIO here) and one ``linear`` (or, without offset,
    ``matmul``) op, the style code -> beta and gamma map
    (``tf_ops.norm_param_map``): so a package converted from other
    weights fails, which no spec check would see.
    """
    ct = _coremltools()
    # Deferred with coremltools: its reader of ML Program protos.
    from coremltools.converters.mil.frontend.milproto.load import load  # noqa: PLC0415

    package = ct.models.MLModel(os.fspath(path), skip_model_load=True)
    spec = package.get_spec()
    program = load(spec, spec.specificationVersion, package.weights_dir)
    operations = program.functions["main"].operations
    kernels = [op.weight.val for op in operations if op.op_type == "conv"]
    maps = [op for op in operations if op.op_type in ("linear", "matmul")]
    expected = [
        np.asarray(get_module(model.transformer, layer.name).weights[...], np.float32).transpose(3, 2, 0, 1)
        for layer in model.transformer.layers
    ]
    matrix, offset, _layout = tf_ops.norm_param_map(model)
    if len(maps) != 1 or len(kernels) != len(expected):
        return float("inf")
    (code_map,) = maps
    if code_map.op_type == "linear":
        weight, bias = code_map.weight.val, code_map.bias.val  # [P, D], [P]
    else:
        # A matmul: the converter drops the add of a zero offset (N-style tables).
        weight = code_map.y.val if code_map.transpose_y.val else np.transpose(code_map.y.val)
        bias = np.zeros_like(offset)
    pairs = [*zip(kernels, expected, strict=True), (weight, matrix.T), (bias, offset)]
    if any(np.shape(a) != np.shape(b) for a, b in pairs):
        return float("inf")
    return max(float(np.max(np.abs(np.asarray(a, np.float32) - b))) for a, b in pairs)


def _describe(feature) -> tuple:
    """(name, data type, shape) of a multi-array feature; ranges as (low, high) pairs."""
    array = feature.type.multiArrayType
    data_type = type(array).ArrayDataType.Name(array.dataType)
    ranges = array.shapeRange.sizeRanges
    if ranges:
        return feature.name, data_type, tuple((r.lowerBound, r.upperBound) for r in ranges)
    return feature.name, data_type, tuple(array.shape)
