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

import argparse

from flax import nnx

from arbitrary_style.inference.stylizer import Stylizer, save_image
from arbitrary_style.models import ArbitraryStyleModel
from experiments.benchmarks import common


def random_model(alpha: float = 1.0, trunk: str = "inception_v3") -> ArbitraryStyleModel:
    """The arbitrary style model with random weights and batch-norm statistics."""
    return common.random_module(lambda: ArbitraryStyleModel(alpha=alpha, trunk=trunk, rngs=nnx.Rngs(0)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("content", help="photo to stylize")
    parser.add_argument("style", help="style image")
    parser.add_argument("out", help="where the stylized image is written")
    parser.add_argument(
        "--alpha", type=float, default=1.0, help="transfer network width (1 full, 0.25 lite)"
    )
    parser.add_argument(
        "--trunk", default="inception_v3", help="predictor trunk: inception_v3 or mobilenet_v2"
    )
    args = parser.parse_args(argv)
    model = random_model(args.alpha, args.trunk)
    stylizer = Stylizer(model, name=f"alpha-{args.alpha:g} {args.trunk}, random weights")
    save_image(stylizer.stylize(args.content, args.style), args.out)


if __name__ == "__main__":
    main()
