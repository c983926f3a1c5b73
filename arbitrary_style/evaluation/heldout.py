"""The demo's held-out pairs: every demo photo with every demo style the model
never saw in training, stylized by the start and the trained model, drawn as
grids and scored (``arbitrary_style.evaluation.scorer``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from PIL import Image

from arbitrary_style.data import demo as demo_data
from arbitrary_style.evaluation import scorer
from arbitrary_style.training import checkpoints, networks, observe, trainer

GRID_FILE = "heldout_grid.png"



START_GRID_FILE = "heldout_grid_start.png"



SCORES_FILE = "heldout_scores.json"



@dataclasses.dataclass(frozen=True)
class HeldOut:
    """The demo's held-out pairs: every content photo with every unseen style."""

    contents: np.ndarray  # [N, S, S, 3] float in [0, 1]
    styles: np.ndarray  # [M, S, S, 3]

    @classmethod
    def at(cls, size: int) -> HeldOut:
        return cls(
            contents=np.stack([demo_data.square(x, size) for x in demo_data.content_images()]),
            styles=np.stack([demo_data.square(x, size) for x in demo_data.style_images("heldout")]),
        )

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(photos, styles) of every pair, in ``observe.stylize_pairs``' order flattened."""
        photos = np.tile(self.contents, (len(self.styles), 1, 1, 1))
        styles = np.repeat(self.styles, len(self.contents), axis=0)
        return photos, styles



def start_description(config) -> str:
    """What the run started from, in words."""
    if config.weights.get("model_init", ""):
        return f"start ({config.weights.model_init} weights)"
    return "start (random init)"



def write_heldout_results(workdir: str | Path) -> dict[str, dict[str, float]]:
    """Stylizes the held-out pairs with the start and the trained model;
    writes ``GRID_FILE`` and ``START_GRID_FILE``; returns the scores of the
    identity (the photo itself), the start and the trained model."""
    config, trained = checkpoints.restore_model(workdir)
    held_out = HeldOut.at(config.data.image_size)
    start, loss_network = networks.build_networks(config)
    photos, styles = held_out.pairs()
    style_scorer = scorer.StyleScorer(loss_network, photos, styles)

    def score(stylized):
        flat = stylized.reshape(photos.shape)
        return scorer.summarize(scorer.content_scores(photos, flat), style_scorer(flat))

    results = {"identity (the photo itself)": score(photos)}
    for name, model, file in (
        (start_description(config), start, START_GRID_FILE),
        ("trained", trained, GRID_FILE),
    ):
        stylized = observe.stylize_pairs(model, held_out.contents, held_out.styles)
        Image.fromarray(observe.pairs_grid(held_out.contents, held_out.styles, stylized)).save(
            Path(workdir) / file
        )
        results[name] = score(stylized)
    return results



def format_scores(results: dict[str, dict[str, float]]) -> str:
    width = max(len(k) for k in results)
    lines = [f"  {'':<{width}}  content score  style score"]
    for name, values in results.items():
        lines.append(
            f"  {name:<{width}}  {values['content_score']:13.3f}  {values['style_score']:11.3f}"
        )
    return "\n".join(lines)



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

