"""What an evaluation scores: content photos, the observed and unobserved style
sets, and a fixed list of (content, style) pairs (docs/reference-model.md §5).

The pair list depends only on the config and the data's stored order
(style.md point 9); ``padded_batches`` pads the last batch with a mask, so
every pair counts exactly once and the program compiles once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import ml_collections
import numpy as np

from arbitrary_style import command_line, models
from arbitrary_style.data import pipeline

SETS = ("observed", "unobserved")



class EvaluationInputError(command_line.UserError, ValueError):
    """The evaluation cannot run as configured (too few images, a bad set name)."""



def eval_sets(
    config: ml_collections.ConfigDict, model: models.StyleModel | None = None
) -> tuple[str, ...]:
    sets = tuple(config.eval.sets)
    unknown = [s for s in sets if s not in SETS]
    if not sets or unknown:
        raise EvaluationInputError(
            f"config.eval.sets={sets!r}: each entry must be one of {', '.join(SETS)}"
        )
    if model is not None and not model.learns_style_space and "unobserved" in sets:
        raise EvaluationInputError(
            "an N-style model has one table row per training style and cannot stylize "
            "unobserved styles; set config.eval.sets=('observed',)"
        )
    return sets



def content_set(config: ml_collections.ConfigDict, count: int) -> tuple[np.ndarray, list[str]]:
    """The first ``count`` readable content images of the held-out content split.

    Same preprocessing as training content (shorter side S+2, centre crop S;
    docs/reference-model.md §4). Sources in config order, each in its stored order;
    ``count`` is split over the sources by their mixing weights.

    Returns:
      (float32 [count, S, S, 3] in [0, 1], an id per image).

    Raises:
      EvaluationInputError: the sources hold fewer readable images.
    """
    # 'heldout': ImageNet's validation split for the paper's config (photos
    # the model never trained on); folder and demo sources have one set.
    images, ids = pipeline.ordered_images(config, "content", "heldout", count)
    if len(images) < count:
        raise EvaluationInputError(
            f"config.eval.num_contents asks for {count} content images but the content "
            f"sources {tuple(config.data.content_sources)} (held-out split) have only "
            f"{len(images)} readable images"
        )
    return pipeline.center_images(images[:count], int(config.data.image_size)), ids[:count]



def style_images(config: ml_collections.ConfigDict, which: str) -> tuple[np.ndarray, list[str]]:
    """The style set ``which`` ('observed' | 'unobserved'), exactly as many as asked.

    ``config.eval.num_styles`` > 0 asks for that many (and raises when the set
    has fewer); 0 takes what ``data.style_set`` gives (at most
    ``config.data.eval_num_styles``). Ids are '<set>/<index in the set>'; for
    an N-style model the observed index is the style id.
    """
    wanted = int(config.eval.num_styles)
    images = pipeline.style_set(config, which, limit=wanted if wanted > 0 else None)  # float32
    split = "training" if which == "observed" else "held-out"
    if len(images) == 0 or len(images) < wanted:
        raise EvaluationInputError(
            f"the {which} style set ({split} styles of {tuple(config.data.style_sources)}) has "
            f"{len(images)} readable images; config.eval.num_styles asks for "
            f"{wanted if wanted else 'at least 1'}"
        )
    if wanted > 0:
        images = images[:wanted]
    return images, [f"{which}/{i:04d}" for i in range(len(images))]



def pair_indices(num_pairs: int, num_contents: int, num_styles: int) -> np.ndarray:
    """A fixed list of distinct (content, style) index pairs, int [num_pairs, 2].

    Pair k is (k mod C, (k + k // L) mod S) with L = lcm(C, S): consecutive
    pairs walk all contents and all styles together, and the shift every L
    pairs moves to the next of the gcd(C, S) residue classes, so the first
    C * S pairs are all distinct and every content and style is used as evenly
    as the count allows.

    Raises:
      EvaluationInputError: more pairs asked than C * S distinct ones.
    """
    if num_pairs < 1:
        raise EvaluationInputError(f"config.eval.num_pairs must be >= 1, got {num_pairs}")
    if num_pairs > num_contents * num_styles:
        raise EvaluationInputError(
            f"config.eval.num_pairs={num_pairs} exceeds the {num_contents * num_styles} distinct "
            f"(content, style) pairs of {num_contents} contents x {num_styles} styles"
        )
    k = np.arange(num_pairs, dtype=np.int64)
    period = math.lcm(num_contents, num_styles)
    return np.stack([k % num_contents, (k + k // period) % num_styles], axis=1)



def padded_batches(num_items: int, batch_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(indices [batch_size], mask [batch_size]) per batch; the last is padded
    with index 0 and mask False, so nothing is dropped and shapes are fixed."""
    out = []
    for start in range(0, num_items, batch_size):
        idx = np.arange(start, min(start + batch_size, num_items))
        mask = np.ones(batch_size, bool)
        mask[len(idx) :] = False
        out.append((np.concatenate([idx, np.zeros(batch_size - len(idx), idx.dtype)]), mask))
    return out



class EvalData:
    """Content images, style sets and pair lists of ``config`` (deterministic)."""

    def __init__(self, config: ml_collections.ConfigDict, sets: Sequence[str]):
        e = config.eval
        self.num_pairs = int(e.num_pairs)
        if int(e.batch_size) < 1:
            raise EvaluationInputError(f"config.eval.batch_size must be >= 1, got {e.batch_size}")
        num_contents = int(e.num_contents) or self.num_pairs
        self.contents, self.content_ids = content_set(config, num_contents)
        self.styles: dict[str, np.ndarray] = {}
        self.style_ids: dict[str, list[str]] = {}
        self.pairs: dict[str, np.ndarray] = {}
        for which in sets:
            self.styles[which], self.style_ids[which] = style_images(config, which)
            try:
                self.pairs[which] = pair_indices(
                    self.num_pairs, len(self.contents), len(self.styles[which])
                )
            except EvaluationInputError as err:
                raise EvaluationInputError(f"{which} set: {err}") from None
        rng = np.random.default_rng([int(config.seed), 20170530])
        # Uniform noise content (the reference's sanity image).
        self.noise = rng.random(self.contents.shape[1:], dtype=np.float32)
