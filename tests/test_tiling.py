"""Tiles cover the image, blend without seams, and keep every size."""

import itertools

import numpy as np
import pytest
from scipy import ndimage

from arbitrary_style.inference import color, tiling


@pytest.mark.parametrize(
    "length, tile, overlap", [(1024, 512, 128), (768, 512, 64), (260, 128, 32), (100, 128, 16)]
)
def test_tile_starts_cover_with_one_size(length, tile, overlap):
    starts = tiling.tile_starts(length, tile, overlap)
    size = min(tile, length)
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s : s + size] = True
        assert s % 4 == 0 and s + size <= length
    assert covered.all()
    assert all(b - a <= size - overlap for a, b in itertools.pairwise(starts))


def test_identity_tiles_reproduce_the_image():
    image = np.random.default_rng(0).uniform(size=(200, 148, 3)).astype(np.float32)
    out = tiling.stylize_in_tiles(lambda t: t, image, tile=64, overlap=16)
    np.testing.assert_allclose(out, image, rtol=0, atol=1e-6)


def test_local_filter_tiles_match_whole_image_away_from_nothing():
    """A 5x5 filter run per tile equals the filter on the whole image once the
    overlap exceeds the filter's reach: feathering hides the cut edges."""
    image = np.random.default_rng(1).uniform(size=(256, 192, 3)).astype(np.float32)
    blur = lambda x: ndimage.uniform_filter(x, size=(5, 5, 1), mode="reflect")  # noqa: E731
    whole = blur(image)
    tiled = tiling.stylize_in_tiles(blur, image, tile=96, overlap=32)
    assert np.abs(tiled - whole).max() < 0.02


def test_tiles_must_align_with_the_network_stride():
    with pytest.raises(ValueError, match="multiples of 4"):
        tiling.stylize_in_tiles(lambda t: t, np.zeros((10, 8, 3), np.float32), tile=8, overlap=2)
    with pytest.raises(ValueError, match="overlap"):
        tiling.stylize_in_tiles(lambda t: t, np.zeros((16, 16, 3), np.float32), tile=8, overlap=8)


@pytest.mark.parametrize("shape", [(255, 257), (1, 1), (257, 131), (4, 8)])
def test_pad_to_multiple_of_four(shape):
    image = np.random.default_rng(2).uniform(size=(*shape, 3))
    padded = tiling.pad_to_multiple(image)
    assert padded.shape[0] % 4 == 0 and padded.shape[1] % 4 == 0
    np.testing.assert_array_equal(padded[: shape[0], : shape[1]], image)


def test_downscale_for_statistics_keeps_small_images():
    image = np.zeros((64, 48, 3), np.float32)
    assert tiling.downscale_for_statistics(image, 64 * 48, None) is image
    calls = []
    small = tiling.downscale_for_statistics(
        np.zeros((4096, 4096, 3)), 1024 * 1024, lambda x, size: calls.append(size) or np.zeros((*size, 3))
    )
    assert calls == [(1024, 1024)] and small.shape == (1024, 1024, 3)


def test_preserve_color_keeps_content_chroma_and_stylized_luma():
    rng = np.random.default_rng(3)
    # Low-saturation colours: the combination stays in gamut, so nothing is clipped.
    content = rng.uniform(0.45, 0.55, size=(16, 12, 3))
    stylized = rng.uniform(0.3, 0.7, size=(16, 12, 3))
    out = color.preserve_color(content, stylized)
    ycc_out, ycc_content, ycc_styl = (color.rgb_to_ycbcr(x) for x in (out, content, stylized))
    np.testing.assert_allclose(ycc_out[..., 1:], ycc_content[..., 1:], atol=1e-5)
    np.testing.assert_allclose(ycc_out[..., 0], ycc_styl[..., 0], atol=1e-5)
