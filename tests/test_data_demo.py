"""The embedded demo set: offline content photos and generated style images."""

import hashlib
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import skimage

from arbitrary_style.data import _tf, demo, preprocess


def test_content_images_are_bundled_rgb_photos():
    data_dir = os.path.join(os.path.dirname(skimage.__file__), "data")
    shipped = set(os.listdir(data_dir))
    # Every photo is a file inside the installed wheel (nothing fetched).
    expected_files = {"astronaut": "astronaut.png", "chelsea": "chelsea.png", "coffee": "coffee.png",
                      "rocket": "rocket.jpg", "hubble_deep_field": "hubble_deep_field.jpg",
                      "immunohistochemistry": "ihc.png", "retina": "retina.jpg", "camera": "camera.png"}
    assert set(expected_files) == set(demo.CONTENT_NAMES)
    assert set(expected_files.values()) <= shipped
    images = demo.content_images()
    assert len(images) == len(demo.CONTENT_NAMES)
    for image in images:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
        assert min(image.shape[:2]) >= 256


def test_content_images_load_without_network(tmp_path):
    # A dead proxy and an empty pooch cache: any download attempt would fail.
    env = dict(os.environ, HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
               SKIMAGE_DATADIR=str(tmp_path), no_proxy="")
    code = "from arbitrary_style.data import demo; print(len(demo.content_images()))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(len(demo.CONTENT_NAMES))


def test_style_images_deterministic_and_heldout_disjoint():
    train, heldout = demo.style_images("train"), demo.style_images("heldout")
    n_families = len(demo.FAMILIES)
    assert train.shape == (n_families * demo.STYLES_PER_FAMILY["train"], 256, 256, 3)
    assert heldout.shape == (n_families * demo.STYLES_PER_FAMILY["heldout"], 256, 256, 3)
    assert train.dtype == heldout.dtype == np.uint8
    # The same bytes in a fresh process whose global random states differ:
    # the held-out evaluation set is the same on every machine and run.
    code = ("import hashlib, random, numpy as np; random.seed(7); np.random.seed(7); np.random.random(5); "
            "from arbitrary_style.data import demo; "
            "print(hashlib.sha256(demo.style_images('train').tobytes()"
            " + demo.style_images('heldout').tobytes()).hexdigest())")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == hashlib.sha256(train.tobytes() + heldout.tobytes()).hexdigest()
    for image in heldout:
        assert all(np.abs(image.astype(int) - t).mean() > 10 for t in train)
    assert len(demo.style_names("train")) == len(train)


def test_style_families_are_visually_distinct():
    train = demo.style_images("train").astype(np.float64)
    per = demo.STYLES_PER_FAMILY["train"]
    # Simple texture statistics: colour spread and gradient energy differ
    # between images; no two images are near-copies.
    for image in train:
        assert image.std() > 5  # not flat
    flat = train.reshape(len(train), -1)
    distances = np.abs(flat[:, None] - flat[None]).mean(-1)
    np.fill_diagonal(distances, np.inf)
    assert distances.min() > 5
    assert len(train) == per * len(demo.FAMILIES)


def test_importing_the_package_does_not_import_tensorflow():
    code = ("import sys, arbitrary_style, arbitrary_style.data, arbitrary_style.data.demo; "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_tensorflow_is_given_no_gpu(monkeypatch):
    # _tf.tf() must hide every GPU from TensorFlow before TF initialises them
    # (JAX owns the accelerators). A stand-in TensorFlow records the call, so
    # this holds on machines without a GPU, where TF's device list is empty anyway.
    calls = []
    fake = types.ModuleType("tensorflow")
    fake.config = types.SimpleNamespace(
        set_visible_devices=lambda devices, kind: calls.append((list(devices), kind)),
        get_visible_devices=lambda kind: ["GPU:0"],
    )
    monkeypatch.setitem(sys.modules, "tensorflow", fake)
    assert _tf.tf.__wrapped__() is fake
    assert calls == [([], "GPU")]


def test_tensorflow_sees_no_gpu_where_there_are_gpus():
    tf = _tf.tf
    if not tf().config.list_physical_devices("GPU"):
        pytest.skip("no GPU on this machine: nothing to hide")
    assert tf().config.get_visible_devices("GPU") == []


def test_square_is_the_shared_resize_and_centre_crop():
    # The same pixels as the training pipeline's TF ops (an independent
    # runtime): shorter side to the size, middle window, / 255.
    photo = demo.content_images()[1]  # chelsea
    for size in (64, 128):
        resized = preprocess.resize_shorter_side(_tf.tf().constant(photo), size)
        expected = preprocess.center_crop(resized, size)
        out = demo.square(photo, size)
        assert out.shape == (size, size, 3) and out.dtype == np.float32
        np.testing.assert_allclose(out, expected.numpy() / 255.0, atol=1e-4)
