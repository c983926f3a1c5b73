"""The stylize command never loses an output and refuses bad inputs in one line.

Output names (the rule in arbitrary_style/stylize.py's docstring) are unique
for inputs whose stems clash, fixed before any work, and say where each
output came from; an existing output is kept unless ``--overwrite``; GIFs
are read as their first frame and other files in a folder are named as
skipped; a bad ``--style`` or ``--pretrained`` is one line, exit status 2.
The lite model (offline, tiny) runs the command in this process.
"""

from __future__ import annotations

import itertools
import json
import logging
import pathlib

import numpy as np
import pytest
from flax import nnx
from PIL import Image

from arbitrary_style import models, stylize
from arbitrary_style.data.decode import decode_image
from arbitrary_style.inference import files
from arbitrary_style.inference import stylizer as stylizer_module
from arbitrary_style.inference.stylizer import Stylizer

from conftest import synthetic_photo


def photo(h: int, w: int, seed: int) -> np.ndarray:
    return np.round(synthetic_photo(h, w, seed) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def lite():
    return Stylizer.from_pretrained("magenta-lite")


@pytest.fixture
def cli(capsys, monkeypatch, lite):
    """Runs the command in this process on the module's one lite Stylizer; (status, out, err)."""
    monkeypatch.setattr(stylize, "load_stylizer", lambda options, **_: lite)

    def run(*argv):
        code = stylize.run(["stylize", *(str(a) for a in argv)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(scope="module")
def style(tmp_path_factory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("style") / "good.png"
    Image.fromarray(photo(48, 48, 3)).save(path)
    return path


def one_line_error(code: int, out: str, err: str) -> str:
    assert code == 2 and not out, (code, out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


# -- the naming rule ---------------------------------------------------------------


@pytest.mark.parametrize(
    "paths, expected",
    [
        (["a/x.png", "a/y.png"], ["x", "y"]),
        # Same stem: the extension says which.
        (["d/ok.bmp", "d/ok.webp"], ["ok.bmp", "ok.webp"]),
        # Same stem ignoring case (one file on macOS and Windows).
        (["d/OK.png", "d/ok.jpg"], ["OK.png", "ok.jpg"]),
        # Same name in different folders: the path from their common folder.
        (["p/a/x.png", "p/b/x.png", "p/y.png"], ["a-x.png", "b-x.png", "y"]),
        # Three ways: only the still-clashing pair takes its folder.
        (["p/a/ok.bmp", "p/a/ok.webp", "p/b/ok.bmp"], ["a-ok.bmp", "ok.webp", "b-ok.bmp"]),
        # A stem that equals another file's disambiguated name is refined again.
        (["d/ok.bmp", "d/ok.webp", "d/ok.bmp.png"], ["ok.bmp", "ok.webp", "ok.bmp.png"]),
        # Differing only in case, in the same folder (a case-sensitive file system): numbers.
        (["d/X.png", "d/x.png"], ["X.png-1", "x.png-2"]),
    ],
)
def test_unique_labels_follow_the_rule_in_any_order(tmp_path, paths, expected):
    absolute = [tmp_path / p for p in paths]
    assert files.unique_labels(absolute) == expected
    # A function of the set: every order gives every file the same label.
    for order in itertools.permutations(range(len(paths))):
        labels = files.unique_labels([absolute[i] for i in order])
        assert [labels[order.index(i)] for i in range(len(paths))] == expected


def test_strength_names_are_distinct_for_distinct_values():
    values = [1.0, 0.5, 0.0, 2.0, 0.1234567, 0.1234568, 1e-5]
    names = [files.format_strength(v) for v in values]
    assert names[:4] == ["1", "0.5", "0", "2"]
    assert len(set(names)) == len(values)
    assert [float(n) for n in names] == values


def test_whole_names_that_clash_are_numbered(tmp_path):
    # Content "a_b" with style "c" and content "a" with style "b_c": both "a_b_c_1".
    contents = [tmp_path / "a_b.png", tmp_path / "a.png"]
    styles = [files.StyleChoice("c.png", "c"), files.StyleChoice("b_c.png", "b_c")]
    outputs = files.plan_outputs(contents, styles, [1.0], tmp_path / "out", False)
    names = [o.path.name for o in outputs]
    assert len(set(names)) == 4
    assert names == ["a_b_c_1-1.png", "a_b_b_c_1.png", "a_c_1.png", "a_b_c_1-2.png"]


# -- the command ---------------------------------------------------------------------


def test_same_stem_contents_give_two_files_named_by_their_source(cli, lite, style, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    sources = {"ok.bmp": photo(40, 44, 1), "ok.webp": photo(40, 44, 2)}
    Image.fromarray(sources["ok.bmp"]).save(folder / "ok.bmp")
    Image.fromarray(sources["ok.webp"]).save(folder / "ok.webp", lossless=True)
    out_dir = tmp_path / "out"
    code, out, err = cli(folder, "-o", out_dir, "--pretrained", "magenta-lite", "--style", style, "--json")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert sorted(pathlib.Path(r["output"]).name for r in records) == [
        "ok.bmp_good_1.png", "ok.webp_good_1.png"
    ]
    written = sorted(p.name for p in out_dir.iterdir())
    assert written == ["ok.bmp_good_1.png", "ok.webp_good_1.png"]
    for record in records:
        source = pathlib.Path(record["input"]).name
        assert pathlib.Path(record["output"]).name.startswith(source + "_")
        # The file holds the stylization of the input it is named after.
        expected = lite.stylize(sources[source], str(style))
        pixels = np.asarray(Image.open(record["output"]), np.float32) / 255
        np.testing.assert_allclose(pixels, expected, atol=0.5 / 255 + 1e-6)
    bmp, webp = (np.asarray(Image.open(out_dir / name)).astype(int) for name in written)
    assert np.abs(bmp - webp).max() > 10


def test_styles_with_the_same_stem_give_two_files(cli, tmp_path):
    content = tmp_path / "photo.png"
    Image.fromarray(photo(36, 40, 1)).save(content)
    for folder, seed in (("monet", 4), ("manet", 5)):
        (tmp_path / folder).mkdir()
        Image.fromarray(photo(48, 48, seed)).save(tmp_path / folder / "water.png")
    code, out, err = cli(
        content, "-o", tmp_path / "out", "--pretrained", "magenta-lite",
        "--style", tmp_path / "monet" / "water.png", "--style", tmp_path / "manet" / "water.png", "--json",
    )
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert {r["style"] for r in records} == {"monet-water.png", "manet-water.png"}
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["photo_manet-water.png_1.png", "photo_monet-water.png_1.png"]
    a, b = (np.asarray(Image.open(tmp_path / "out" / n)).astype(int) for n in written)
    assert np.abs(a - b).max() > 10


def test_existing_outputs_are_kept_unless_overwrite(cli, style, tmp_path):
    content = tmp_path / "photo.png"
    Image.fromarray(photo(36, 40, 1)).save(content)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    earlier = out_dir / "photo_good_1.png"
    earlier.write_bytes(b"an earlier result")
    argv = [content, "-o", out_dir, "--pretrained", "magenta-lite", "--style", style, "--strength", "0.5,1"]
    err = one_line_error(*cli(*argv))
    assert str(earlier) in err and "--overwrite" in err, err
    assert earlier.read_bytes() == b"an earlier result"
    assert sorted(p.name for p in out_dir.iterdir()) == ["photo_good_1.png"]  # nothing written
    code, _, err = cli(*argv, "--overwrite")
    assert code == 0, err
    assert Image.open(earlier).size == (40, 36)
    assert sorted(p.name for p in out_dir.iterdir()) == ["photo_good_0.5.png", "photo_good_1.png"]


def test_an_output_that_would_replace_an_input_is_refused_even_with_overwrite(cli, style, tmp_path):
    content = tmp_path / "photo_good_1.png"
    Image.fromarray(photo(36, 40, 1)).save(content)
    before = content.read_bytes()
    err = one_line_error(
        *cli(content, "-o", content, "--pretrained", "magenta-lite", "--style", style, "--overwrite")
    )
    assert "is one of the inputs" in err
    assert content.read_bytes() == before


def test_gif_is_read_as_its_first_frame_and_other_files_are_named(cli, lite, style, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    first, second = photo(36, 40, 6), photo(36, 40, 7)
    frames = [Image.fromarray(f).quantize(64) for f in (first, second)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    (folder / "notes.txt").write_text("not an image")
    (folder / ".DS_Store").write_bytes(b"\0")
    code, out, err = cli(
        folder, "-o", tmp_path / "out", "--pretrained", "magenta-lite", "--style", style, "--json"
    )
    assert code == 0, err
    assert [pathlib.Path(json.loads(line)["output"]).name for line in out.splitlines()] == ["anim_good_1.png"]
    skipped = [line for line in err.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 1 and "notes.txt" in skipped[0] and ".DS_Store" not in err, err
    # The first frame, as Pillow's own RGB conversion of it gives it.
    expected_pixels = np.asarray(frames[0].convert("RGB"))
    np.testing.assert_array_equal(decode_image((folder / "anim.gif").read_bytes()), expected_pixels)
    written = np.asarray(Image.open(tmp_path / "out" / "anim_good_1.png"), np.float32) / 255
    np.testing.assert_allclose(written, lite.stylize(expected_pixels, str(style)), atol=0.5 / 255 + 1e-6)


def test_unreadable_style_is_one_line(cli, tmp_path):
    content = tmp_path / "photo.png"
    Image.fromarray(photo(36, 40, 1)).save(content)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    err = one_line_error(
        *cli(content, "-o", tmp_path / "out", "--pretrained", "magenta-lite", "--style", bad)
    )
    assert err.startswith(f"error: --style image {bad} cannot be read"), err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_unknown_pretrained_is_one_line_with_the_names(cli):
    err = one_line_error(*cli("x.png", "-o", "out", "--pretrained", "foo"))
    assert "'foo'" in err and "magenta, magenta-lite" in err, err


class _ElapsedTimer:
    """A threading.Timer whose delay has always passed: it fires on start()."""

    def __init__(self, _delay, function, args=()):
        self.function, self.args = function, args

    def start(self):
        self.function(*self.args)

    def cancel(self):
        pass


def test_a_program_that_compiles_slowly_is_announced_once(monkeypatch):
    monkeypatch.setattr(stylizer_module.threading, "Timer", _ElapsedTimer)
    stylizer = Stylizer.from_pretrained("magenta-lite")
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    progress = logging.getLogger("arbitrary_style.progress")
    level = progress.level
    progress.setLevel(logging.INFO)  # setLevel, not .level: it clears the logger's cache
    progress.addHandler(handler)
    try:
        stylizer.style_embedding(photo(40, 44, 4), style_size=None)
        stylizer.style_embedding(photo(40, 44, 5), style_size=None)  # the same program: silent
    finally:
        progress.removeHandler(handler)
        progress.setLevel(level)
    assert messages == [
        "compiling the style predictor for 40x44 px (once; later runs load it from the compilation cache)"
    ]


@pytest.fixture(scope="module")
def inception():
    """A Stylizer whose predictor is Inception-v3, with abstract weights: the size checks
    only trace it, and an image that passed them would fail to run."""
    model = nnx.eval_shape(
        lambda: models.ArbitraryStyleModel(alpha=0.25, depth_multiplier=0.25, rngs=nnx.Rngs(0))
    )
    return Stylizer(model, name="inception")


def test_min_style_side(inception, lite):
    # Inception-v3's VALID strided layers (Mixed_6a) leave no features below 43 px
    # (StylePredictor.embed's hint); the lite MobileNetV2 pads SAME throughout.
    assert inception.min_style_side() == 43
    assert lite.min_style_side() == 1


@pytest.mark.parametrize("shape", [(42, 200), (200, 42), (20, 20)])
def test_too_small_style_image_is_refused_before_the_predictor_runs(inception, shape):
    message = rf"style image is {shape[0]}x{shape[1]} pixels, .* at least 43 pixels"
    with pytest.raises(ValueError, match=message):
        inception.style_embedding(np.zeros((*shape, 3), np.float32), style_size=None)


def test_too_small_style_on_the_command_line_is_one_line(cli, monkeypatch, inception, tmp_path):
    monkeypatch.setattr(stylize, "load_stylizer", lambda options, **_: inception)
    # As on a slow machine, where the failing trace outlasts the delay: the
    # error must still be the only line (no "compiling ..." before it).
    monkeypatch.setattr(stylizer_module.threading, "Timer", _ElapsedTimer)
    content = tmp_path / "photo.png"
    Image.fromarray(photo(36, 40, 1)).save(content)
    tiny = tmp_path / "tiny.png"
    Image.fromarray(photo(30, 60, 2)).save(tiny)
    argv = [content, "-o", tmp_path / "out", "--pretrained", "magenta", "--style", tiny]
    # At its native size (by default it is enlarged to 256 px).
    err = one_line_error(*cli(*argv, "--style_size", "0"))
    assert err.startswith(f"error: --style image {tiny} is 30x60 pixels, too small"), err
    assert "at least 43 pixels a side" in err
    err = one_line_error(*cli(*argv, "--style_size", "16"))
    assert err.startswith("error: --style_size 16 too small") and "give --style_size 43 or more" in err, err
    # --size is the content's; the predictor sees the content only for --strength != 1.
    err = one_line_error(*cli(*argv, "--style_size", "0", "--size", "16", "--strength", "0.5"))
    assert err.startswith("error: --size 16 too small for --strength other than 1"), err
    assert "give --size 43 or more" in err, err
    assert not list((tmp_path / "out").iterdir())
