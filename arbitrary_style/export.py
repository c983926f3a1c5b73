r"""Exports a style model for deployment: SavedModel, TFLite (float, int8), ONNX and Core ML.

    python -m arbitrary_style.export --pretrained=magenta-lite -o exported --check
    python -m arbitrary_style.export --workdir=workdirs/demo \
        --format=onnx,tflite,tflite_int8,saved_model -o exported --size=384x384
    python -m arbitrary_style.export --magenta_checkpoint=arbitrary_style_transfer/model.ckpt -o exported
    python -m arbitrary_style.export --pretrained=magenta-lite --format=coreml -o exported --check

Writes, under ``-o``, a predictor / transformer pair like Magenta's TFLite
models (an N-style model: the transformer alone, taking ``style_weights``):

    predictor.<ext>    style [1, 256, 256, 3] in [0, 1]  ->  bottleneck [1, 100]
    transformer.<ext>  content [1, H, W, 3] in [0, 1], bottleneck [1, 100]
                       ->  stylized [1, H, W, 3] in [0, 1]

with ``<ext>`` ``.onnx``, ``.tflite``, ``_int8.tflite`` or ``.mlpackage``
(Core ML: the transformer only, see arbitrary_style/exporting/coreml.py),
``saved_model/`` (signatures ``predict`` and ``transform``) and
``manifest.json`` (source, formats, tensors, version, how strength is
applied). H and W are dynamic in ONNX, TFLite float, the SavedModel and
Core ML (up to 4096); the int8 TFLite files take ``--size`` (see
arbitrary_style/exporting/converters.py for why). ``--check`` runs each file
in its runtime (onnxruntime, the TFLite interpreter, TensorFlow) and
compares it with the JAX model (``Stylizer``): within 1e-4 for float
formats, a mean absolute difference within 0.03 for int8; the exit status
is 1 when a check fails. A Core ML model runs only on macOS and iOS: on
Linux ``--check`` compares the TF-op graph it was converted from with the
JAX model and validates the package's spec and weights.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import re

from absl import flags

# command_line first: it quiets the native logs before JAX and TF load.
from arbitrary_style import command_line
from arbitrary_style.command_line import UsageError
from arbitrary_style.inference import PRETRAINED

# The formats (exporting/files.py FORMATS); repeated here so that --help and a
# bad flag answer without importing JAX and TensorFlow.
FORMATS = ("onnx", "tflite", "tflite_int8", "saved_model", "coreml")
DEFAULT_FORMATS = ("onnx", "tflite", "tflite_int8", "saved_model")
# Python modules each format (or its check) needs, from the export extra.
NEEDED_MODULES = {"onnx": ("tf2onnx",), "coreml": ("coremltools",)}
CHECK_MODULES = {"onnx": ("onnxruntime",)}

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir of the model to export.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest); with --workdir.")
_PRETRAINED = flags.DEFINE_enum("pretrained", None, list(PRETRAINED), "Export published weights instead.")
_MAGENTA = flags.DEFINE_string(
    "magenta_checkpoint", None, "Export a Magenta TF1 checkpoint (prefix .../model.ckpt)."
)
_FORMAT = flags.DEFINE_list("format", list(DEFAULT_FORMATS), f"Formats, any of {','.join(FORMATS)}.")
_OUTPUT = flags.DEFINE_string("output", None, "Output folder.", short_name="o")
_SIZE = flags.DEFINE_string(
    "size", "384x384", "HxW content size of the int8 TFLite transformer (its sides are fixed)."
)
_CHECK = flags.DEFINE_boolean("check", False, "Run every file and compare it with the JAX model.")
_OVERWRITE = flags.DEFINE_boolean("overwrite", False, "Replace the files of an earlier export in --output.")


def parse_size(text: str) -> tuple[int, int]:
    """'384x384' -> (384, 384); UsageError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text or "")
    if not match or min(int(match.group(1)), int(match.group(2))) < 8:
        raise UsageError(f"--size {text!r} is not HxW with sides of 8 px or more, give e.g. --size=384x384")
    return int(match.group(1)), int(match.group(2))


def check_arguments(argv) -> tuple[tuple[str, ...], tuple[int, int], pathlib.Path]:
    """Validates the flags before any model loads; returns (formats, size, output)."""
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}, export takes only flags")
    sources = [name for name, value in (("--workdir", _WORKDIR.value), ("--pretrained", _PRETRAINED.value),
                                        ("--magenta_checkpoint", _MAGENTA.value)) if value]
    if len(sources) != 1:
        found = "none" if not sources else " and ".join(sources)
        raise UsageError(
            f"export needs exactly one model, got {found}, "
            "give --workdir=DIR, --pretrained=NAME or --magenta_checkpoint=PREFIX"
        )
    if _STEP.value is not None and not _WORKDIR.value:
        raise UsageError(
            "--step is a checkpoint of --workdir, which is not given, drop --step or add --workdir"
        )
    formats = tuple(dict.fromkeys(f.strip() for f in _FORMAT.value if f.strip()))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        what = f"unknown format {', '.join(unknown)}" if unknown else "no format"
        raise UsageError(f"--format {','.join(_FORMAT.value)}: {what}, choose from {','.join(FORMATS)}")
    for fmt in formats:
        needed = NEEDED_MODULES.get(fmt, ()) + (CHECK_MODULES.get(fmt, ()) if _CHECK.value else ())
        missing = [m for m in needed if importlib.util.find_spec(m) is None]
        if missing:
            raise UsageError(
                f"--format {fmt} needs {', '.join(missing)}, which is not installed, "
                "install the export extra: pip install -e '.[export]'"
            )
    size = parse_size(_SIZE.value)
    if not _OUTPUT.value:
        raise UsageError("-o is required, it names the output folder, give -o=DIR")
    output = pathlib.Path(_OUTPUT.value)
    if output.exists() and not output.is_dir():
        raise UsageError(f"-o {output} is a file, the export writes a folder, give another -o")
    reason = command_line.unwritable_reason(output)
    if reason:
        raise UsageError(f"-o {output} cannot be written ({reason}), give a writable folder")
    return formats, size, output


def load_model():
    """(model, source record for the manifest, N-style names or None) as the flags say."""
    # Deferred until the flags have parsed: --help and a bad flag answer
    # without loading JAX, TensorFlow and the models.
    from arbitrary_style import weights  # noqa: PLC0415
    from arbitrary_style.inference import style_record  # noqa: PLC0415

    if _PRETRAINED.value:
        return weights.load_pretrained(_PRETRAINED.value), {"pretrained": _PRETRAINED.value}, None
    if _MAGENTA.value:
        model, _ = weights.load_magenta_checkpoint(_MAGENTA.value)
        return model, {"magenta_checkpoint": os.fspath(_MAGENTA.value)}, None
    from arbitrary_style.training.checkpoints import restore_model  # noqa: PLC0415  (orbax)

    workdir = _WORKDIR.value
    if not os.path.isdir(workdir):
        raise UsageError(f"--workdir {workdir} is not a folder, give a training workdir")
    _config, model = restore_model(workdir, _STEP.value)
    names = None
    if not model.learns_style_space:
        names = style_record.read_style_names(workdir, model.style_code_size)
    step = _STEP.value if _STEP.value is not None else "latest"
    source = {"workdir": os.path.abspath(workdir), "step": step}
    return model, source, names


def human_size(path: pathlib.Path) -> str:
    paths = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    total = sum(p.stat().st_size for p in paths)
    return f"{total / 1e6:.2f} MB" if total >= 1e5 else f"{total / 1e3:.1f} kB"


def main(argv) -> int:
    formats, size, output = check_arguments(argv)
    model, source, names = load_model()
    # Deferred like the model: TensorFlow and the converters.
    from arbitrary_style.exporting import checks, files  # noqa: PLC0415

    record = files.export(
        model, output, formats, source=source, fixed_size=size, style_names=names, overwrite=_OVERWRITE.value
    )
    print(f"exported {json.dumps(source)} to {output}:")
    for fmt in formats:
        for name in record["formats"][fmt]:
            print(f"  {fmt:<12} {name:<28} {human_size(output / name)}")
    print(f"  {'manifest':<12} {files.MANIFEST}")
    if "coreml" in formats and model.learns_style_space:
        # Said here too, not only in the manifest: a user looking for predictor.mlpackage.
        print("  coreml has no predictor: give it the bottleneck of another format's (manifest.json)")
    if not _CHECK.value:
        return 0
    print(f"checked against the JAX model (Stylizer), {checks.PHOTO} photo:")
    results = checks.check(model, output, formats, size)
    for result in results:
        print(result.line())
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"{len(failed)} of {len(results)} checks failed")
        return 1
    print(f"all {len(results)} checks passed")
    return 0


if __name__ == "__main__":
    command_line.run_main(main, config_flag_names=())
