"""Image folders with awkward files: bad ones skipped and counted, the rest upright RGB."""

import io
import logging

import numpy as np
import pytest
from PIL import Image

from arbitrary_style import data
from arbitrary_style.config import base_config
from arbitrary_style.data import decode

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _jpeg_bytes(image, **kwargs):
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=95, **kwargs)
    return out.getvalue()


def _exif_rotated():
    """Stored 40 wide x 20 high, red left / blue right, EXIF orientation 6
    (display rotated 90 degrees clockwise): upright it is 20 x 40, red on top."""
    raw = Image.new("RGB", (40, 20), BLUE)
    raw.paste(Image.new("RGB", (20, 20), RED), (0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    return _jpeg_bytes(raw, exif=exif.tobytes())


def _png(image):
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _palette_with_transparency():
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    image.paste(0, (0, 0, 4, 8))  # left half: index 0, transparent
    out = io.BytesIO()
    image.save(out, format="PNG", transparency=0)
    return out.getvalue()


GOOD = {
    "gray.png": lambda: _png(Image.new("L", (30, 20), 77)),
    "rgba.png": lambda: _png(Image.new("RGBA", (30, 20), (10, 200, 30, 255))),
    "sixteen_bit.png": lambda: _png(Image.fromarray(np.full((20, 30), 32896, np.uint16))),
    "sub/exif_rotated.JPG": _exif_rotated,
    "one_pixel.png": lambda: _png(Image.new("RGB", (1, 1), (0, 255, 0))),
    "cmyk.jpg": lambda: _jpeg_bytes(Image.new("CMYK", (30, 20), (0, 255, 255, 0))),
    "palette.png": _palette_with_transparency,
    "plain.webp": lambda: _webp(),
    "plain.bmp": lambda: _bmp(),
}
# Decodable, but under sources.MIN_IMAGE_SIDE: the training pipeline skips them.
TOO_SMALL = {"one_pixel.png", "palette.png"}
BAD = {
    "corrupt.jpg": lambda: _jpeg_bytes(Image.new("RGB", (64, 64), RED))[:300],
    "empty.jpg": lambda: b"",
    "text.jpg": lambda: b"this is not an image\n" * 5,
}


def _webp():
    out = io.BytesIO()
    Image.new("RGB", (30, 20), (5, 6, 7)).save(out, format="WEBP", lossless=True)
    return out.getvalue()


def _bmp():
    out = io.BytesIO()
    Image.new("RGB", (30, 20), (90, 80, 70)).save(out, format="BMP")
    return out.getvalue()


@pytest.fixture
def folder(tmp_path):
    for name, make in {**GOOD, **BAD}.items():
        path = tmp_path / "styles" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make())
    (tmp_path / "styles" / "notes.txt").write_text("ignored: not an image extension")
    return tmp_path / "styles"


@pytest.mark.parametrize("name", sorted(GOOD))
def test_good_files_decode_to_rgb(name):
    image = decode.decode_image(GOOD[name]())
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3


def test_conversions_are_correct():
    np.testing.assert_array_equal(decode.decode_image(GOOD["gray.png"]())[0, 0], [77] * 3)
    np.testing.assert_array_equal(decode.decode_image(GOOD["rgba.png"]())[0, 0], [10, 200, 30])
    # 16-bit: scaled to 8 bits (32896 / 257 = 128), not clipped to 255.
    np.testing.assert_array_equal(decode.decode_image(GOOD["sixteen_bit.png"]())[0, 0], [128] * 3)
    cmyk = decode.decode_image(GOOD["cmyk.jpg"]()).astype(int)
    assert cmyk[5, 5, 0] > 200 and cmyk[5, 5, 1] < 60 and cmyk[5, 5, 2] < 60  # red
    palette = decode.decode_image(GOOD["palette.png"]())
    np.testing.assert_array_equal(palette[0, 0], [255, 255, 255])  # transparent -> white
    np.testing.assert_array_equal(palette[0, 7], [0, 200, 0])
    assert decode.decode_image(GOOD["one_pixel.png"]()).shape == (1, 1, 3)


def test_exif_rotation_is_applied():
    image = decode.decode_image(GOOD["sub/exif_rotated.JPG"]()).astype(int)
    assert image.shape == (40, 20, 3)  # upright: taller than wide
    top, bottom = image[5, 10], image[35, 10]
    assert top[0] > 200 and top[2] < 60, top  # red on top
    assert bottom[2] > 200 and bottom[0] < 60, bottom


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_files_raise_unreadable(name):
    with pytest.raises(decode.UnreadableImage):
        decode.decode_image(BAD[name]())


def _config(folder, size=24, batch=4):
    config = base_config()
    config.train.batch_size = batch
    config.data.image_size = size
    config.data.style_sources = ("image_folder",)
    config.data.content_sources = ("image_folder",)
    config.data.image_folder.style_dir = str(folder)
    config.data.image_folder.content_dir = str(folder)
    return config


def test_pipeline_skips_and_counts_bad_files(folder, caplog):
    config = _config(folder)
    assert data.num_styles(config) == len(GOOD) + len(BAD)  # files found
    caplog.set_level(logging.WARNING)
    batches = data.train_batches(config)
    seen = set()
    for _ in range(12):  # 48 examples: several epochs of 12 files
        batch = next(batches)
        assert batch["content"].shape == (4, 24, 24, 3)
        assert batch["style"].shape[1:] == (batch["style"].shape[1], batch["style"].shape[1], 3)
        for key in ("content", "style"):
            assert np.isfinite(batch[key]).all()
            assert 0 <= batch[key].min() and batch[key].max() <= 1
        seen.update(batch["style_id"].tolist())
    paths = data.sources.list_images(str(folder))
    skipped = set(BAD) | TOO_SMALL
    bad_ids = {i for i, p in enumerate(paths) if p.rsplit("/", 1)[-1] in skipped}
    assert len(paths) == len(GOOD) + len(BAD)
    assert not seen & bad_ids
    assert seen == set(range(len(paths))) - bad_ids  # every other image is used
    assert batches.skipped_count == len(skipped)
    assert {p.rsplit("/", 1)[-1] for p in batches.skipped} == skipped
    reasons = {p.rsplit("/", 1)[-1]: why for p, why in batches.skipped.items()}
    assert reasons["one_pixel.png"] == "1x1 px is too small, the shorter side must be at least 16 px"
    assert "5 skipped so far" in caplog.text


def test_content_from_folder_is_upright_at_configured_size(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "rotated.jpg").write_bytes(_exif_rotated())
    config = _config(tmp_path / "photos", size=16, batch=1)
    content = next(data.train_batches(config))["content"][0]
    assert content.shape == (16, 16, 3)
    # Upright 20 x 40 (red top, blue bottom); shorter side 18, centre crop 16:
    # the crop straddles the boundary, red above it and blue below.
    assert content[1, 8, 0] > 0.8 and content[1, 8, 2] < 0.25
    assert content[14, 8, 2] > 0.8 and content[14, 8, 0] < 0.25


def test_empty_folder_error_names_the_folder(tmp_path):
    empty = tmp_path / "nothing_here"
    (empty / "sub").mkdir(parents=True)
    (empty / "readme.txt").write_text("no images")
    with pytest.raises(ValueError, match="nothing_here.*contains no images"):
        data.train_batches(_config(empty))


def test_missing_folder_and_unset_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does_not_exist"):
        data.train_batches(_config(tmp_path / "does_not_exist"))
    config = _config(tmp_path)
    config.data.image_folder.content_dir = ""
    with pytest.raises(ValueError, match="content_dir is empty"):
        data.train_batches(config)


def test_heldout_folder(folder, tmp_path):
    config = _config(folder, size=16)
    with pytest.raises(ValueError, match="heldout_style_dir is empty"):
        data.style_set(config, "unobserved")
    config.data.image_folder.heldout_style_dir = str(folder)
    assert data.style_set(config, "unobserved").shape == (len(GOOD), 16, 16, 3)
