r"""Prints the parameter count of each part of a config's model.

    python -m arbitrary_style.summary --config=configs/pbn_dtd.py

The numbers Turi Create's ``summary()`` gave its users, and the ones
docs/reference-model.md pins down (1,674,656 transformer parameters, 2758 numbers
per style, ...). Nothing is allocated: shapes only.
"""

from __future__ import annotations

from absl import app, flags
from flax import nnx
from ml_collections import config_flags

from arbitrary_style import models

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)


def summarize(config) -> dict[str, int]:
    """{part: count} for ``config``'s style model and loss network."""
    model = nnx.eval_shape(lambda: models.build_model(config.model, rngs=nnx.Rngs(0)))
    vgg = nnx.eval_shape(lambda: models.build_loss_network(config.loss, rngs=nnx.Rngs(0)))
    transformer = model.transformer
    counts = {
        "transformer": models.count_params(transformer),
        "conditional_layers": len(transformer.conditional_layers),
        "style_params_per_style": transformer.style_param_size,
        "loss_network": models.count_params(vgg),
    }
    if config.model.kind == "arbitrary":
        predictor = model.predictor
        counts |= {
            "predictor_trunk": models.count_params(predictor.trunk),
            "bottleneck": models.count_params(predictor.bottleneck),
            "bottleneck_dim": predictor.bottleneck_dim,
            "style_heads": predictor.head_param_count(),
        }
    else:
        counts |= {
            "num_styles": model.num_styles,
            "style_tables": models.count_params(model.style_tables),
        }
    counts["total_trainable"] = models.count_params(model)
    return counts


def format_summary(config, counts: dict[str, int]) -> str:
    m = config.model
    lines = [f"model: {m.kind} (alpha {m.alpha}, compute {m.dtype})"]
    row = lambda name, n, note="": lines.append(f"  {name:<34}{n:>12,}  {note}".rstrip())  # noqa: E731
    row(
        "transformer",
        counts["transformer"],
        "conv weights + contract BN betas" if m.kind == "arbitrary" else "conv weights",
    )
    if m.kind == "arbitrary":
        row(f"predictor trunk ({m.predictor})", counts["predictor_trunk"], "weights + BN betas")
        row(f"bottleneck ({counts['bottleneck_dim']}-d)", counts["bottleneck"])
        row(f"style heads ({counts['conditional_layers']} layers)", counts["style_heads"])
    else:
        row(f"style tables ({counts['num_styles']} styles)", counts["style_tables"])
    row("total trainable", counts["total_trainable"])
    row(f"loss network ({config.loss.network}, frozen)", counts["loss_network"])
    lines.append(
        f"style embedding: {counts['style_params_per_style']} numbers per style "
        f"(beta and gamma of {counts['conditional_layers']} conditional layers)"
    )
    if m.kind == "arbitrary":
        lines.append(f"bottleneck: {counts['bottleneck_dim']} numbers")
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = _CONFIG.value
    print(format_summary(config, summarize(config)))


if __name__ == "__main__":
    flags.mark_flag_as_required("config")
    app.run(main)
