r"""Stylize one photo with a randomly initialised arbitrary model, through ``Stylizer``.

    .venv/bin/python -m experiments.benchmarks.stylize_random CONTENT STYLE OUT

The child process whose peak memory and wall time ``stylize_speed`` measures
for the alpha-1 rows of its memory table (``--memory_models=full``): the
arbitrary model at alpha 1 with the Inception-v3 predictor, random weights
(``common.random_module``: memory and time do not depend on their values),
through ``Stylizer.stylize``, the path the ``arbitrary_style.stylize`` CLI
takes (one pass up to its pixel budget, tiles above it). ``--alpha`` and
``--trunk`` select a smaller model (the tests run one).
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import flags
from flax import nnx

from arbitrary_style.inference.stylizer import Stylizer, save_image
from arbitrary_style.models import ArbitraryStyleModel
from experiments import script
from experiments.benchmarks import common


def random_model(alpha: float = 1.0, trunk: str = "inception_v3") -> ArbitraryStyleModel:
    """The arbitrary style model with random weights and batch-norm statistics."""
    return common.random_module(lambda: ArbitraryStyleModel(alpha=alpha, trunk=trunk, rngs=nnx.Rngs(0)))


POSITIONAL = ("CONTENT", "STYLE", "OUT")


def define_flags(flag_values: flags.FlagValues) -> None:
    flags.DEFINE_float("alpha", 1.0, "transfer network width (1 full, 0.25 lite)", flag_values=flag_values)
    flags.DEFINE_string(
        "trunk", "inception_v3", "predictor trunk: inception_v3 or mobilenet_v2", flag_values=flag_values
    )


def main(argv: Sequence[str]) -> None:
    """The script in this process; ``argv``: the arguments after the program name."""
    stylize(*script.parse_flags(["stylize_random", *argv], define_flags, POSITIONAL))


def stylize(args: flags.FlagValues, paths: Sequence[str]) -> None:
    """Stylizes the photo ``paths[0]`` in the style ``paths[1]`` and writes ``paths[2]``."""
    content, style, out = paths
    model = random_model(args.alpha, args.trunk)
    stylizer = Stylizer(model, name=f"alpha-{args.alpha:g} {args.trunk}, random weights")
    save_image(stylizer.stylize(content, style), out)


if __name__ == "__main__":
    script.run_as_script(stylize, define_flags, POSITIONAL)
