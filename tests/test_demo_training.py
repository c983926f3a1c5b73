"""``make demo``'s training, in full (slow: about 5 minutes on 2 cores; ``make test-slow``).

The claim the demo makes: fine-tuning the published lite model on the demo's
styles keeps the photos recognisable and moves held-out stylizations towards
their styles (configs/demo.py records the measured scores: the start 0.378 /
0.637, trained 0.338 / 0.662). Checked here with margins, on held-out styles
the training never saw.
"""

from __future__ import annotations

import pytest

from arbitrary_style.evaluation import heldout
from arbitrary_style.training import trainer

from conftest import experiment_config

pytestmark = pytest.mark.slow


def test_demo_fine_tuning_moves_heldout_styles_towards_their_styles(tmp_path):
    config = experiment_config("demo")
    config.train.tensorboard = False
    trainer.train_and_evaluate(config, tmp_path)
    scores = heldout.write_heldout_results(tmp_path)

    start = scores[heldout.start_description(config)]
    trained = scores["trained"]
    identity = scores["identity (the photo itself)"]
    assert identity["content_score"] > 0.99 and abs(identity["style_score"]) < 1e-6
    # Style: closer to the unseen styles than the published model was.
    assert trained["style_score"] > start["style_score"] + 0.01, (start, trained)
    # Content: still recognisable (the published model itself is at ~0.38; a
    # collapsed, flat output scores ~0).
    assert trained["content_score"] > 0.25, trained
    assert (tmp_path / heldout.GRID_FILE).exists() and (tmp_path / heldout.START_GRID_FILE).exists()
