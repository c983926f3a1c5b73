r"""The paper: arbitrary style transfer trained on Painter by Numbers + DTD.

    python -m arbitrary_style.train --config=configs/pbn_dtd.py --workdir=DIR

Ghiasi et al. 2017 (arXiv 1705.06830), as in docs/reference-model.md §1-§4:
Inception-v3 style predictor (from the slim ImageNet checkpoint) with a 100-d
bottleneck, alpha-1 transfer network, VGG-16 losses with average pooling,
Adam, batch 8 of 256 px images. The paper reports losses on unobserved
paintings comparable to observed ones after ~3M steps on 8 GPUs; no figure of
ours exists yet for a run this long.

``--config=configs/pbn_dtd.py:smoke`` is a tiny CPU variant for tests.
"""

from arbitrary_style.config import base_config, select_variant, shrink_for_smoke


def get_config(arg: str | None = None):
    config = base_config()
    # The paper states Adam lr 1e-3; Magenta's training script's
    # flag default is 1e-5. We follow the paper.
    config.optimizer.learning_rate = 1e-3
    config.weights.predictor_init = "inception_v3"
    config.weights.loss_network = "vgg_16"
    return select_variant(config, arg, {"smoke": _smoke})


def _smoke(config):
    shrink_for_smoke(config)
    # Random init: tests download nothing.
    config.weights.predictor_init = ""
    config.weights.loss_network = ""
    # The embedded demo data: smoke runs read no dataset.
    config.data.style_sources = ("demo",)
    config.data.content_sources = ("demo",)
    config.data.style_random_size = False  # one compiled step shape
    config.eval.num_pairs = 5
    config.eval.num_contents = 2
    config.eval.batch_size = 2
    config.eval.sample_contents = 2
    config.eval.sample_styles = 3
