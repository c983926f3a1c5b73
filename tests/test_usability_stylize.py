"""Style sizes as the reference's script, folders of styles, named N-style styles, contact sheets.

* ``--style_size`` / ``style_size`` (default 256): the predictor input of a
  photograph equals, in shape, what Magenta's own
  ``arbitrary_image_stylization_with_weights.py`` preprocessing gives (its
  ``image_utils`` functions, run under TF), and differs only by the resize
  filter; the embeddings follow.
* ``--style FOLDER``: every image in it, one output each or blended in sorted order.
* N-style outputs named by the workdir's ``styles.json``; ``--sheet`` lays every
  style out on one photo, each cell the stylization the command writes alone.
"""

from __future__ import annotations

import json
import pathlib
import shutil

import numpy as np
import pytest
from PIL import Image
from skimage import data as skimage_data
from test_reference_oracle import import_magenta

from arbitrary_style import stylize
from arbitrary_style.images import resize_shorter_side
from arbitrary_style.inference import sheet, style_record
from arbitrary_style.inference import stylizer as stylizer_module
from arbitrary_style.inference.stylizer import Stylizer, prepare_style

from conftest import synthetic_photo


def photo(h: int, w: int, seed: int) -> np.ndarray:
    return np.round(synthetic_photo(h, w, seed) * 255).astype(np.uint8)


def write(path: pathlib.Path, array: np.ndarray) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def read(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), np.float32) / 255


@pytest.fixture(scope="module")
def lite():
    return Stylizer.from_pretrained("magenta-lite")


@pytest.fixture
def cli(capsys):
    def run(*argv):
        code = stylize.run(["stylize", *(str(a) for a in argv)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def one_line_error(code: int, out: str, err: str) -> str:
    assert code == 2 and not out, (code, out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_command_line_defaults_are_the_librarys():
    assert stylize.DEFAULT_STYLE_SIZE == stylizer_module.DEFAULT_STYLE_SIZE == 256
    assert stylize.DEFAULT_CELL == sheet.DEFAULT_CELL


# -- the reference's style preprocessing ------------------------------------------------


def test_style_input_matches_the_reference_scripts_preprocessing(lite, tmp_path):
    """Magenta's script (``--style_image_size=256``, ``--style_square_crop=False``):
    ``image_utils.resize_image(load_np_image_uint8(path)[:, :, :3], 256)``, i.e.
    shorter side to 256, aspect kept, no crop, TF1 bilinear resize of the uint8
    values, then / 255."""
    tf = pytest.importorskip("arbitrary_style.data._tf").tf()
    image_utils = import_magenta("models.image_stylization.image_utils")
    # Photographs no other test uses: downscaled 1.56x (where our antialiasing
    # differs most) and a crop enlarged 1.7x.
    coffee = write(tmp_path / "coffee.png", skimage_data.coffee())
    cat = write(tmp_path / "cat.png", skimage_data.chelsea()[60:210, 100:330])
    for path, shape in ((coffee, (256, 384)), (cat, (256, 392))):
        pixels = image_utils.load_np_image_uint8(str(path))[:, :, :3]
        theirs = image_utils.resize_image(tf.constant(pixels), 256).numpy()[0]
        ours = prepare_style(path)
        # Both filters leave some values a float32 rounding step outside [0, 1],
        # which the Stylizer refuses in an image it is given.
        theirs, ours = np.clip(theirs, 0.0, 1.0), np.clip(ours, 0.0, 1.0)
        assert ours.shape == theirs.shape == (*shape, 3), path
        pixel_diff = np.abs(ours - theirs)
        # Only the filter differs (half-pixel centres, antialiasing when shrinking).
        e_ours, e_theirs = (lite.style_embedding(x, style_size=None) for x in (ours, theirs))
        native = lite.style_embedding(path, style_size=0)
        relative = np.linalg.norm(e_ours - e_theirs) / np.linalg.norm(e_theirs)
        native_relative = np.linalg.norm(native - e_theirs) / np.linalg.norm(e_theirs)
        print(
            f"{path.name}: input mean |diff| {pixel_diff.mean():.4f} max {pixel_diff.max():.3f}; "
            f"embedding relative diff {relative:.4f} (native size: {native_relative:.4f})"
        )
        # Measured: mean 0.011 / max 0.33 (coffee, shrunk), 0.009 / 0.16 (cat, enlarged);
        # embeddings 3.5% and 0.2% apart, against 18% and 21% at the native size.
        assert pixel_diff.mean() < 0.02 and pixel_diff.max() < 0.5
        np.testing.assert_allclose(lite.style_embedding(path), e_ours, atol=1e-6)
        assert relative < 0.1
        assert native_relative > 2 * relative  # the size shows where the filter barely does


# -- --style_size ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("usability")
    styles = d / "styles"
    write(styles / "b_wave.png", photo(80, 100, 4))
    write(styles / "a_dots.png", photo(96, 96, 3))
    write(styles / "more" / "c_lines.jpg", photo(60, 90, 5))
    (styles / "notes.txt").write_text("not an image")
    (d / "empty").mkdir()
    return {
        "content": write(d / "photo.png", photo(40, 48, 1)),
        "styles": styles,
        "empty": d / "empty",
        "sorted": [styles / "a_dots.png", styles / "b_wave.png", styles / "more" / "c_lines.jpg"],
    }


def test_style_size_resizes_the_style_alone(cli, lite, inputs, tmp_path):
    content, style = inputs["content"], inputs["sorted"][0]
    runs = {}
    for style_size in ("256", "0", "48"):
        out = tmp_path / f"out{style_size}.png"
        argv = ["--style_size", style_size] if style_size != "256" else []
        code, _, err = cli(content, "-o", out, "--pretrained", "magenta-lite", "--style", style, *argv)
        assert code == 0, err
        runs[style_size] = read(out)
    image = read(content)
    # Independently: the style resized by hand, then given at its native size.
    for style_size in (256, 48):
        expected = lite.stylize(image, resize_shorter_side(read(style), style_size), style_size=None)
        np.testing.assert_allclose(runs[str(style_size)], expected, atol=0.5 / 255 + 1e-6)
    native = lite.stylize(image, read(style), style_size=None)
    np.testing.assert_allclose(runs["0"], native, atol=0.5 / 255 + 1e-6)
    assert np.abs(runs["256"] - runs["0"]).mean() > 2 / 255


def test_style_size_also_sets_the_contents_embedding_for_strength(cli, lite, inputs, tmp_path):
    """--strength != 1 embeds the content too: with --style_size 0 at its
    native size, with --style_size 48 resized like the style."""
    content, style = inputs["content"], inputs["sorted"][0]
    image = read(content)
    for style_size in (0, 48):
        out = tmp_path / f"half{style_size}.png"
        code, _, err = cli(content, "-o", out, "--pretrained", "magenta-lite", "--style", style,
                           "--strength", "0.5", "--style_size", str(style_size))
        assert code == 0, err
        expected = lite.stylize(image, read(style), strength=0.5, style_size=style_size or None)
        np.testing.assert_allclose(read(out), expected, atol=0.5 / 255 + 1e-6)


def test_strength_zero_is_the_content_as_its_own_style(lite):
    # As the reference feeds the content through the style preprocessing.
    content, style = synthetic_photo(40, 48, 5), synthetic_photo(48, 48, 6)
    for style_size in (256, 64, None):
        own = lite.style_embedding(content, style_size=style_size)
        np.testing.assert_allclose(
            lite.stylize(content, style, strength=0.0, style_size=style_size),
            lite.stylize(content, own),
            atol=1e-5,
        )


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--style_size", "-1"], "--style_size -1 out of range"),
        (["--style", "{empty}"], "--style folder {empty} holds no images"),
        (["--style", "{missing}"], "--style {missing} not found, no such file or folder"),
        (["--style", "{styles}", "--style_weights", "1,1"], "--style_weights has 2 values for 3 styles"),
    ],
)
def test_bad_style_options_are_one_line(cli, inputs, tmp_path, extra, message):
    names = {"empty": inputs["empty"], "missing": tmp_path / "missing", "styles": inputs["styles"]}
    extra = [e.format(**names) for e in extra]
    if "--style" not in extra:
        extra += ["--style", inputs["sorted"][0]]
    err = one_line_error(
        *cli(inputs["content"], "-o", tmp_path / "out", "--pretrained", "magenta-lite", *extra)
    )
    assert message.format(**names) in err, err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


# -- folders of styles -------------------------------------------------------------------


def test_style_folder_gives_one_output_per_image(cli, lite, inputs, tmp_path):
    code, out, err = cli(
        inputs["content"], "-o", tmp_path / "out", "--pretrained", "magenta-lite",
        "--style", inputs["styles"], "--style", inputs["sorted"][0], "--json",
    )
    assert code == 0, err
    assert "notes.txt" in err  # named as skipped
    records = [json.loads(line) for line in out.splitlines()]
    # A style given twice (in the folder and by name) is applied once.
    assert sorted(pathlib.Path(r["output"]).name for r in records) == [
        "photo_a_dots_1.png", "photo_b_wave_1.png", "photo_c_lines_1.png"
    ]
    image = read(inputs["content"])
    for style in inputs["sorted"]:
        expected = lite.stylize(image, read(style))
        written = read(tmp_path / "out" / f"photo_{style.stem}_1.png")
        np.testing.assert_allclose(written, expected, atol=0.5 / 255 + 1e-6)


def test_style_folder_blend_weights_follow_the_sorted_order(cli, lite, inputs, tmp_path):
    target = tmp_path / "blend.png"
    code, out, err = cli(
        inputs["content"], "-o", target, "--pretrained", "magenta-lite",
        "--style", inputs["styles"], "--style_weights", "0,3,1", "--json",
    )
    assert code == 0, err
    assert json.loads(out)["style"] == "b_wavex3+c_linesx1"
    a, b, c = (lite.style_embedding(read(p)) for p in inputs["sorted"])
    expected = lite.stylize(read(inputs["content"]), 0.75 * b + 0.25 * c)
    np.testing.assert_allclose(read(target), expected, atol=0.5 / 255 + 1e-5)


# -- named N-style styles and contact sheets ------------------------------------------------


def write_style_record(workdir: pathlib.Path, names) -> None:
    """styles.json and 128 px thumbnails, as N-style training writes them."""
    entries = []
    for i, name in enumerate(names):
        thumbnail = f"styles/{i:04d}_{name}.png"
        write(workdir / thumbnail, photo(128, 128, 20 + i))
        source = f"/data/styles/{name}.jpg"
        entries.append({"index": i, "name": name, "source": source, "thumbnail": thumbnail})
    (workdir / style_record.STYLE_RECORD).write_text(json.dumps({"styles": entries}))


@pytest.fixture
def named_workdir(nstyle_workdir, tmp_path):
    """The same model, its record naming styles 0 and 2 alike."""
    workdir = tmp_path / "named"
    shutil.copytree(nstyle_workdir, workdir)
    write_style_record(workdir, ["water", "Starry Night", "water"])
    return workdir


def test_style_names_from_the_record(nstyle_workdir, named_workdir):
    assert Stylizer.from_workdir(nstyle_workdir).style_names is None
    assert Stylizer.from_workdir(named_workdir).style_names == ["water", "Starry Night", "water"]
    assert Stylizer.from_pretrained("magenta-lite").style_names is None


def test_outputs_are_named_by_style(cli, named_workdir, inputs, tmp_path):
    code, out, err = cli(inputs["content"], "-o", tmp_path / "out", "--workdir", named_workdir, "--json")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "photo_Starry Night_1.png", "photo_water-1_1.png", "photo_water-2_1.png"
    ]
    model = Stylizer.from_workdir(named_workdir)
    for record in map(json.loads, out.splitlines()):
        index = {"water-1": 0, "Starry Night": 1, "water-2": 2}[record["style"]]
        expected = model.stylize(read(inputs["content"]), index)
        np.testing.assert_allclose(read(record["output"]), expected, atol=0.5 / 255 + 1e-6)


def test_a_record_that_does_not_fit_is_one_line(cli, named_workdir, inputs, tmp_path):
    write_style_record(named_workdir, ["only", "two"])
    err = one_line_error(*cli(inputs["content"], "-o", tmp_path / "out", "--workdir", named_workdir))
    assert f"style record {named_workdir / 'styles.json'} holds 2 entries" in err, err
    assert "the model has 3 styles" in err, err
    (named_workdir / "styles.json").write_text("{not json")
    err = one_line_error(*cli(inputs["content"], "-o", tmp_path / "out", "--workdir", named_workdir))
    assert "cannot be read" in err, err


def test_style_size_is_for_arbitrary_models(cli, nstyle_workdir, inputs, tmp_path):
    err = one_line_error(
        *cli(inputs["content"], "-o", tmp_path / "out", "--workdir", nstyle_workdir, "--style_size", "128")
    )
    assert "--style_size is for arbitrary-style models" in err, err


def check_sheet(sheet_path, singles):
    """The sheet is the photo and ``singles`` (the command's own outputs) in a grid."""
    cells = [("photo", None), *singles]
    image = read(sheet_path)
    h, w = read(singles[0][1]).shape[:2]
    columns = int(np.ceil(np.sqrt(len(cells))))
    rows = -(-len(cells) // columns)
    assert image.shape == (6 + rows * (16 + h + 6), 6 + columns * (w + 6), 3)
    for k, (_, single) in enumerate(cells):
        row, column = divmod(k, columns)
        top, left = 6 + row * (16 + h + 6) + 16, 6 + column * (w + 6)
        cell = image[top : top + h, left : left + w]
        if single is not None:
            np.testing.assert_array_equal(cell, read(single))
        # A caption above, in black on white, and white around the cell.
        strip = image[top - 16 : top, left : left + w]
        assert strip.min() < 0.5 and np.median(strip) == 1.0
        assert np.all(image[top : top + h, left - 6 : left] == 1.0)
    return image


def test_nstyle_sheet_shows_every_style(cli, named_workdir, inputs, tmp_path):
    singles_dir = tmp_path / "singles"
    code, _, err = cli(inputs["content"], "-o", singles_dir, "--workdir", named_workdir)
    assert code == 0, err
    code, out, err = cli(
        inputs["content"], "-o", tmp_path / "sheets", "--workdir", named_workdir, "--sheet", "--json"
    )
    assert code == 0, err
    record = json.loads(out)
    assert pathlib.Path(record["output"]) == tmp_path / "sheets" / "photo_sheet.png"
    assert record["styles"] == ["water-1", "Starry Night", "water-2"]
    singles = [(name, singles_dir / f"photo_{name}_1.png") for name in record["styles"]]
    check_sheet(record["output"], singles)
    # The photo first, as given (40x48 is below --sheet_cell).
    image = read(record["output"])
    np.testing.assert_array_equal(image[22:62, 6:54], read(inputs["content"]))


def test_arbitrary_sheet_of_a_style_folder(cli, inputs, tmp_path):
    code, _, err = cli(
        inputs["content"], "-o", tmp_path / "singles", "--pretrained", "magenta-lite",
        "--style", inputs["styles"], "--strength", "0.5,1",
    )
    assert code == 0, err
    target = tmp_path / "sheet.png"
    code, _, err = cli(
        inputs["content"], "-o", target, "--pretrained", "magenta-lite",
        "--style", inputs["styles"], "--strength", "0.5,1", "--sheet",
    )
    assert code == 0, err
    singles = [
        (f"{p.stem} {s}", tmp_path / "singles" / f"photo_{p.stem}_{s}.png")
        for p in inputs["sorted"] for s in ("0.5", "1")
    ]
    check_sheet(target, singles)


def test_sheet_of_a_large_photo_is_a_thumbnail(lite, tmp_path):
    big = synthetic_photo(300, 500, 3)
    small = sheet.thumbnail(big, 100)
    assert small.shape == (60, 100, 3)
    np.testing.assert_allclose(small.mean((0, 1)), big.mean((0, 1)), atol=0.01)
    assert sheet.thumbnail(small, 256) is small
    assert sheet.grid_shape(1) == (1, 1) and sheet.grid_shape(4) == (2, 2) and sheet.grid_shape(5) == (2, 3)
