"""Runs the exported files in their own runtimes and compares them with ``Stylizer``.

The reference is the JAX model through ``arbitrary_style.inference.Stylizer``
(its padding, its style preprocessing); each export runs in the runtime a
deployment would use: the SavedModel in TensorFlow, the TFLite files in the
TensorFlow Lite interpreter, the ONNX files in onnxruntime. Inputs: a
photograph of the demo set (scikit-image's ``chelsea``, 300x451) at two
sizes whose sides are not multiples of 4, so the exported padding is
exercised, and a held-out demo style (arbitrary models) or a blend of two
styles (N-style).

* float formats: max |export - Stylizer| <= ``FLOAT_TOLERANCE`` (1e-4) on
  the bottleneck and on the stylized image, at both sizes;
* int8 TFLite, at its fixed size: mean |export - Stylizer| <=
  ``INT8_MEAN_TOLERANCE`` (0.03) on the stylized image, for the int8
  transformer given the float bottleneck and for the int8 pair end to end.
* Core ML: nothing on Linux runs an ``.mlpackage`` (Core ML is macOS and
  iOS only), so what is checked is what can be: the plain-TF-op graph that
  coremltools converted (tf_ops.py), run by TensorFlow at both sizes, within
  ``FLOAT_TOLERANCE``; the package read back, whose every convolution
  kernel and norm-parameter matrix must equal that graph's weights; and its
  spec: names, types, shape ranges (coreml.py ``spec_problems``).
"""

from __future__ import annotations

import dataclasses
import pathlib
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from arbitrary_style import images
from arbitrary_style.data._tf import tf
from arbitrary_style.exporting import converters, coreml, files, graphs, tf_ops
from arbitrary_style.inference.stylizer import Stylizer
from arbitrary_style.models import StyleModel

FLOAT_TOLERANCE = 1e-4
INT8_MEAN_TOLERANCE = 0.03
PHOTO = "chelsea"
CHECK_SIDES = (66, 97)  # shorter sides of the two content sizes

Runner = Callable[..., dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Result:
    """One comparison: ``value`` of ``metric`` against ``limit``."""

    fmt: str
    what: str  # e.g. 'transformer 66x99'
    metric: str  # 'max' or 'mean' absolute difference, or 'problems' (a count)
    value: float
    limit: float
    detail: str = ""  # what the problems are

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.value) and self.value <= self.limit)

    def line(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        if self.metric == "problems":
            found = f"{self.value:.0f} problems" + (f" ({self.detail})" if self.detail else "")
            return f"  {self.fmt:<12} {self.what:<32} {found} {verdict}"
        return (
            f"  {self.fmt:<12} {self.what:<32} {self.metric} |diff| {self.value:.2e} "
            f"(limit {self.limit:g}) {verdict}"
        )


def saved_model_runners(out: pathlib.Path) -> dict[str, Runner]:
    loaded = tf().saved_model.load(str(out / files.SAVED_MODEL_DIR))

    def runner(signature):
        function = loaded.signatures[signature]
        def run(**feeds):
            outputs = function(**{name: tf().constant(array) for name, array in feeds.items()})
            return {name: tensor.numpy() for name, tensor in outputs.items()}

        return run

    return {name: runner(name) for name in loaded.signatures}


def tflite_runner(path: pathlib.Path) -> Runner:
    with warnings.catch_warnings():
        # tf.lite.Interpreter's notice that LiteRT (ai-edge-litert) succeeds it.
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf().lite.Interpreter(model_path=str(path))
    return interpreter.get_signature_runner()


def onnx_runner(path: pathlib.Path) -> Runner:
    # Deferred: onnxruntime is part of the export extra, loaded only to check ONNX files.
    import onnxruntime  # noqa: PLC0415

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return lambda **feeds: dict(zip(names, session.run(None, feeds), strict=True))


def _part_runners(out: pathlib.Path, fmt: str, parts: Sequence[str]) -> dict[str, Runner]:
    if fmt == "saved_model":
        return saved_model_runners(out)
    make = onnx_runner if fmt == "onnx" else tflite_runner
    return {part: make(out / f"{files.PART_FILE[part]}{files.SUFFIX[fmt]}") for part in parts}


def check_inputs(model: StyleModel):
    """(photo, style or None, reference code) the checks use."""
    # Deferred: the demo set (scikit-image) is needed only here.
    from arbitrary_style.data import demo  # noqa: PLC0415

    photo = demo.content_images()[demo.CONTENT_NAMES.index(PHOTO)].astype(np.float32) / 255.0
    if model.learns_style_space:
        style = demo.style_images("heldout")[0].astype(np.float32) / 255.0
        return photo, style
    n = model.style_code_size
    weights = np.zeros(n, np.float32)
    weights[0], weights[-1] = 0.6, 0.4  # a blend, unless the model has one style
    if n == 1:
        weights[0] = 1.0
    return photo, weights


def check(
    model: StyleModel,
    out: str | pathlib.Path,
    formats: Sequence[str],
    fixed_size: tuple[int, int] = files.DEFAULT_FIXED_SIZE,
) -> list[Result]:
    """Compares every exported format in ``formats`` under ``out`` with ``Stylizer(model)``."""
    out = pathlib.Path(out)
    interface = graphs.Interface.of(model)
    stylizer = Stylizer(model, cpu_conv_kernels="xla")
    photo, style = check_inputs(model)
    if interface.learns_style_space:
        style_input = converters.fit(style, (graphs.PREDICTOR_SIZE, graphs.PREDICTOR_SIZE))
        code = stylizer.style_embedding(style_input)
    else:
        code = style
    contents = [images.resize_shorter_side(photo, side).clip(0, 1) for side in CHECK_SIDES]
    references = [stylizer.stylize(content, code) for content in contents]
    results = []
    for fmt in formats:
        if fmt == "coreml":
            results += _check_coreml(model, out, contents, references, code)
            continue
        runners = _part_runners(out, fmt, interface.signatures)
        if fmt == "tflite_int8":
            results += _check_int8(stylizer, runners, interface, photo, style, code, fixed_size)
            continue
        if interface.learns_style_space:
            predicted = runners[graphs.PREDICT](**{graphs.STYLE: style_input[None]})[graphs.BOTTLENECK][0]
            results.append(Result(fmt, "predictor bottleneck", "max", _max(predicted, code), FLOAT_TOLERANCE))
        for content, reference in zip(contents, references, strict=True):
            stylized = runners[graphs.TRANSFORM](
                **{graphs.CONTENT: content[None], interface.code_name: code[None]}
            )[graphs.STYLIZED][0]
            what = f"transformer {content.shape[0]}x{content.shape[1]}"
            results.append(Result(fmt, what, "max", _max(stylized, reference), FLOAT_TOLERANCE))
    return results


def _check_int8(stylizer, runners, interface, photo, style, code, size) -> list[Result]:
    content = converters.fit(photo, size)
    reference = stylizer.stylize(content, code)
    where = f"{size[0]}x{size[1]}"
    transform = runners[graphs.TRANSFORM]
    feeds = {graphs.CONTENT: content[None], interface.code_name: code[None]}
    stylized = transform(**feeds)[graphs.STYLIZED][0]
    results = [
        Result("tflite_int8", f"transformer {where}", "mean", _mean(stylized, reference), INT8_MEAN_TOLERANCE)
    ]
    if interface.learns_style_space:
        style_input = converters.fit(style, (graphs.PREDICTOR_SIZE, graphs.PREDICTOR_SIZE))
        predicted = runners[graphs.PREDICT](**{graphs.STYLE: style_input[None]})[graphs.BOTTLENECK]
        feeds[interface.code_name] = predicted
        pair = transform(**feeds)[graphs.STYLIZED][0]
        what = f"predictor+transformer {where}"
        results.append(Result("tflite_int8", what, "mean", _mean(pair, reference), INT8_MEAN_TOLERANCE))
    return results


def _check_coreml(model, out, contents, references, code) -> list[Result]:
    path = out / f"{files.PART_FILE[graphs.TRANSFORM]}{files.SUFFIX['coreml']}"
    transform = tf_ops.transform_function(model)
    results = []
    for content, reference in zip(contents, references, strict=True):
        stylized = transform(tf().constant(content[None]), tf().constant(code[None]))[graphs.STYLIZED]
        stylized = stylized.numpy()[0]
        what = f"transformer {content.shape[0]}x{content.shape[1]} (TF ops)"
        results.append(Result("coreml", what, "max", _max(stylized, reference), FLOAT_TOLERANCE))
    problems = coreml.spec_problems(path, model)
    if not problems:
        difference = coreml.weight_difference(path, model)
        results.append(Result("coreml", "package weights", "max", difference, FLOAT_TOLERANCE))
    results.append(Result("coreml", "package spec", "problems", len(problems), 0, "; ".join(problems)))
    return results


def _max(a, b) -> float:
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return float(np.max(np.abs(a - b))) if a.shape == b.shape else float("inf")


def _mean(a, b) -> float:
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return float(np.mean(np.abs(a - b))) if a.shape == b.shape else float("inf")
