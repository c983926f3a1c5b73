"""The stylize command and the large-image features of the Stylizer."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from arbitrary_style import stylize
from arbitrary_style.inference import color
from arbitrary_style.inference.stylizer import Stylizer

from conftest import synthetic_photo

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def lite():
    return Stylizer.from_pretrained("magenta-lite")


def photo(h, w, seed=0) -> np.ndarray:
    """``synthetic_photo`` as uint8, as image files hold it."""
    return np.round(synthetic_photo(h, w, seed) * 255).astype(np.uint8)


def write(path, array) -> str:
    Image.fromarray(array).save(path)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    contents = d / "contents"
    contents.mkdir()
    write(contents / "odd.png", photo(131, 257, 1))
    write(contents / "small.jpg", photo(64, 48, 2))
    (contents / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    return {
        "dir": contents,
        "style_a": write(d / "a.png", photo(96, 96, 3)),
        "style_b": write(d / "b.png", photo(80, 100, 4)),
    }


def test_tiled_equals_untiled_on_1024x768(lite):
    content = photo(768, 1024, 5)
    style = photo(256, 256, 6)
    whole = lite.stylize(content, style)
    tiled = lite.stylize(content, style, tile=512, overlap=128)
    diff = np.abs(whole - tiled)
    print(f"tiled vs untiled 1024x768 (tile 512, overlap 128): max {diff.max():.4f}, mean {diff.mean():.6f}")
    # Measured: max 0.0020 (overlap 64 gives 0.026, 96 gives 0.0063).
    assert diff.max() <= 0.005


def test_blend_one_zero_is_the_single_style(lite, files):
    content = photo(64, 48, 2)
    single = lite.stylize(content, files["style_a"])
    blend = lite.stylize(content, [(files["style_a"], 1.0), (files["style_b"], 0.0)])
    np.testing.assert_allclose(blend, single, atol=1e-6)


def test_strength_zero_is_identity_interpolation_and_one_full_style(lite, files):
    content = photo(64, 48, 2)
    own = lite.style_embedding(content)
    np.testing.assert_allclose(
        lite.stylize(content, files["style_a"], strength=0.0), lite.stylize(content, own), atol=1e-5
    )
    np.testing.assert_allclose(
        lite.stylize(content, files["style_a"], strength=1.0),
        lite.stylize(content, lite.style_embedding(files["style_a"])),
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="strength"):
        lite.stylize(content, files["style_a"], strength=float("nan"))


def test_preserve_color_keeps_content_chroma(lite, files):
    content = photo(64, 48, 2)
    out = lite.stylize(content, files["style_a"], preserve_color=True)
    kept = color.rgb_to_ycbcr(content / 255.0)[..., 1:]
    got = color.rgb_to_ycbcr(out)[..., 1:]
    # Pixels whose new luma pushes them out of the RGB gamut are clipped; all
    # others keep the content's chroma exactly.
    in_gamut = np.all((out > 0) & (out < 1), axis=-1)
    assert in_gamut.mean() > 0.5
    np.testing.assert_allclose(got[in_gamut], kept[in_gamut], atol=1e-5)


def run_cli(capsys, *argv):
    code = stylize.run(["stylize", *(str(a) for a in argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_folder_json_odd_size_and_failures(capsys, files, tmp_path):
    out_dir = tmp_path / "out"
    code, out, err = run_cli(
        capsys,
        files["dir"], tmp_path / "missing.png", "-o", out_dir, "--pretrained", "magenta-lite",
        "--style", files["style_a"], "--strength", "0.5,1", "--json",
    )
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 1, err
    assert "corrupt.jpg" in err and "missing.png" in err and "2 input(s) failed" in err
    assert len(records) == 4  # 2 readable images x 2 strengths
    names = sorted(pathlib.Path(r["output"]).name for r in records)
    assert names == ["odd_a_0.5.png", "odd_a_1.png", "small_a_0.5.png", "small_a_1.png"]
    odd = Image.open(out_dir / "odd_a_1.png")
    assert odd.size == (257, 131)  # PIL: (width, height)
    assert {r["size"][0] for r in records if r["input"].endswith("odd.png")} == {131}
    assert all(set(r) >= {"input", "output", "style", "strength", "size", "seconds"} for r in records)


def test_cli_single_output_file_and_blend(capsys, files, tmp_path):
    target = tmp_path / "one.png"
    code, _, err = run_cli(
        capsys,
        files["dir"] / "small.jpg", "-o", target, "--pretrained", "magenta-lite",
        "--style", files["style_a"], "--style", files["style_b"], "--style_weights", "1,0",
    )
    assert code == 0, err
    assert Image.open(target).size == (48, 64)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--strength", "-0.5"], "--strength"),
        (["--strength", "nan"], "--strength"),
        (["--style_weights", "1,2,3"], "--style_weights has 3 values for 1 styles"),
        (["--tile", "30"], "--tile 30 not a multiple of 4"),
        (["--style_index", "1"], "N-style"),
    ],
)
def test_cli_bad_options_fail_before_work(capsys, files, tmp_path, extra, message):
    out_dir = tmp_path / "never"
    code, _, err = run_cli(
        capsys, files["dir"], "-o", out_dir, "--pretrained", "magenta-lite",
        "--style", files["style_a"], *extra,
    )
    assert code == 2 and message in err, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert not list(out_dir.glob("*.png")) if out_dir.exists() else True


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["x.png", "-o", "out", "--pretrained", "magenta-lite", "--nope"],
            "Unknown command line flag 'nope'",
        ),
        (["x.png", "-o", "out", "--pretrained", "magenta-lite", "--size", "abc"], "flag --size=abc"),
        (["x.png", "-o", "out"], "no model given, stylize runs one model, give one of --workdir"),
        (
            ["x.png", "-o", "out", "--workdir", "w", "--pretrained", "magenta-lite"],
            "--workdir and --pretrained given",
        ),
        (["x.png", "--pretrained", "magenta-lite"], "-o/--output is required"),
        (["-o", "out", "--pretrained", "magenta-lite"], "no content images"),
        (["x.png", "-o", "out", "--pretrained", "magenta-lite", "--step", "3"], "--step without --workdir"),
        (
            ["x.png", "-o", "out", "--pretrained", "magenta-huge"],
            "--pretrained 'magenta-huge' unknown, there are no published weights by that name, "
            "give one of magenta, magenta-lite",
        ),
    ],
)
def test_cli_malformed_command_lines_are_one_line(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and message in err and not out, err
    assert err.startswith("error: ") and err.count("\n") == 1, err


def test_cli_calls_do_not_share_flags(capsys):
    code, _, err = run_cli(capsys, "x.png", "-o", "out", "--workdir", "w", "--pretrained", "magenta-lite")
    assert code == 2 and "--workdir and --pretrained given" in err
    # Had --workdir stayed set, this would fail the same way.
    code, _, err = run_cli(capsys, "x.png", "-o", "out", "--pretrained", "magenta-lite", "--tile", "30")
    assert code == 2 and "not a multiple of 4" in err, err


def test_command_line_bad_option_is_one_line_and_help_lists_flags(tmp_path):
    command = [sys.executable, "-m", "arbitrary_style.stylize"]
    bad = subprocess.run(
        [*command, "x.png", "-o", tmp_path, "--pretrained", "magenta-lite", "--tile", "30"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert bad.returncode == 2 and not bad.stdout, bad
    assert bad.stderr == "error: --tile 30 not a multiple of 4, the network's stride is 4, give 28 or 32\n"
    shown = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert "Stylize photos or folders of photos" in shown.stdout
    for flag in ("-o,--output", "--style:", "--style_index", "--strength", "--max_pixels", "--[no]json"):
        assert flag in shown.stdout, flag


def test_cli_unwritable_output(capsys, files, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli(
        capsys, files["dir"], "-o", blocker / "sub", "--pretrained", "magenta-lite",
        "--style", files["style_a"],
    )
    assert code == 2 and "not writable" in err


def test_nstyle_stylizer_indices_blends_any_size(nstyle_workdir):
    s = Stylizer.from_workdir(nstyle_workdir)
    assert not s.takes_style_images and s.num_styles == 3 and s.bottleneck_dim is None
    content = photo(37, 29, 7)
    outs = [s.stylize(content, i) for i in range(3)]
    assert all(o.shape == (37, 29, 3) for o in outs)
    assert np.abs(outs[0] - outs[2]).max() > 1e-3
    np.testing.assert_allclose(s.stylize(content, [(1, 1.0), (2, 0.0)]), outs[1], atol=1e-6)
    with pytest.raises(ValueError, match="styles 0..2"):
        s.stylize(content, 3)


def test_cli_nstyle_all_styles_and_index_range(capsys, nstyle_workdir, files, tmp_path):
    code, out, err = run_cli(
        capsys, files["dir"] / "small.jpg", "-o", tmp_path / "all", "--workdir", nstyle_workdir, "--json"
    )
    assert code == 0, err
    assert sorted(json.loads(line)["style"] for line in out.splitlines()) == ["style0", "style1", "style2"]
    code, _, err = run_cli(
        capsys, files["dir"] / "small.jpg", "-o", tmp_path / "bad", "--workdir", nstyle_workdir,
        "--style_index", "0,5",
    )
    assert code == 2 and "styles 0..2" in err
    code, _, err = run_cli(
        capsys, files["dir"] / "small.jpg", "-o", tmp_path / "bad", "--workdir", nstyle_workdir,
        "--style_index", "0,1", "--style_weights", "1",
    )
    assert code == 2 and "--style_weights has 1 values for 2 styles" in err
