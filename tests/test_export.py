"""Export (arbitrary_style/exporting, python -m arbitrary_style.export) against the JAX model.

Each exported file runs in its own runtime (onnxruntime, the TensorFlow Lite
interpreter, TensorFlow) and is compared with ``Stylizer`` on a photograph
at two sizes whose sides are not multiples of 4: max |diff| <= 1e-4 for the
float formats, a mean |diff| <= 0.03 for int8 at its fixed size. Core ML
cannot run on Linux: its TF-op source graph is compared instead, and the
package read back (spec, weights). Small content sizes and one export per
model (module fixtures) keep this file near 50 s on two cores.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from flax import nnx

from arbitrary_style import weights
from arbitrary_style.exporting import checks, coreml, files, graphs, tf_ops
from arbitrary_style.inference.stylizer import Stylizer
from arbitrary_style.training.checkpoints import restore_model

from conftest import ROOT, subprocess_env

FORMATS = ("onnx", "tflite", "tflite_int8", "saved_model")
LITE_FORMATS = (*FORMATS, "coreml")
FIXED_SIZE = (64, 96)


@pytest.fixture(scope="module")
def lite(tmp_path_factory):
    """magenta-lite exported in every runnable format, and its check results."""
    model = weights.load_pretrained("magenta-lite")
    out = tmp_path_factory.mktemp("lite-export")
    record = files.export(
        model, out, LITE_FORMATS, source={"pretrained": "magenta-lite"}, fixed_size=FIXED_SIZE
    )
    return model, out, record, checks.check(model, out, LITE_FORMATS, FIXED_SIZE)


@pytest.fixture(scope="module")
def nstyle(nstyle_workdir, tmp_path_factory):
    _config, model = restore_model(nstyle_workdir)
    out = tmp_path_factory.mktemp("nstyle-export")
    record = files.export(
        model, out, FORMATS, source={"workdir": str(nstyle_workdir)}, fixed_size=FIXED_SIZE
    )
    return model, out, record


def _summary(results):
    return {(r.fmt, r.what): (r.metric, r.value) for r in results}


def test_lite_pair_matches_stylizer_in_every_runtime(lite):
    _model, _out, _record, results = lite
    failed = [r.line() for r in results if not r.ok]
    assert not failed, "\n".join(failed)
    # Every format compared, both parts, both content sizes (66x99, 97x145: padded inside).
    expected = {("onnx", "predictor bottleneck"), ("tflite", "transformer 66x99"),
                ("saved_model", "transformer 97x145"), ("tflite_int8", "predictor+transformer 64x96"),
                ("coreml", "transformer 97x145 (TF ops)"), ("coreml", "package weights"),
                ("coreml", "package spec")}
    assert expected <= set(_summary(results))
    assert all(metric == "max" for (fmt, what), (metric, _) in _summary(results).items()
               if fmt != "tflite_int8" and what != "package spec")


def test_lite_onnx_tensors_and_dynamic_sides(lite):
    _model, out, _record, _results = lite
    model = onnx.load(out / "transformer.onnx")
    shapes = {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*model.graph.input, *model.graph.output]
    }
    assert shapes == {
        "content": [1, "height", "width", 3],
        "bottleneck": [1, 100],
        "stylized": [1, "height", "width", 3],
    }
    predictor = onnx.load(out / "predictor.onnx")
    assert [v.name for v in predictor.graph.input] == ["style"]
    assert [v.name for v in predictor.graph.output] == ["bottleneck"]


def test_lite_tflite_takes_any_content_size_and_int8_is_smaller(lite):
    _model, out, _record, _results = lite
    runner = checks.tflite_runner(out / "transformer.tflite")
    rng = np.random.default_rng(0)
    for shape in [(8, 8), (30, 41)]:
        content = rng.random((1, *shape, 3), dtype=np.float32)
        stylized = runner(content=content, bottleneck=np.zeros((1, 100), np.float32))["stylized"]
        assert stylized.shape == (1, *shape, 3)
        assert np.all((stylized >= 0) & (stylized <= 1))
    float_size = (out / "transformer.tflite").stat().st_size
    # int8 weights: about a quarter of the float file.
    assert (out / "transformer_int8.tflite").stat().st_size < 0.5 * float_size


def test_manifest_describes_the_files(lite):
    _model, out, record, _results = lite
    on_disk = json.loads((out / files.MANIFEST).read_text())
    assert on_disk == record
    assert record["source"] == {"pretrained": "magenta-lite"}
    assert record["formats"]["tflite_int8"] == ["predictor_int8.tflite", "transformer_int8.tflite"]
    assert record["formats"]["saved_model"] == ["saved_model"]
    for names in record["formats"].values():
        assert all((out / name).exists() for name in names)
    transform = record["tensors"]["transform"]
    assert [t["name"] for t in transform["inputs"]] == ["content", "bottleneck"]
    assert transform["content_sides"]["fixed_in"]["tflite_int8"] == list(FIXED_SIZE)
    assert record["tensors"]["predict"]["inputs"][0]["shape"] == [1, 256, 256, 3]
    assert "strength" in record and record["version"]


def test_lite_coreml_package_is_the_transformer_alone(lite):
    model, out, record, _results = lite
    assert record["formats"]["coreml"] == ["transformer.mlpackage"]
    assert not (out / "predictor.mlpackage").exists()
    assert (out / "transformer.mlpackage" / "Manifest.json").is_file()
    assert "macOS" in record["coreml"]["runs_on"] and "predictor" in record["coreml"]["predictor"]
    assert record["tensors"]["transform"]["content_sides"]["maximum_in"] == {"coreml": coreml.MAX_SIDE}
    # float32 weights: about the float TFLite transformer's size.
    package = sum(p.stat().st_size for p in (out / "transformer.mlpackage").rglob("*") if p.is_file())
    assert 0.8 < package / (out / "transformer.tflite").stat().st_size < 1.3


def test_coreml_checks_detect_other_weights_and_tensors(lite, nstyle):
    """The package checks can fail: another model's weights, another model's inputs."""
    model, out, _record, _results = lite
    package = out / "transformer.mlpackage"
    other = nnx.clone(model)
    kernel = other.transformer.residual.residual3.conv1.weights
    kernel[...] = kernel[...] * 1.01
    assert coreml.weight_difference(package, other) > 1e-4
    nstyle_model = nstyle[0]
    problems = coreml.spec_problems(package, nstyle_model)
    assert any("style_weights" in problem for problem in problems), problems


@pytest.mark.slow
def test_tf_ops_graph_of_an_nstyle_model_matches_stylizer(nstyle):
    """The N-style form (conditional contract layers, style tables as the matrix) at sides off 4.

    Slow only to keep ``make test`` short: the command test below checks the
    same graph through ``--check``.
    """
    model = nstyle[0]
    content = np.random.default_rng(4).random((30, 41, 3), dtype=np.float32)
    weights_ = np.array([0.2, 0.5, 0.3], np.float32)
    reference = Stylizer(model, cpu_conv_kernels="xla").stylize(content, weights_)
    tf = checks.tf()
    stylized = tf_ops.transform_function(model)(tf.constant(content[None]), tf.constant(weights_[None]))
    np.testing.assert_allclose(stylized["stylized"].numpy()[0], reference, atol=1e-4, rtol=0)


def test_existing_export_is_kept_unless_overwrite(lite):
    model, out, _record, _results = lite
    before = (out / "transformer.onnx").read_bytes()
    with pytest.raises(files.ExportError, match="already exists.*--overwrite"):
        files.export(model, out, ("onnx",))
    assert (out / "transformer.onnx").read_bytes() == before


def test_nstyle_transformer_takes_style_weights(nstyle):
    model, out, record = nstyle
    assert not (out / "predictor.onnx").exists() and not (out / "predictor.tflite").exists()
    assert record["tensors"]["transform"]["inputs"][1] == {
        "name": "style_weights", "dtype": "float32", "shape": [1, 3],
        "range": "weights over the styles, used as given (one-hot selects a style; not normalised)",
    }
    assert (out / "transformer_int8.tflite").exists()
    # Float formats only: this fixture's weights are random N(0, 0.01), whose
    # shrinking activations the 16 instance norms amplify, and int8 does not
    # keep up (mean |diff| 0.04); a model trained even 2 steps
    # (configs/nstyle.py:smoke) is within 0.03 at 384 px, as is magenta-lite above.
    results = checks.check(model, out, ("onnx", "tflite", "saved_model"), FIXED_SIZE)
    failed = [r.line() for r in results if not r.ok]
    assert not failed, "\n".join(failed)
    assert len(results) == 3 * 2  # three float formats at two sizes


def test_checks_detect_a_different_model(nstyle):
    """The comparison can fail: the files of one model against another's weights."""
    model, out, _record = nstyle
    other = nnx.clone(model)
    rows = other.style_tables.expand.conv3.conv
    rows.beta[...] = rows.beta[...] + 0.5
    results = checks.check(other, out, ("onnx", "saved_model"), FIXED_SIZE)
    assert results and not any(r.ok for r in results)


def test_fixed_size_graph_matches_dynamic_one(nstyle, tmp_path):
    model, out, _record = nstyle
    graphs.save(model, tmp_path / "fixed", (61, 90))
    tf = checks.tf()
    fixed = tf.saved_model.load(str(tmp_path / "fixed")).signatures["transform"]
    dynamic = checks.saved_model_runners(out)["transform"]
    content = np.random.default_rng(1).random((1, 61, 90, 3), dtype=np.float32)
    weights_ = np.array([[0.2, 0.5, 0.3]], np.float32)
    a = fixed(content=tf.constant(content), style_weights=tf.constant(weights_))["stylized"].numpy()
    b = dynamic(content=content, style_weights=weights_)["stylized"]
    assert a.shape == (1, 61, 90, 3)
    np.testing.assert_allclose(a, b, atol=1e-5)


def _export_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "arbitrary_style.export", *args],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--pretrained=magenta-lite"], "error: -o is required"),
        (["--pretrained=magenta-lite", "--workdir=w", "-o=x"], "one model, got --workdir and --pretrained"),
        (["--pretrained=magenta-lite", "--format=onnx,gif", "-o=x"], "unknown format gif, choose from"),
        (["--pretrained=magenta-lite", "--size=4x4", "-o=x"], "--size '4x4' is not HxW"),
    ],
)
def test_command_line_errors_are_one_line(args, message):
    result = _export_command(*args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


@pytest.mark.slow
def test_command_exports_and_checks_an_nstyle_workdir(nstyle_workdir, tmp_path):
    # Float formats: the fixture's random weights are no int8 target (see above).
    result = _export_command(
        f"--workdir={nstyle_workdir}", "--format=onnx,tflite,saved_model,coreml", f"-o={tmp_path}", "--check"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all 10 checks passed" in result.stdout
    assert json.loads((tmp_path / "manifest.json").read_text())["model"]["kind"] == "n_style"
