r"""N-style transfer (Dumoulin et al. 2017), the recipe of Turi Create's style transfer.

    python -m arbitrary_style.train --config=configs/nstyle.py --workdir=DIR

One transfer network with conditional instance norm on all 16 layers and a
(beta, gamma) row per style (3206 numbers per style); every sample gets a
uniformly random style. VGG-16 losses with average pooling: style Gram at
conv1..conv4 (relu1_2, relu2_2, relu3_3, relu4_3) with weight 1e-4 each,
content at conv3 with weight 1, no total variation term; Adam 1e-3; content
and style at 256 px; 10000 steps per style by default (Turi Create's
``max_iterations``). ``train.finetune_all_params=False`` trains only the style
rows, which is how styles are added to a trained network.

``--config=configs/nstyle.py:smoke`` is a tiny variant for tests.
"""

from arbitrary_style.config import base_config, select_variant, shrink_for_smoke

TURI_STYLE_WEIGHT = 1e-4
STEPS_PER_STYLE = 10_000  # Turi Create: max_iterations = 10000 * num_styles


def get_config(arg: str | None = None):
    config = base_config()
    config.model.kind = "nstyle"
    config.model.num_styles = 0  # 0: one style per image of the style source
    config.loss.style_weights = {f"conv{i}": TURI_STYLE_WEIGHT for i in (1, 2, 3, 4)}
    config.loss.content_weights = {"conv3": 1.0}
    config.loss.total_variation_weight = 0.0
    config.weights.predictor_init = ""
    config.weights.loss_network = "vgg_16"
    config.train.num_steps = 0  # 0: STEPS_PER_STYLE * num_styles
    config.train.steps_per_style = STEPS_PER_STYLE
    config.data.style_sources = ("image_folder",)
    config.data.content_sources = ("image_folder",)
    # An N-style model has a table row per training style and no way to take
    # an unseen one: only the observed set is evaluated, with the training
    # loss weights (Turi Create has no separate evaluation weights).
    config.eval.sets = ("observed",)
    config.eval.style_weights = dict(config.loss.style_weights)
    config.eval.total_variation_weight = 0.0
    return select_variant(config, arg, {"smoke": _smoke})


def _smoke(config):
    shrink_for_smoke(config)
    config.model.num_styles = 3
    config.weights.loss_network = ""
    config.data.style_sources = ("demo",)
    config.data.content_sources = ("demo",)
    config.eval.num_pairs = 3
    config.eval.num_contents = 2
    config.eval.batch_size = 2
    config.eval.sample_contents = 2
    config.eval.sample_styles = 3
