"""TFLite (float and int8) and ONNX files from the exported SavedModel, by maintained converters.

Routes, and why (measured with tensorflow-cpu 2.21, tf2onnx 1.17, jax 0.10.2):

* **TFLite float**: TensorFlow's ``TFLiteConverter.from_saved_model``. It
  reads jax2tf's ``XlaCallModule`` (StableHLO) and legalizes it to TFLite
  builtin ops (no Flex delegate needed); symbolic H and W stay dynamic
  (shape signature -1), so ``resize_tensor_input`` or the signature runner
  takes any content size. Within ~5e-6 of the JAX model.
* **TFLite int8**: the same converter with ``Optimize.DEFAULT`` and a
  representative dataset (the demo's photos and styles, nothing
  downloaded). Two limits of the converter decide its form:
  1. it is traced at one content size (``size``): with symbolic sides the
     instance norms' means become a sum divided by a size computed at run
     time, and the quantizer puts that division in int8 (mean absolute
     difference 0.44 from the float model: a broken image);
  2. the ops of the conditional instance norms (sums, division, rsqrt,
     subtraction, products) stay float, the convolutions, padding and
     resizes go int8 (``QuantizationDebugger`` with ``denylisted_ops``,
     TensorFlow's selective quantization): quantizing the norms too gave a
     mean absolute difference of 0.027-0.031 on the lite model at 128 px,
     against 0.018 with them float.
  The predictor (fixed 256x256 input) is quantized whole.
* **ONNX**: tf2onnx's TFLite front end on the float TFLite file. Neither
  tf2onnx's TensorFlow front end nor jax2onnx can take this route:
  tf2onnx has no ``XlaCallModule`` handler, and jax2onnx 0.17 pins
  orbax-checkpoint below 0.11.37 (this project needs >= 0.12). The TFLite
  graph is already plain builtin ops, which tf2onnx maps one to one;
  dynamic H and W survive (named ``height`` and ``width`` here).

No hand-written graph writer is involved: the benchmark's ONNX writer
(experiments/benchmarks/onnx_export.py) bakes one style into a transformer
and stays where it is, for timing onnxruntime on the network alone.
"""

from __future__ import annotations

import logging
import os
import pathlib
import tempfile
import warnings
from collections.abc import Callable, Iterable

import numpy as np
import onnx

from arbitrary_style import images
from arbitrary_style.data._tf import tf
from arbitrary_style.exporting import graphs
from arbitrary_style.models import StyleModel

ONNX_OPSET = 17
# Conditional instance-norm arithmetic kept float in the int8 transformer
# (see the module docstring); convolutions, padding and resizes are int8.
FLOAT_OPS_IN_INT8 = ("SUM", "MEAN", "DIV", "RSQRT", "SUB", "MUL", "ADD", "SQUARED_DIFFERENCE")

Samples = Callable[[], Iterable[dict[str, np.ndarray]]]


def _quiet_converters() -> None:
    # tf2onnx logs every rewrite at INFO; the command prints its own summary.
    for name in ("tf2onnx", "tensorflow"):
        logging.getLogger(name).setLevel(logging.ERROR)


def tflite_float(saved_model: str | os.PathLike, signature: str) -> bytes:
    """The float TFLite flatbuffer of one signature of ``saved_model``."""
    converter = tf().lite.TFLiteConverter.from_saved_model(os.fspath(saved_model), signature_keys=[signature])
    with warnings.catch_warnings():
        # The converter runs tf.lite.Interpreter, whose notice (LiteRT succeeds it) is not ours to act on.
        warnings.simplefilter("ignore", UserWarning)
        return converter.convert()


def tflite_int8(
    saved_model: str | os.PathLike,
    signature: str,
    representative: Samples,
    float_ops: tuple[str, ...] = (),
) -> bytes:
    """An int8 TFLite flatbuffer (float32 inputs and outputs) of one signature.

    Args:
      saved_model: a SavedModel traced at fixed shapes (``graphs.save(..., size)``).
      signature: 'predict' or 'transform'.
      representative: a callable yielding {input name: array} for calibration.
      float_ops: TFLite op names left in float (selective quantization).
    """
    tf_ = tf()
    converter = tf_.lite.TFLiteConverter.from_saved_model(os.fspath(saved_model), signature_keys=[signature])
    converter.optimizations = [tf_.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    with warnings.catch_warnings():
        # Calibration runs tf.lite.Interpreter, whose notice (LiteRT succeeds it) is not ours to act on.
        warnings.simplefilter("ignore", UserWarning)
        if not float_ops:
            return converter.convert()
        options = tf_.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(float_ops))
        debugger = tf_.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=representative, debug_options=options
        )
        return debugger.get_nondebug_quantized_model()


def signature_tensors(tflite_model: bytes) -> dict[str, dict[str, str]]:
    """{'inputs': {signature name: tensor name}, 'outputs': {...}} of a one-signature TFLite model."""
    with warnings.catch_warnings():
        # tf.lite.Interpreter's notice that LiteRT (ai-edge-litert) succeeds it.
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf().lite.Interpreter(model_content=tflite_model)
    (signature,) = interpreter._get_full_signature_list().values()
    names = {detail["index"]: detail["name"] for detail in interpreter.get_tensor_details()}
    return {
        side: {key: names[index] for key, index in signature[side].items()}
        for side in ("inputs", "outputs")
    }


def onnx_from_tflite(tflite_model: bytes, dynamic_sides: bool) -> onnx.ModelProto:
    """The ONNX model of a float TFLite model (tf2onnx), with the signature's tensor names.

    Args:
      tflite_model: a one-signature float TFLite flatbuffer.
      dynamic_sides: name the content's and the output's symbolic H and W
        'height' and 'width' (tf2onnx calls them ``unk__N``).
    """
    # Deferred: tf2onnx imports all of TensorFlow's graph machinery (seconds),
    # and only the ONNX format needs it.
    import tf2onnx  # noqa: PLC0415

    _quiet_converters()
    tensors = signature_tensors(tflite_model)
    with tempfile.TemporaryDirectory() as scratch:
        path = pathlib.Path(scratch) / "model.tflite"
        path.write_bytes(tflite_model)
        model, _ = tf2onnx.convert.from_tflite(os.fspath(path), opset=ONNX_OPSET)
    rename = {tensor: key for side in tensors.values() for key, tensor in side.items()}
    graph = model.graph
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        value.name = rename.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [rename.get(name, name) for name in node.input]
        node.output[:] = [rename.get(name, name) for name in node.output]
    if dynamic_sides:
        for value in list(graph.input) + list(graph.output):
            dims = value.type.tensor_type.shape.dim
            if len(dims) == 4:
                for dim, name in zip(dims[1:3], ("height", "width"), strict=True):
                    if not dim.HasField("dim_value"):
                        dim.dim_param = name
    onnx.checker.check_model(model)
    return model


def representative_transform(
    model: StyleModel, size: tuple[int, int], photos: list[np.ndarray], codes: list[np.ndarray]
) -> Samples:
    """Calibration samples for the int8 transformer: every photo, each with a style code in turn.

    Args:
      model: the model (for the code's input name).
      size: the (height, width) the photos are brought to (shorter side
        resized to cover it, centre crop).
      photos: float32 HxWx3 in [0, 1].
      codes: style codes (bottlenecks or style weights), each [D].
    """
    interface = graphs.Interface.of(model)
    fitted = [fit(photo, size) for photo in photos]

    def samples():
        for index, photo in enumerate(fitted):
            for turn in range(2):
                code = codes[(2 * index + turn) % len(codes)]
                yield {graphs.CONTENT: photo[None], interface.code_name: np.asarray(code, np.float32)[None]}

    return samples


def representative_predict(styles: list[np.ndarray]) -> Samples:
    """Calibration samples for the int8 predictor: 256x256 style images."""

    def samples():
        for style in styles:
            yield {graphs.STYLE: fit(style, (graphs.PREDICTOR_SIZE, graphs.PREDICTOR_SIZE))[None]}

    return samples


def fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float32 HxWx3 -> exactly ``size``: resized to cover it (aspect kept), centre crop."""
    height, width = size
    h, w = image.shape[:2]
    scale = max(height / h, width / w)
    shape = (max(height, round(h * scale)), max(width, round(w * scale)))
    resized = images.resize(np.asarray(image, np.float32), shape) if shape != (h, w) else image
    top, left = (shape[0] - height) // 2, (shape[1] - width) // 2
    return np.clip(resized[top : top + height, left : left + width], 0.0, 1.0).astype(np.float32)
