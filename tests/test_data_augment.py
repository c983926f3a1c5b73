"""The reference style augmentation (docs/reference-model.md §4): bounds and frequencies."""

import numpy as np
import pytest

from arbitrary_style.data import preprocess
from arbitrary_style.data._tf import tf as _tf

tf = _tf()
N = 400


def _params(n=N):
    draws = [preprocess.augment_params(tf.constant([5, i], tf.int64)) for i in range(n)]
    return {f: np.array([getattr(d, f).numpy() for d in draws]) for f in preprocess.AugmentParams._fields}


@pytest.fixture(scope="module")
def params():
    return _params()


def test_colour_parameters_within_reference_bounds(params):
    assert np.all(np.abs(params["brightness_delta"]) <= 0.8)
    assert np.all((0.5 <= params["saturation_factor"]) & (params["saturation_factor"] <= 1.5))
    assert np.all(np.abs(params["hue_delta"]) <= 0.2)
    # ... and they use their whole range.
    assert params["brightness_delta"].min() < -0.7 and params["brightness_delta"].max() > 0.7
    assert params["saturation_factor"].min() < 0.55 and params["saturation_factor"].max() > 1.45
    assert params["hue_delta"].min() < -0.18 and params["hue_delta"].max() > 0.18


def test_flips_about_half_the_time(params):
    for key in ("flip_left_right", "flip_up_down"):
        rate = params[key].mean()
        assert 0.4 < rate < 0.6, (key, rate)  # binomial(400, 0.5): sd 0.025
    # Independent of each other.
    both = np.mean(params["flip_left_right"] & params["flip_up_down"])
    assert 0.15 < both < 0.35


def _apply(image, **overrides):
    base = dict(brightness_delta=0.0, saturation_factor=1.0, hue_delta=0.0,
                flip_left_right=False, flip_up_down=False)
    base.update(overrides)
    p = preprocess.AugmentParams(**{k: tf.constant(v) for k, v in base.items()})
    return preprocess.apply_augmentation(tf.constant(image), p).numpy()


def test_brightness_is_added_in_unit_range_and_clipped():
    gray = np.full((4, 4, 3), 100, np.uint8)
    np.testing.assert_allclose(_apply(gray, brightness_delta=0.2).astype(int), 100 + 51, atol=1)
    assert np.all(_apply(gray, brightness_delta=0.8) == 255)  # clipped, not wrapped
    assert np.all(_apply(gray, brightness_delta=-0.8) == 0)


def test_saturation_and_hue_act_on_colour():
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[..., 0], colour[..., 1], colour[..., 2] = 200, 100, 50
    gray = np.full((4, 4, 3), 120, np.uint8)
    # Saturation and hue leave gray pixels alone ...
    np.testing.assert_array_equal(_apply(gray, saturation_factor=1.5, hue_delta=0.2), gray)
    # ... and change colours within the bounds.
    desaturated = _apply(colour, saturation_factor=0.5).astype(int)
    assert np.ptp(desaturated[0, 0]) < np.ptp(colour[0, 0].astype(int))
    shifted = _apply(colour, hue_delta=0.2)
    assert not np.array_equal(shifted, colour)
    assert shifted.dtype == np.uint8


def test_flips_flip():
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    np.testing.assert_array_equal(_apply(image, flip_left_right=True), image[:, ::-1])
    np.testing.assert_array_equal(_apply(image, flip_up_down=True), image[::-1])


def test_style_preprocessing_output_and_random_resize_range():
    image = tf.constant(np.random.default_rng(0).integers(0, 256, (300, 500, 3), dtype=np.uint8))
    for i in range(20):
        out = preprocess.preprocess_style(image, 64, tf.constant([1, i], tf.int64)).numpy()
        assert out.shape == (64, 64, 3) and out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 1.0
    # Centre-crop path: shorter side to size + 2 then the middle.
    centre = preprocess.preprocess_style(image, 64, tf.constant([1, 0], tf.int64),
                                         augment=False, random_crop=False).numpy()
    np.testing.assert_allclose(centre, preprocess.preprocess_content(image, 64).numpy())


def test_content_resizes_shorter_side_then_centre_crops():
    # A wide image whose middle column band is white: after resizing the
    # shorter side to size + 2 and cropping the centre, the band stays central.
    image = np.zeros((100, 300, 3), np.uint8)
    image[:, 140:160] = 255
    out = preprocess.preprocess_content(tf.constant(image), 50).numpy()
    assert out.shape == (50, 50, 3)
    row = out[25, :, 0]
    assert row[25] > 0.9 and row[0] < 0.05 and row[-1] < 0.05
    np.testing.assert_allclose(row, row[::-1], atol=0.02)  # symmetric about the centre


def test_random_batch_size_range():
    sizes = [int(preprocess.random_batch_size(tf.constant([2, i], tf.int64))) for i in range(300)]
    assert min(sizes) >= 128 and max(sizes) < 300 and min(sizes) < 140 and max(sizes) > 288


def test_cheaper_order_jitters_the_crop_with_the_same_parameters():
    # A smooth image (as photos and paintings mostly are): the two orders
    # differ only where resizing averages differently clipped pixels.
    y, x = np.mgrid[0:200, 0:300]
    smooth = np.stack([x * 255 / 300, y * 255 / 200, (x + y) * 255 / 500], -1)
    image = tf.constant(smooth.astype(np.uint8))
    seed = tf.constant([3, 4], tf.int64)
    after = preprocess.preprocess_style(image, 32, seed, augment_first=False).numpy()
    before = preprocess.preprocess_style(image, 32, seed).numpy()
    plain = preprocess.preprocess_style(image, 32, seed, augment=False).numpy()
    assert after.shape == before.shape == (32, 32, 3)
    assert 0 <= after.min() and after.max() <= 1
    assert not np.allclose(after, plain)
    # Same crop, flips and colour parameters: close to the reference order.
    assert np.abs(after - before).mean() < 0.05


def test_random_batch_size_from_buckets_has_few_shapes():
    buckets = preprocess.style_size_buckets((128, 300), 6)
    sizes = {int(preprocess.random_batch_size(tf.constant([2, i], tf.int64), buckets)) for i in range(200)}
    assert sizes == set(buckets) == {128, 156, 185, 214, 242, 271}
