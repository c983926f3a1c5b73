"""What a training run shows: TensorBoard events, console progress, image grids.

Only process 0 writes (style.md point 10); the other processes get a writer
that does nothing, so the loop needs no ``if process_index == 0`` branches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


class NullWriter:
    """Writes nothing (processes other than 0, or ``train.tensorboard=False``)."""

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        pass

    def image(self, step: int, name: str, image: np.ndarray) -> None:
        pass

    def text(self, step: int, name: str, text: str) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardWriter(NullWriter):
    """TensorBoard event files through ``flax.metrics.tensorboard`` (tf.summary).

    TensorFlow is imported here, lazily, so that runs without TensorBoard
    (tests, other processes) do not pay its import time.
    """

    def __init__(self, logdir: str | Path):
        # Deferred: flax.metrics.tensorboard imports TensorFlow (about 10 s).
        from flax.metrics import tensorboard  # noqa: PLC0415

        self._writer = tensorboard.SummaryWriter(str(logdir))

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        for name, value in values.items():
            self._writer.scalar(name, float(value), step)

    def image(self, step: int, name: str, image: np.ndarray) -> None:
        self._writer.image(name, image, step)

    def text(self, step: int, name: str, text: str) -> None:
        self._writer.text(name, text, step)

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def make_writer(workdir: str | Path, *, enabled: bool, is_chief: bool) -> NullWriter:
    if enabled and is_chief:
        return TensorBoardWriter(Path(workdir) / "tensorboard")
    return NullWriter()


def image_grid(columns: list[np.ndarray], *, pad: int = 2) -> np.ndarray:
    """Rows of samples, one column per kind: [B,H,W,3] arrays in [0, 1] -> uint8 HxWx3.

    Images of a column may differ in size from another column's (the style
    images do); every cell is padded to the largest.
    """
    batch = columns[0].shape[0]
    cell_h = max(c.shape[1] for c in columns)
    cell_w = max(c.shape[2] for c in columns)
    grid = np.ones(
        (batch * (cell_h + pad) + pad, len(columns) * (cell_w + pad) + pad, 3), np.float32
    )
    for j, column in enumerate(columns):
        column = np.clip(np.asarray(column, np.float32), 0.0, 1.0)
        for i in range(batch):
            img = column[i]
            y = pad + i * (cell_h + pad)
            x = pad + j * (cell_w + pad)
            grid[y : y + img.shape[0], x : x + img.shape[1]] = img
    return np.round(grid * 255).astype(np.uint8)


def stylize_pairs(model: nnx.Module, contents: np.ndarray, conditions) -> np.ndarray:
    """Every content with every style, in inference mode.

    Args:
      model: an ArbitraryStyleModel (``conditions``: style images [M, S, S, 3]
        in [0, 1]) or an NStyleModel (``conditions``: M integer style ids).
      contents: [N, S, S, 3] float in [0, 1].

    Returns:
      [M, N, S, S, 3]: ``result[j, i]`` is content i with style j.
    """
    graphdef, state = nnx.split(model)  # the state is an argument, not a trace constant

    @jax.jit
    def one_style(state, content, condition):
        repeated = jnp.broadcast_to(condition, (content.shape[0], *jnp.shape(condition)))
        return nnx.merge(graphdef, state)(content, repeated, train=False)

    return np.stack([np.asarray(one_style(state, contents, c)) for c in conditions])


def pairs_grid(contents: np.ndarray, styles: np.ndarray, stylized: np.ndarray) -> np.ndarray:
    """uint8 grid of ``stylize_pairs`` output: first row the styles, first
    column the contents, ``stylized[j, i]`` in row i + 1, column j + 1."""
    size = contents.shape[1]
    cell = lambda x: np.clip(x, 0, 1)  # noqa: E731
    blank = np.ones((size, size, 3), np.float32)
    rows = [np.concatenate([blank, *[cell(s) for s in styles]], axis=1)]
    for i in range(contents.shape[0]):
        rows.append(np.concatenate([contents[i], *[cell(c[i]) for c in stylized]], axis=1))
    return np.round(np.concatenate(rows, axis=0) * 255).astype(np.uint8)


class Progress:
    """Steps/s, images/s and an ETA that leave compilation out.

    The clock starts when the first step has finished (it includes the
    compile), so rates and the ETA measure training only.
    """

    def __init__(self, *, first_step: int, num_steps: int, batch_size: int):
        self.num_steps = num_steps
        self.batch_size = batch_size
        self.start_step: int | None = None
        self.start_time: float | None = None
        self.last_step = first_step
        self.last_time = time.perf_counter()
        self.compile_started = time.perf_counter()
        self.compile_seconds: float | None = None

    def first_step_done(self, step: int) -> None:
        """Call once the first step's results are on the host (after compiling)."""
        now = time.perf_counter()
        self.compile_seconds = now - self.compile_started
        self.start_step, self.start_time = step, now
        self.last_step, self.last_time = step, now

    def rates(self, step: int) -> dict[str, float]:
        """Rates since the previous call, for TensorBoard."""
        now = time.perf_counter()
        steps = step - self.last_step
        seconds = max(now - self.last_time, 1e-9)
        self.last_step, self.last_time = step, now
        if steps <= 0:
            return {}
        return {"steps_per_sec": steps / seconds, "images_per_sec": steps * self.batch_size / seconds}

    def eta_seconds(self, step: int) -> float:
        if self.start_time is None or step <= self.start_step:
            return math.nan
        rate = (step - self.start_step) / (time.perf_counter() - self.start_time)
        return (self.num_steps - step) / rate

    def line(self, step: int, loss: float, rates: Mapping[str, float]) -> str:
        """One progress line; no rates when there are none (the first step's
        time is mostly compilation, and ``rates`` leaves it out)."""
        eta = self.eta_seconds(step)
        eta_text = "?" if math.isnan(eta) else format_seconds(eta)
        rate_text = (
            f"{rates['steps_per_sec']:.3g} steps/s  {rates['images_per_sec']:.3g} images/s  "
            if "steps_per_sec" in rates
            else ""
        )
        return f"step {step}/{self.num_steps}  loss {loss:.5g}  {rate_text}ETA {eta_text}"


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def log(message: str) -> None:
    """Console output (stdout, flushed: progress must show under pipes too)."""
    print(message, flush=True)
