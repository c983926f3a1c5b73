r"""Flicker of per-frame vs temporally smoothed stylization, on a clip made here.

    .venv/bin/python -m experiments.flicker.compare --out experiments/flicker

The clip (``temporal.moving_square_clip``): the demo photo "coffee" at
144x192 as a static scene, a 40x40 crop of "chelsea" moving 3 px right and
1.5 px down per frame, 24 frames, shot-like noise of 3/255 at mid-grey drawn
anew for every pixel of every frame. Model: the published lite pair
(``Stylizer.from_pretrained("magenta-lite")``, offline). Styles: the demo's
six held-out procedural styles (arbitrary_style/data/demo.py).

Each setting of ``inference.video.FrameStylizer`` (statistics smoothing,
input denoising, output blending; all 0 is per-frame stylization) stylizes
the clip in every style. Per setting, means over the styles of:

* warping error and static-region change (arbitrary_style/evaluation/temporal.py),
  the latter both over the flow's static pixels and over the pixels the
  square never covers (a mask from the clip's construction, independent of
  any flow);
* content and style loss of the frames (arbitrary_style/losses.py, the
  paper's layers and weights) against the noisy input frame and the style,
  through a VGG-16 with random weights (seed 0): no published loss network
  is available offline. Random convolutional features still describe texture
  (Ustyuzhaninov et al. 2017, "What does it take to generate natural
  textures?", ICLR), but the absolute values mean nothing: only the ratio to
  per-frame is reported;
* the content score (arbitrary_style/evaluation/scorer.py, edge correlation
  with the input frame; no network).

Writes ``table.md`` (the table of experiments/flicker/README.md) and
``frames.png`` (frames 11 and 12 of one style per-frame and with the
defaults, and their differences x4) to ``--out``. About 1 minute on 2 CPU cores.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from flax import nnx
from PIL import Image

from arbitrary_style import config as base
from arbitrary_style import images, losses, models
from arbitrary_style.data import demo
from arbitrary_style.evaluation import scorer, temporal
from arbitrary_style.inference import video
from arbitrary_style.inference.stylizer import Stylizer
from experiments import script

# (name, smoothing, denoise, blend)
SETTINGS = (
    ("per-frame", 0.0, 0.0, 0.0),
    ("statistics smoothed (0.9)", 0.9, 0.0, 0.0),
    ("+ input denoised (0.8)", 0.9, 0.8, 0.0),
    ("+ output blended (0.5): defaults", video.DEFAULT_SMOOTHING, video.DEFAULT_DENOISE, video.DEFAULT_BLEND),
    ("output blended (0.5) only", 0.0, 0.0, 0.5),
)


def define_flags(flag_values: flags.FlagValues) -> None:
    flags.DEFINE_string(
        "out", "experiments/flicker", "Folder for table.md and frames.png.", flag_values=flag_values
    )
    flags.DEFINE_integer("frames", 24, "Clip length.", flag_values=flag_values)
    flags.DEFINE_integer("styles", 6, "How many of the demo's held-out styles.", flag_values=flag_values)


def main(argv: Sequence[str]) -> dict:
    """The script in this process; ``argv``: the arguments after the program name."""
    return compare(*script.parse_flags(["compare", *argv], define_flags))


def make_clip(frames: int) -> tuple[list[np.ndarray], np.ndarray]:
    photos = demo.content_images()
    background = images.resize(images.load_image(photos[demo.CONTENT_NAMES.index("coffee")]), (144, 192))
    patch = images.resize(images.load_image(photos[demo.CONTENT_NAMES.index("chelsea")]), (40, 40))
    return temporal.moving_square_clip(background, patch, frames)


def loss_function(network=None, weights: losses.LossWeights | None = None):
    """(frames, style, outputs) -> (content loss, style loss) of the frames.

    Through ``network`` with ``weights``; by default the paper's weights and a
    random VGG-16 (no download; only ratios between settings mean anything).
    """
    if network is None or weights is None:
        loss_config = base.base_config().loss
        weights = losses.LossWeights.from_config(loss_config)
        network = models.build_loss_network(loss_config, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(network)

    @jax.jit
    def terms(state, contents, style, stylized):
        breakdown = losses.style_transfer_losses(
            nnx.merge(graphdef, state),
            content_images=contents, style_images=style, stylized_images=stylized, weights=weights,
        )
        return breakdown["weighted/content"], breakdown["weighted/style"]

    def evaluate(contents, style, stylized):
        content, style_loss = terms(
            state, jnp.asarray(contents), jnp.asarray(style)[None], jnp.asarray(stylized)
        )
        return float(content), float(style_loss)

    return evaluate


def frame_figures(clip, outputs: np.ndarray, never_covered: np.ndarray, style_image, evaluate) -> dict:
    """The flicker figures and the frames' losses and content score of one stylized clip."""
    figures = temporal.flicker(clip, outputs)
    figures["static_change_never_covered"] = temporal.flicker(clip, outputs, never_covered)["static_change"]
    inputs = np.stack([temporal.as_float(frame) for frame in clip])
    figures["content_loss"], figures["style_loss"] = evaluate(inputs, style_image, outputs)
    figures["content_score"] = float(scorer.content_scores(inputs, outputs).mean())
    return figures


def compare(args: flags.FlagValues, _: Sequence[str]) -> dict:
    clip, never_covered = make_clip(args.frames)
    stylizer = Stylizer.from_pretrained("magenta-lite")
    styles = demo.style_images("heldout")[: args.styles]
    evaluate = loss_function()
    rows: dict[str, list[dict]] = {name: [] for name, *_ in SETTINGS}
    shown = {}
    for k, style in enumerate(styles):
        code = stylizer.style_code(style)
        for name, smoothing, denoise, blend in SETTINGS:
            stylize = video.FrameStylizer(stylizer, code, smoothing=smoothing, denoise=denoise, blend=blend)
            outputs = np.stack([stylize(frame) for frame in clip])
            style_image = images.load_image(style)
            rows[name].append(frame_figures(clip, outputs, never_covered, style_image, evaluate))
            if k == 0:
                shown[name] = outputs
    means = {
        name: {key: float(np.mean([r[key] for r in runs])) for key in runs[0]} for name, runs in rows.items()
    }
    table = format_table(means)
    print(table)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table + "\n")
    inputs = np.stack([temporal.as_float(frame) for frame in clip])
    # Rows: input, per-frame, the defaults.
    figure = frames_figure([inputs, shown["per-frame"], shown[SETTINGS[3][0]]])
    Image.fromarray(figure).save(out / "frames.png")
    return means


def format_table(means: dict[str, dict[str, float]]) -> str:
    base_row = means["per-frame"]
    # (title, key, whether the value means something alone: the losses of a
    # random VGG only as ratios)
    columns = (
        ("warping error", "warping_error", True),
        ("static change (flow)", "static_change", True),
        ("static change (never covered)", "static_change_never_covered", True),
        ("content loss", "content_loss", False),
        ("style loss", "style_loss", False),
        ("content score", "content_score", True),
    )
    lines = [
        "| setting | " + " | ".join(title for title, _, _ in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name, figures in means.items():
        cells = []
        for _, key, absolute in columns:
            ratio = figures[key] / base_row[key]
            cells.append(f"{figures[key]:.4g} ({ratio:.2f}x)" if absolute else f"{ratio:.3f}x")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def frames_figure(stacks: Sequence[np.ndarray]) -> np.ndarray:
    """One row per stack of frames: frame 11, frame 12 and |12 - 11| x4 (the
    last two frames of a clip shorter than 13)."""
    first = min(11, len(stacks[0]) - 2)
    rows = []
    for frames in stacks:
        a, b = frames[first], frames[first + 1]
        rows.append(np.concatenate([a, b, np.clip(4 * np.abs(b - a), 0, 1)], axis=1))
    return video.to_uint8(np.concatenate(rows, axis=0))


if __name__ == "__main__":
    script.run_as_script(compare, define_flags)
