r"""Prints the parameter count of each part of a config's model.

    python -m arbitrary_style.summary --config=configs/pbn_dtd.py

The numbers Turi Create's ``summary()`` gave its users, and the ones
docs/reference-model.md pins down (1,674,656 transformer parameters, 2758 numbers
per style, ...). Nothing is allocated: shapes only.
"""

from __future__ import annotations

# command_line before flax: it quiets the native logs before JAX loads.
from arbitrary_style import command_line  # isort: skip

from absl import flags
from flax import nnx
from ml_collections import config_flags

from arbitrary_style import models, preflight
from arbitrary_style.command_line import UsageError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)


def model_and_loss_network(config):
    """Shapes only (``nnx.eval_shape``) of ``config``'s style model and loss network."""
    model = nnx.eval_shape(lambda: models.build_model(config.model, rngs=nnx.Rngs(0)))
    vgg = nnx.eval_shape(lambda: models.build_loss_network(config.loss, rngs=nnx.Rngs(0)))
    return model, vgg


def summarize(config) -> dict[str, int]:
    """{part: count} for ``config``'s style model and loss network."""
    model, vgg = model_and_loss_network(config)
    transformer = model.transformer
    return {
        **{part.key: part.count for part in model.parts()},
        "conditional_layers": len(transformer.conditional_layers),
        "style_params_per_style": transformer.style_param_size,
        "total_trainable": models.count_params(model),
        "loss_network": models.count_params(vgg),
    }


def format_summary(config) -> str:
    model, vgg = model_and_loss_network(config)
    m = config.model
    lines = [f"model: {m.kind} (alpha {m.alpha}, compute {m.dtype})"]
    row = lambda name, n, note="": lines.append(f"  {name:<34}{n:>12,}  {note}".rstrip())  # noqa: E731
    for part in model.parts():
        row(part.label, part.count, part.note)
    row("total trainable", models.count_params(model))
    row(f"loss network ({config.loss.network}, frozen)", models.count_params(vgg))
    transformer = model.transformer
    lines.append(
        f"style embedding: {transformer.style_param_size} numbers per style "
        f"(beta and gamma of {len(transformer.conditional_layers)} conditional layers)"
    )
    lines.append(model.style_code_description())
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}, summary takes only flags")
    config = command_line.config_value(_CONFIG)
    preflight.check_model(config, need_num_styles=True)
    print(format_summary(config))


if __name__ == "__main__":
    flags.mark_flag_as_required("config")
    command_line.run_main(main)
