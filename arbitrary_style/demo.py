r"""``make demo``: train configs/demo.py on the embedded data, then stylize held-out styles.

    python -m arbitrary_style.demo --workdir=workdirs/demo

Trains (or resumes) the demo config in the workdir, then writes
``<workdir>/heldout_grid.png``: the demo content photos (rows) stylized with
the demo's held-out styles (columns), which the model never saw in training.
The closing note gives the wall time, the first and last logged loss
breakdown and the grid's path.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import nnx
from ml_collections import config_flags
from PIL import Image

from arbitrary_style import checkpoints, losses, trainer
from arbitrary_style.training import observe

_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/demo.py", "Config file (default: configs/demo.py).", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", "workdirs/demo", "Training workdir.")

GRID_FILE = "heldout_grid.png"


def square(image: np.ndarray, size: int) -> np.ndarray:
    """uint8 HxWx3 -> float32 size x size x 3 in [0, 1]: shorter side resized, centre crop."""
    h, w = image.shape[:2]
    scale = size / min(h, w)
    resized = Image.fromarray(image).resize(
        (max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR
    )
    x = np.asarray(resized, np.float32) / 255.0
    top = (x.shape[0] - size) // 2
    left = (x.shape[1] - size) // 2
    return x[top : top + size, left : left + size]


def stylize_grid(model, contents: np.ndarray, styles: np.ndarray) -> np.ndarray:
    """Every content (rows) with every style (columns); first row the styles,
    first column the contents. Inputs float [N, S, S, 3] in [0, 1]."""

    @jax.jit
    def one_style(content, style):
        repeated = jnp.broadcast_to(style[None], (content.shape[0], *style.shape))
        return model(content, repeated, train=False)

    columns = [np.asarray(one_style(contents, style)) for style in styles]
    size = contents.shape[1]
    cell = lambda x: np.clip(x, 0, 1)  # noqa: E731
    blank = np.ones((size, size, 3), np.float32)
    rows = [np.concatenate([blank, *[cell(s) for s in styles]], axis=1)]
    for i in range(contents.shape[0]):
        rows.append(np.concatenate([contents[i], *[cell(c[i]) for c in columns]], axis=1))
    return np.round(np.concatenate(rows, axis=0) * 255).astype(np.uint8)


def recalibrate_batch_norm(model: nnx.Module, contents: np.ndarray, styles: np.ndarray) -> None:
    """Sets every batch norm's moving averages to the statistics of one batch of
    training pairs (every content photo with every training style), in place.

    A few hundred steps with decay 0.999 (transfer network) and 0.9997
    (Inception) leave the moving averages mostly at their initial values, so
    inference mode would normalise with statistics the network never trained
    with. This demo-only step replaces them by the statistics of a batch like
    the training batches; the checkpoint is left as trained.
    """
    norms = [node for _, node in nnx.iter_graph(model) if isinstance(node, nnx.BatchNorm)]
    saved = [bn.momentum for bn in norms]
    for bn in norms:
        bn.momentum = 0.0  # new average = this batch's statistics
    graphdef, state = nnx.split(model)

    @jax.jit
    def statistics(state, content, style):
        m = nnx.merge(graphdef, state, copy=True)
        m(content, style, train=True)
        return nnx.state(m, nnx.BatchStat)

    pairs = [(c, s) for s in range(len(styles)) for c in range(len(contents))]
    content = jnp.asarray(contents[[c for c, _ in pairs]])
    style = jnp.asarray(styles[[s for _, s in pairs]])
    nnx.update(model, statistics(state, content, style))
    for bn, momentum in zip(norms, saved):
        bn.momentum = momentum


def write_heldout_grid(workdir: str | Path) -> Path:
    """Stylizes the demo content photos with the held-out demo styles; returns the PNG path."""
    from arbitrary_style.data import demo as demo_data

    config, model = checkpoints.restore_model(workdir)
    size = config.data.image_size
    contents = np.stack([square(x, size) for x in demo_data.content_images()])
    styles = np.stack([square(x, size) for x in demo_data.style_images("heldout")])
    if config.model.kind == "arbitrary":
        train_styles = np.stack([square(x, size) for x in demo_data.style_images("train")])
        recalibrate_batch_norm(model, contents, train_styles)
    path = Path(workdir) / GRID_FILE
    Image.fromarray(stylize_grid(model, contents, styles)).save(path)
    return path


def first_and_last_metrics(workdir: str | Path) -> tuple[dict, dict]:
    """The first and the last log window's mean losses.

    The trainer also logs its very first step alone (step 1, right after
    compiling); the first *window* is the record after it.
    """
    records = [json.loads(x) for x in (Path(workdir) / trainer.METRICS_FILE).read_text().splitlines()]
    first = records[1] if len(records) > 2 and records[0]["step"] == 1 else records[0]
    return first, records[-1]


def loss_only(record: dict) -> dict:
    return {k: v for k, v in record.items() if k.startswith(("content", "style", "total", "weighted"))}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    start = time.perf_counter()
    workdir = Path(_WORKDIR.value)
    trainer.train_and_evaluate(_CONFIG.value, workdir)
    trained = time.perf_counter()
    path = write_heldout_grid(workdir)
    end = time.perf_counter()
    first, last = first_and_last_metrics(workdir)
    say = observe.log
    say("")
    say(f"demo finished in {observe.format_seconds(end - start)} wall time "
        f"(training {observe.format_seconds(trained - start)}, grid {end - trained:.0f}s)")
    for name, record in (("first", first), ("last", last)):
        say(
            f"{name} logged loss breakdown (mean over the steps up to step {record['step']}):\n"
            f"{losses.format_breakdown(loss_only(record))}"
        )
    say(f"held-out styles grid (rows: content photos; columns: unseen styles): {path}")


if __name__ == "__main__":
    app.run(main)
