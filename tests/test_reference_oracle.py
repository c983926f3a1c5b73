"""Magenta's own TensorFlow code as the oracle for our models, losses and train step.

The reference implementation of both papers is Magenta 2.1.4 (PyPI), whose
model, loss and training code runs here, unmodified, in TF1 graph mode:

* ``arbitrary_image_stylization_build_model.build_model`` (Inception-v3 style
  predictor + ``nza_model.transform``) and ``arbitrary_image_stylization_losses.
  total_loss`` for the arbitrary model (Ghiasi et al. 2017);
* ``image_stylization/model.transform`` with ``ops.conditional_instance_norm``
  and ``image_stylization/learning.total_loss`` for the N-style model
  (Dumoulin et al. 2017);
* the training graphs their train scripts build (``..._train.py``: Adam and
  ``slim.learning.create_train_op``, which runs the batch-norm update ops).

Magenta's graphs create their variables with their own initialisers; those
that start constant (biases, betas, moving statistics, per-style rows) are
then set to random values so that a swapped or ignored one shows (see
``randomize`` and ``calibrate_moving_statistics``). The values are saved with
``tf.compat.v1.train.Saver`` under the released names and read by our own
readers (``load_magenta_checkpoint``, ``load_loss_network``); the N-style
model, which has no reader, gets them by name. Compared, in float32:

* inference: stylized images and the 100-d bottleneck at two sizes (1e-5);
* every loss term of both ``total_loss`` functions (1e-5);
* one training step (``step_lib.make_train_step``) of each model: loss terms,
  the gradient of every trainable variable, the batch-norm moving averages
  and the parameters after one Adam step (tolerances at each check, with the
  float32 limits that set them).

Two details of the reference are tested on their own: its moving variance
averages the unbiased batch variance
(``test_arbitrary_train_step_moving_variance_unbiased``), and its Adam adds
eps to the uncorrected sqrt(v) (``test_arbitrary_adam_on_reference_gradients``).

The arbitrary model is Magenta's full size (alpha 1, full Inception-v3 to
Mixed_6e): ``build_model`` has no width options, and at 128 px styles the
full network is cheap enough. Magenta is installed by the Makefile without
its dependencies (its pins conflict with ours); its package ``__init__``
imports unrelated libraries, so only the model modules are imported, below
empty parent packages.
"""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from arbitrary_style import losses
from arbitrary_style.models.layers import checkpoint_path
from arbitrary_style.training import networks, optim
from arbitrary_style.training import step as step_lib
from arbitrary_style.weights import load_loss_network, load_magenta_checkpoint
from arbitrary_style.weights.core import (
    NameTable,
    WeightSource,
    load_into,
    module_variables,
)
from experiments.benchmarks import magenta_step

from conftest import load_config

BATCH = 2
SEED = 0
# Magenta arbitrary_image_stylization_train.py flag defaults, in its layer names.
ARBITRARY_CONTENT_WEIGHTS = magenta_step.CONTENT_WEIGHTS
ARBITRARY_STYLE_WEIGHTS = magenta_step.STYLE_WEIGHTS
ARBITRARY_TV_WEIGHT = magenta_step.TOTAL_VARIATION_WEIGHT
LEARNING_RATE = 1e-3
NUM_STYLES = 3
ALL_GRADIENTS = "(all gradients)"
ADAM_B1 = 0.9
CONTENT_SIZE = 40
# Inception-v3 needs >= 43 px; at 128 px its Mixed_6 batch norms see 6x6 x 2
# values per channel (2x2 x 2 at 64 px, where batch statistics of 8 numbers
# make its gradients ill-conditioned).
STYLE_SIZE = 128


# ---------------------------------------------------------------------------
# Magenta's modules, without its package __init__


def import_magenta(module: str) -> types.ModuleType:
    """``magenta.<module>``, without the package's ``__init__`` (magenta_step.import_magenta)."""
    try:
        return magenta_step.import_magenta(module)
    except RuntimeError:
        pytest.skip("magenta is not installed (make install adds it without its dependencies)")


@pytest.fixture(scope="module")
def tf():
    # Deferred: TensorFlow (about 10 s to import) loads only when a test that
    # runs Magenta's graphs does; its GPUs are hidden at once.
    return magenta_step.import_tensorflow()


def session(tf, graph):
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=2, inter_op_parallelism_threads=1)
    return tf.compat.v1.Session(graph=graph, config=config)


def images(rng, size) -> np.ndarray:
    """A batch of smooth random images in [0, 1] (pure noise makes degenerate losses)."""
    x = rng.random((BATCH, size, size, 3), dtype=np.float32)
    return ((x + np.roll(x, 1, axis=1) + np.roll(x, 1, axis=2)) / 3).astype(np.float32)


def style_images(rng, size) -> np.ndarray:
    """Two unlike style images: smooth noise and coloured stripes.

    With batch statistics, the gradient reaching the predictor trunk through
    its batch norms is each image's gradient minus the batch mean; for two
    alike images (two noise images) that difference cancels to 1e-3 of its
    terms and float32 rounding is then 3% of the trunk's gradients (TF's own
    gradients moved 3.4% for a 1e-6 change of the input).
    """
    x = images(rng, size)
    rows = np.arange(size, dtype=np.float32)[:, None, None]
    cols = np.arange(size, dtype=np.float32)[None, :, None]
    phase = np.array([0.0, 2.0, 4.0], np.float32)
    x[1] = 0.5 + 0.45 * np.sin(0.35 * rows + 0.15 * cols + phase)
    return x


def randomize(sess, variables, rng) -> None:
    """Random values, in the ranges of a trained network, for what Magenta initialises to constants.

    Biases, batch-norm betas and the per-style norm rows start at 0 (gamma 1),
    moving means at 0 and variances at 1: a transposed, swapped or ignored one
    would go unseen at those values. The style heads' Xavier weights, fed a
    random Inception's features, give |beta|, |gamma| up to 10: then some ReLU
    outputs are nearly constant, the next convolution's output is constant to
    1 part in 100 over the image, and instance norm amplifies float32 rounding
    about 100x per layer (measured: 9e-6 relative before the first residual
    block's second norm, 1.6e-4 after it, the same in TensorFlow against our
    float64). Scaled heads with gamma biases near 1 keep every layer as well
    conditioned as a trained one, so that 1e-5 tolerances test the arithmetic.
    """
    for var in variables:
        name = var.op.name
        shape = var.shape.as_list()
        if name.endswith("moving_variance"):
            value = rng.uniform(0.5, 2.0, shape)
        elif name.endswith(("InstanceNorm/gamma", "StyleNorm/Conv_1/biases")):
            value = 1.0 + rng.normal(0.0, 0.2, shape)
        elif "StyleNorm/Conv" in name and name.endswith("weights"):
            value = 0.1 * var.eval(sess)
        elif name.endswith(("biases", "beta", "moving_mean")):
            value = rng.normal(0.0, 0.2, shape)
        else:
            continue
        var.load(value.astype(np.float32), sess)


def batch_norm_samples(graph) -> dict:
    """{batch-norm scope: tensor of the number of values each channel's batch statistics use}."""
    import tensorflow as tf  # noqa: PLC0415  (deferred, see the tf fixture)

    out = {}
    for op in graph.get_operations():
        if op.type == "FusedBatchNormV3" and "BatchNorm" in op.name:
            scope = op.name[: op.name.rindex("/BatchNorm/") + len("/BatchNorm")]
            out[scope] = tf.reduce_prod(tf.shape(op.inputs[0])[:3])
    return out


def calibrate_moving_statistics(tf, sess, graph, feed, rng) -> None:
    """Moving means and variances near the batch statistics of ``feed``, as training leaves them.

    Random moving statistics far from a layer's real ones make inference-mode
    batch norm saturate ReLU6 or shift a channel to a near constant, which the
    next instance norm turns into large float32 noise (1.5e-4 relative in the
    stylized images). Each batch norm's batch mean and variance come from its
    training-mode op, then are perturbed (0.1 standard deviations, variance
    x0.8..1.25) so that the moving-average update still moves them.
    """
    norms = [op for op in graph.get_operations() if op.type == "FusedBatchNormV3" and "BatchNorm" in op.name]
    scopes = [op.name[: op.name.rindex("/BatchNorm/") + len("/BatchNorm")] for op in norms]
    batch_stats = sess.run([(op.outputs[1], op.outputs[2]) for op in norms], feed)
    variables = {v.op.name: v for v in tf.compat.v1.global_variables()}
    for scope, (mean, variance) in zip(scopes, batch_stats, strict=True):
        std = np.sqrt(variance)
        moving_mean = mean + 0.1 * std * rng.normal(size=mean.shape)
        moving_variance = variance * rng.uniform(0.8, 1.25, variance.shape)
        variables[f"{scope}/moving_mean"].load(moving_mean.astype(np.float32), sess)
        variables[f"{scope}/moving_variance"].load(moving_variance.astype(np.float32), sess)


def gradient_noise(names, gradients, nudged_gradients) -> dict[str, float]:
    """{name: relative change}, and that of all gradients as one vector under ALL_GRADIENTS."""
    noise = {
        name: relative_difference(b, a)
        for name, a, b in zip(names, gradients, nudged_gradients, strict=True)
    }
    noise[ALL_GRADIENTS] = relative_difference(flatten(nudged_gradients), flatten(gradients))
    return noise


def flatten(arrays) -> np.ndarray:
    return np.concatenate([np.ravel(a) for a in arrays])


def relative_difference(ours, reference) -> float:
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    return float(np.linalg.norm(ours - reference) / max(np.linalg.norm(reference), 1e-30))


def tf_name(our_name: str) -> str:
    """Our checkpoint-style name -> Magenta's (MAGENTA_TABLE in reverse)."""
    return our_name.removeprefix("predictor/")


def named_values(model: nnx.Module, rename=tf_name) -> dict[str, np.ndarray]:
    return {rename(name): np.asarray(var.get_value()) for name, var in module_variables(model).items()}


# ---------------------------------------------------------------------------
# Arbitrary model (Ghiasi et al. 2017)


@pytest.fixture(scope="module")
def arbitrary_reference(tf, tmp_path_factory):
    """Magenta's arbitrary training graph: initial checkpoints, and what one step computes and changes."""
    import tf_slim as slim  # noqa: PLC0415  (imports TensorFlow: see the tf fixture)

    import_magenta("models.arbitrary_image_stylization")  # skips the module without magenta
    rng = np.random.default_rng(SEED)
    batch = {"content": images(rng, CONTENT_SIZE), "style": style_images(rng, STYLE_SIZE)}
    directory = tmp_path_factory.mktemp("magenta_arbitrary")
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(SEED)
        # Unknown spatial sizes: vgg_16 also builds fc6 (a 7x7 VALID convolution)
        # that these small images could not feed; unknown sizes defer that shape
        # check to run time, and nothing fetched here runs fc6.
        content = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3])
        style = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3])
        # As arbitrary_image_stylization_train.py builds it (its default loss
        # weights, ARBITRARY_* above).
        reference = magenta_step.build_train_graph(tf, content, style)
        total_loss, loss_dict = reference["total_loss"], reference["loss_dict"]
        optimizer, train_op = reference["optimizer"], reference["train_op"]
        trained = {v.op.name: v for v in tf.compat.v1.trainable_variables()}
        moving = {v.op.name: v for v in tf.compat.v1.global_variables() if "BatchNorm/moving_" in v.op.name}
        model_variables = trained | moving
        vgg_variables = {v.op.name: v for v in slim.get_variables("vgg_16") if "/fc" not in v.op.name}
        # fc6..fc8 (120M numbers) are never read: left uninitialised.
        needed = [v for v in tf.compat.v1.global_variables() if not v.op.name.startswith("vgg_16/fc")]
        feed = {content: batch["content"], style: batch["style"]}
        with session(tf, graph) as sess:
            sess.run(tf.compat.v1.variables_initializer(needed))
            randomize(sess, list(model_variables.values()) + list(vgg_variables.values()), rng)
            calibrate_moving_statistics(tf, sess, graph, feed, rng)
            model_prefix = directory / "model.ckpt"
            vgg_prefix = directory / "vgg_16.ckpt"
            tf.compat.v1.train.Saver(model_variables).save(sess, str(model_prefix), write_meta_graph=False)
            tf.compat.v1.train.Saver(vgg_variables).save(sess, str(vgg_prefix), write_meta_graph=False)
            before = sess.run(model_variables)
            samples = sess.run(batch_norm_samples(graph), feed)
            terms = sess.run(loss_dict, feed)
            # The reference's own float32 sensitivity: its gradients for inputs
            # changed by 1e-6 (relative), the floor of any comparison with it.
            explicit = tf.gradients(total_loss, list(trained.values()))
            gradients_here = sess.run(explicit, feed)
            nudged = {
                p: (v * (1 + 1e-6 * rng.standard_normal(v.shape))).astype(np.float32)
                for p, v in feed.items()
            }
            gradients_nudged = sess.run(explicit, nudged)
            sess.run(train_op, feed)
            after = sess.run(model_variables)
            adam_m = sess.run({name: optimizer.get_slot(v, "m") for name, v in trained.items()})
    return dict(
        batch=batch,
        model_prefix=model_prefix,
        vgg_prefix=vgg_prefix,
        terms=terms,
        trained=sorted(trained),
        moving=sorted(moving),
        before=before,
        after=after,
        samples=samples,
        gradient_noise=gradient_noise(list(trained), gradients_here, gradients_nudged),
        # Adam's first moment after one step from zero is (1 - b1) * gradient.
        gradients={name: m / (1 - ADAM_B1) for name, m in adam_m.items()},
    )


def arbitrary_config(vgg_prefix):
    """configs/pbn_dtd.py at the reference's full size, the loss network from ``vgg_prefix``."""
    config = load_config("pbn_dtd")
    config.model.alpha = 1.0
    config.model.predictor_depth_multiplier = 1.0
    config.weights.loss_network = str(vgg_prefix)
    config.train.batch_size = BATCH
    config.optimizer.learning_rate = LEARNING_RATE
    return config


def our_train_step(config, model, vgg, batch, rename=tf_name):
    """One ``step_lib.make_train_step`` step from ``model``'s values, built as ``trainer.setup`` does.

    Returns (loss terms, named values after the step, named gradients).
    """
    trainable = model.trainable_filter(config.train)
    graphdef, params, batch_stats, frozen = nnx.split(model, trainable, nnx.BatchStat, ...)
    loss_graphdef, loss_state = nnx.split(vgg)
    optimizer = optim.make_optimizer(config)
    term_names = step_lib.loss_term_names(config)
    state = {
        "step": jnp.zeros((), jnp.int32),
        "params": params,
        "batch_stats": batch_stats,
        "frozen": frozen,
        "opt_state": optimizer.init(params),
        "guard": step_lib.empty_guard(len(term_names)),
    }
    weights = losses.LossWeights.from_config(config.loss)
    step = jax.jit(step_lib.make_train_step(graphdef, loss_graphdef, optimizer, weights, term_names))
    new_state, metrics = step(state, batch, loss_state)
    # The step returns no gradients; optax's first moment after one step from
    # zero is (1 - b1) * gradient, as TF's 'm' slot: the gradient it used.
    first_moment = new_state["opt_state"].inner_state[0].mu
    after = nnx.merge(graphdef, new_state["params"], new_state["batch_stats"], new_state["frozen"])
    moments = nnx.merge(graphdef, first_moment, new_state["batch_stats"], new_state["frozen"])
    trained = {rename(checkpoint_path(path)) for path, _ in nnx.to_flat_state(params)}
    b1 = config.optimizer.b1
    gradients = {name: m / (1 - b1) for name, m in named_values(moments, rename).items() if name in trained}
    return jax.device_get(metrics), named_values(after, rename), gradients


@pytest.fixture(scope="module")
def arbitrary_ours(arbitrary_reference):
    ref = arbitrary_reference
    config = arbitrary_config(ref["vgg_prefix"])
    assert config.optimizer.b1 == ADAM_B1
    model, vgg = networks.build_networks(config)
    load_magenta_checkpoint(ref["model_prefix"], model)
    return our_train_step(config, model, vgg, ref["batch"])


def magenta_term(our_key: str) -> str:
    """Our loss breakdown key -> Magenta's loss_dict key (arbitrary and N-style losses)."""
    fixed = {
        "total": "total_loss",
        "weighted/content": "total_content_loss",
        "weighted/style": "total_style_loss",
        "total_variation": "total_variation_loss",
        "weighted/total_variation": "weighted_total_variation_loss",
    }
    if our_key in fixed:
        return fixed[our_key]
    *prefix, kind, layer = our_key.split("/")
    return f"{'weighted_' if prefix else ''}{kind}_loss/vgg_16/{layer}"


def assert_terms_match(ours, reference, tolerance):
    ours = {k: float(v) for k, v in ours.items()}
    differences = {
        key: abs(value - reference[magenta_term(key)]) / abs(reference[magenta_term(key)])
        for key, value in ours.items()
        if magenta_term(key) in reference
    }
    assert max(differences.values()) <= tolerance, differences
    return differences


def test_arbitrary_inference(tf, arbitrary_reference):
    """Stylized images and bottlenecks at two sizes (content, style), odd sizes included."""
    build_model = import_magenta(
        "models.arbitrary_image_stylization.arbitrary_image_stylization_build_model"
    )
    graph = tf.Graph()
    with graph.as_default():
        content = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3])
        style = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3])
        # As arbitrary_image_stylization_with_weights.py builds it.
        stylized, _, _, bottleneck = build_model.build_model(
            content, style, trainable=False, is_training=False, adds_losses=False
        )
        with session(tf, graph) as sess:
            tf.compat.v1.train.Saver().restore(sess, str(arbitrary_reference["model_prefix"]))
            rng = np.random.default_rng(SEED + 1)
            cases = [(images(rng, c), style_images(rng, s)) for c, s in ((32, 64), (50, 75))]
            reference = [sess.run((stylized, bottleneck), {content: c, style: s}) for c, s in cases]
    model, _ = load_magenta_checkpoint(arbitrary_reference["model_prefix"])

    @nnx.jit
    def ours(model, content, style):
        embedding, norm_params = model.predictor(style)
        return model.transformer(content, norm_params), embedding

    for (content_images, style_batch), (ref_stylized, ref_bottleneck) in zip(cases, reference, strict=True):
        our_stylized, our_bottleneck = ours(model, content_images, style_batch)
        assert our_stylized.shape == ref_stylized.shape
        assert relative_difference(our_stylized, ref_stylized) < 1e-5
        assert relative_difference(our_bottleneck, ref_bottleneck[:, 0, 0]) < 1e-5


def test_arbitrary_loss_terms(tf, arbitrary_reference):
    """Every term of arbitrary_image_stylization_losses.total_loss on the same three batches.

    The style images are larger than the content: the Gram matrices are
    normalised by each image's own H*W in both.
    """
    magenta_losses = import_magenta(
        "models.arbitrary_image_stylization.arbitrary_image_stylization_losses"
    )
    rng = np.random.default_rng(SEED + 2)
    batch = {"content": images(rng, 40), "style": style_images(rng, 64), "stylized": images(rng, 40)}
    graph = tf.Graph()
    with graph.as_default():
        inputs = {k: tf.compat.v1.placeholder(tf.float32, [None, None, None, 3]) for k in batch}
        _, loss_dict = magenta_losses.total_loss(
            inputs["content"],
            inputs["style"],
            inputs["stylized"],
            content_weights=ARBITRARY_CONTENT_WEIGHTS,
            style_weights=ARBITRARY_STYLE_WEIGHTS,
            total_variation_weight=ARBITRARY_TV_WEIGHT,
        )
        convs = [v for v in tf.compat.v1.global_variables() if v.op.name.startswith("vgg_16/conv")]
        with session(tf, graph) as sess:
            tf.compat.v1.train.Saver(convs).restore(sess, str(arbitrary_reference["vgg_prefix"]))
            reference = sess.run(loss_dict, {inputs[k]: v for k, v in batch.items()})
    config = arbitrary_config(arbitrary_reference["vgg_prefix"])
    vgg = load_loss_network(str(arbitrary_reference["vgg_prefix"]), config.loss)
    ours = nnx.jit(
        lambda vgg, c, s, x: losses.style_transfer_losses(
            vgg,
            content_images=c,
            style_images=s,
            stylized_images=x,
            weights=losses.LossWeights.from_config(config.loss),
        )
    )(vgg, batch["content"], batch["style"], batch["stylized"])
    assert {magenta_term(k) for k in ours} == set(reference)
    assert_terms_match(ours, reference, 1e-5)


def test_arbitrary_train_step_loss_and_gradients(arbitrary_reference, arbitrary_ours):
    ref = arbitrary_reference
    terms, _, gradients = arbitrary_ours
    names = step_lib.loss_term_names(arbitrary_config(ref["vgg_prefix"]))
    assert_terms_match({k: terms[k] for k in names}, ref["terms"], 1e-5)
    assert sorted(gradients) == ref["trained"]
    check_gradients(gradients, ref["gradients"], ref["gradient_noise"])


def check_gradients(gradients, reference, noise):
    """All gradients (as one vector) and each tensor within 1e-4 relative + 3x the reference's noise.

    ``noise[name]``: how far the reference's gradient moves when its inputs
    change by 1e-6 (relative). At random weights, batch statistics over two
    small images and ReLU/ReLU6 units near their kinks make the gradients
    ill-conditioned: measured, the reference moves up to 3% in the Inception
    trunk and ~0.8% in the style heads; no float32 implementation can agree
    more closely than the reference agrees with itself.
    """
    names = sorted(reference)
    everything = relative_difference(
        flatten(gradients[n] for n in names), flatten(reference[n] for n in names)
    )
    # Bounds the global norm's difference too (triangle inequality).
    assert everything <= 1e-4 + 3 * noise[ALL_GRADIENTS]
    global_norm = np.linalg.norm(flatten(reference[n] for n in names))
    for name, ref_gradient in reference.items():
        if np.linalg.norm(ref_gradient) > 1e-5 * global_norm:
            assert relative_difference(gradients[name], ref_gradient) <= 1e-4 + 3 * noise[name], name
        else:
            # Gradients that vanish mathematically (the beta of a residual
            # block's second convolution: a per-channel constant the next
            # instance norm removes) are rounding noise in both.
            assert np.linalg.norm(gradients[name]) < 1e-5 * global_norm, name


# The change a step makes to a moving average, relative. At decay 0.9997 one
# step changes a statistic by 3e-4 x (batch - moving), ~3e-5 of its value,
# while float32 stores the value to 6e-8: the change is known to ~2e-3, not
# better (measured worst 9e-4, both sides updating as
# ``moving -= (moving - batch) * (1 - decay)``).
MOVING_AVERAGE_TOLERANCE = 4e-3


def test_arbitrary_train_step_moving_averages(arbitrary_reference, arbitrary_ours):
    """Every batch norm's moving mean and variance after the step (their change)."""
    ref = arbitrary_reference
    for name in ref["moving"]:
        assert moving_average_difference(ref, arbitrary_ours[1], name) < MOVING_AVERAGE_TOLERANCE, name


def test_arbitrary_train_step_moving_variance_unbiased(arbitrary_reference, arbitrary_ours):
    """The moving variance averages the unbiased batch variance, x n/(n-1).

    The reference's batch norm (slim -> tf.compat.v1.layers.BatchNormalization,
    fused) feeds FusedBatchNormV3's batch variance into the moving average,
    and that variance is the unbiased one for n values per channel (checked:
    1.01408 = 72/71 at Mixed_6 for 128 px styles). Ours matches it
    (layers.SlimBatchNorm), and the biased variance's update, which
    nnx.BatchNorm makes, is far outside the tolerance at the layer with the
    fewest values per channel (11% apart at n = 72).
    """
    ref = arbitrary_reference
    after = arbitrary_ours[1]
    variances = [name for name in ref["moving"] if name.endswith("moving_variance")]
    for name in variances:
        assert moving_average_difference(ref, after, name) < MOVING_AVERAGE_TOLERANCE, name
    fewest = min(variances, key=lambda name: ref["samples"][name.rpartition("/")[0]])
    biased = moving_average_difference(ref, after, fewest, remove_bessel=True)
    assert biased > 10 * MOVING_AVERAGE_TOLERANCE, fewest


def moving_average_difference(ref, after, name, *, remove_bessel=False) -> float:
    """Relative difference of the step's change to moving average ``name``,
    ours against the reference's (made biased first with ``remove_bessel``)."""
    before = ref["before"][name]
    # Magenta's decays: Inception arg scope 0.9997, slim's default 0.999.
    decay = 0.9997 if name.startswith("InceptionV3/") else 0.999
    ref_delta = ref["after"][name].astype(np.float64) - before
    if remove_bessel:
        n = ref["samples"][name.rpartition("/")[0]]
        unbiased = before + ref_delta / (1 - decay)
        ref_delta = (1 - decay) * (unbiased * (n - 1) / n - before)
    our_delta = after[name].astype(np.float64) - before
    return relative_difference(our_delta, ref_delta)


def test_arbitrary_train_step_adam_update(arbitrary_reference, arbitrary_ours):
    """Parameters after one Adam step (lr 1e-3), where the gradient's sign is not noise.

    At step 1 Adam moves every parameter by lr * g / (|g| + eps'), with
    eps' = eps / sqrt(1 - b2) = 3.2e-7 in TF's form (see
    test_arbitrary_adam_on_reference_gradients): nearly lr * sign(g), so an
    element whose gradient is noise (see check_gradients) may move either
    way. Compared: elements where both gradients agree to 10% and
    |g| > 1e-4. There a 10% gradient difference moves the update by at most
    lr * 0.1 * eps' / |g| = 3.2e-4 lr (measured worst 3.3e-4 lr; optax.adam's
    eps' = 1e-8 gave 3.1e-3 lr).
    """
    check_adam_update(arbitrary_reference, *arbitrary_ours[1:])


def check_adam_update(ref, after, gradients, min_fraction=0.75):
    before = ref["before"]
    compared = total = 0
    for name in ref["trained"]:
        g_ref, g_ours = ref["gradients"][name], gradients[name]
        reliable = (np.abs(g_ref) > 1e-4) & (np.abs(g_ours - g_ref) < 0.1 * np.abs(g_ref))
        our_update = after[name][reliable].astype(np.float64) - before[name][reliable]
        ref_update = ref["after"][name][reliable].astype(np.float64) - before[name][reliable]
        if reliable.any():
            # float32 stores a parameter near 0.1 to 7e-9, 7e-6 of lr.
            assert np.max(np.abs(our_update - ref_update)) < 1e-3 * LEARNING_RATE, name
            assert np.max(np.abs(ref_update)) > 0.9 * LEARNING_RATE, name
        compared += int(reliable.sum())
        total += reliable.size
    # Measured: 85% of the arbitrary model's parameters.
    assert compared > min_fraction * total


def test_arbitrary_adam_on_reference_gradients(arbitrary_reference):
    """Our optimizer's step on the reference's own gradients: the reference's step, every element.

    Without the gradients' float32 noise, the smallest gradients are compared
    too, where the eps convention shows: tf.compat.v1.train.AdamOptimizer
    (training/adam.py, kernel ApplyAdam) adds eps to sqrt(v) before the bias
    correction, lr * g / (|g| + eps / sqrt(1 - b2)) at step 1; optax.adam
    after it, lr * g / (|g| + eps): up to 0.7 lr apart (at |g| ~ 6e-8).
    Tolerance: one float32 spacing of the parameter (where the step is
    rounded; measured worst: one) plus 1e-6 lr for the update's own rounding.
    """
    ref = arbitrary_reference
    optimizer = optim.make_optimizer(arbitrary_config(ref["vgg_prefix"]))
    params = {name: jnp.asarray(ref["before"][name]) for name in ref["trained"]}
    gradients = {name: jnp.asarray(ref["gradients"][name], jnp.float32) for name in ref["trained"]}
    updates, _ = jax.jit(optimizer.update)(gradients, optimizer.init(params), params)
    after = jax.device_get(optax.apply_updates(params, updates))
    for name in ref["trained"]:
        before = ref["before"][name]
        our_update = np.asarray(after[name], np.float64) - before
        ref_update = ref["after"][name].astype(np.float64) - before
        spacing = np.spacing(np.maximum(np.abs(before), np.abs(ref["after"][name])))
        assert np.all(np.abs(our_update - ref_update) <= spacing + 1e-6 * LEARNING_RATE), name


# ---------------------------------------------------------------------------
# N-style model (Dumoulin et al. 2017)


def nstyle_tf_name(our_name: str) -> str:
    """Ours -> Magenta's: the per-style rows are conditional_instance_norm's variables.

    ``style_tables/<layer>/beta`` is ``transformer/<layer>/InstanceNorm/beta``
    ([num_styles, C], image_stylization/ops.py), likewise gamma; the
    convolutions have the same names (no biases: a normalizer follows).
    """
    if our_name.startswith("style_tables/"):
        layer, leaf = our_name.removeprefix("style_tables/").rsplit("/", 1)
        return f"transformer/{layer}/InstanceNorm/{leaf}"
    return our_name


def nstyle_config(vgg_prefix=""):
    """configs/nstyle.py:smoke (alpha 0.25, 3 styles), the loss network from ``vgg_prefix``."""
    config = load_config("nstyle")
    config.weights.loss_network = str(vgg_prefix)
    config.train.batch_size = BATCH
    config.optimizer.learning_rate = LEARNING_RATE
    return config


@pytest.fixture(scope="module")
def nstyle_reference(tf, tmp_path_factory):
    """Magenta's N-style training graph (image_stylization_train.py) and one step of it."""
    import tf_slim as slim  # noqa: PLC0415  (imports TensorFlow: see the tf fixture)

    magenta_model = import_magenta("models.image_stylization.model")
    learning = import_magenta("models.image_stylization.learning")
    vgg = import_magenta("models.image_stylization.vgg")
    config = nstyle_config()
    assert config.model.num_styles == NUM_STYLES and config.loss.total_variation_weight == 0
    content_weights = {f"vgg_16/{k}": v for k, v in config.loss.content_weights.items()}
    style_weights = {f"vgg_16/{k}": v for k, v in config.loss.style_weights.items()}
    rng = np.random.default_rng(SEED + 3)
    # Distinct ids, one style row unused (its gradient must stay zero).
    batch = {
        "content": images(rng, CONTENT_SIZE),
        "style": style_images(rng, 48),
        "style_id": np.array([2, 0], np.int32),
    }
    inference_contents = [images(rng, 32), images(rng, 50)]
    directory = tmp_path_factory.mktemp("magenta_nstyle")
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.set_random_seed(SEED)
        content = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3])
        style = tf.compat.v1.placeholder(tf.float32, [None, None, None, 3])
        labels = tf.compat.v1.placeholder(tf.int32, [None])
        # The train script's style Gram matrices come from
        # learning.precompute_gram_matrices: vgg_16 and gram_matrix of each
        # style image; here of the batch's style images, as our step does.
        style_end_points = vgg.vgg_16(style)
        style_grams = {name: learning.gram_matrix(style_end_points[name]) for name in style_weights}
        # image_stylization_train.py: per-image style weights scaled by each
        # style's coefficient (1 by default).
        coefficients = tf.gather(tf.constant([1.0] * NUM_STYLES), labels)
        stylized = magenta_model.transform(
            content,
            alpha=config.model.alpha,
            normalizer_params={"labels": labels, "num_categories": NUM_STYLES, "center": True, "scale": True},
        )
        total_loss, loss_dict = learning.total_loss(
            content,
            stylized,
            style_grams,
            content_weights,
            {name: coefficients * w for name, w in style_weights.items()},
            reuse=True,
        )
        optimizer = tf.compat.v1.train.AdamOptimizer(LEARNING_RATE)
        train_op = slim.learning.create_train_op(
            total_loss, optimizer, clip_gradient_norm=0, summarize_gradients=False
        )
        trained = {v.op.name: v for v in tf.compat.v1.trainable_variables()}
        vgg_variables = {v.op.name: v for v in slim.get_variables("vgg_16") if "/fc" not in v.op.name}
        needed = [v for v in tf.compat.v1.global_variables() if not v.op.name.startswith("vgg_16/fc")]
        feed = {content: batch["content"], style: batch["style"], labels: batch["style_id"]}
        # Dense: the style rows' gradients are IndexedSlices (a gather).
        explicit = [tf.convert_to_tensor(g) for g in tf.gradients(total_loss, list(trained.values()))]
        with session(tf, graph) as sess:
            sess.run(tf.compat.v1.variables_initializer(needed))
            randomize(sess, list(trained.values()) + list(vgg_variables.values()), rng)
            vgg_prefix = directory / "vgg_16.ckpt"
            tf.compat.v1.train.Saver(vgg_variables).save(sess, str(vgg_prefix), write_meta_graph=False)
            before = sess.run(trained)
            inference = [
                sess.run(stylized, {content: c, labels: batch["style_id"]}) for c in inference_contents
            ]
            terms = sess.run(loss_dict, feed)
            nudged = {
                p: (v * (1 + 1e-6 * rng.standard_normal(v.shape))).astype(np.float32)
                for p, v in feed.items()
                if p is not labels
            }
            noise = gradient_noise(
                list(trained), sess.run(explicit, feed), sess.run(explicit, feed | nudged)
            )
            sess.run(train_op, feed)
            after = sess.run(trained)
            adam_m = sess.run({name: optimizer.get_slot(v, "m") for name, v in trained.items()})
    return dict(
        batch=batch,
        inference_contents=inference_contents,
        inference=inference,
        vgg_prefix=vgg_prefix,
        terms=terms,
        trained=sorted(trained),
        before=before,
        after=after,
        gradients={name: m / (1 - ADAM_B1) for name, m in adam_m.items()},
        gradient_noise=noise,
    )


@pytest.fixture(scope="module")
def nstyle_model(nstyle_reference):
    """Our NStyleModel and loss network holding the reference's initial values."""
    ref = nstyle_reference
    config = nstyle_config(ref["vgg_prefix"])
    model, vgg = networks.build_networks(config)
    ours = {name: ref["before"][nstyle_tf_name(name)] for name in module_variables(model)}
    load_into(model, WeightSource.from_arrays(ours, "Magenta N-style graph"), NameTable(rules=(("", ""),)))
    return config, model, vgg


def test_nstyle_inference(nstyle_reference, nstyle_model):
    """model.transform with conditional_instance_norm at two content sizes, two style rows."""
    _, model, _ = nstyle_model
    ref = nstyle_reference
    stylize = nnx.jit(lambda model, content, ids: model(content, ids))
    for content_images, ref_stylized in zip(ref["inference_contents"], ref["inference"], strict=True):
        ours = stylize(model, content_images, ref["batch"]["style_id"])
        assert ours.shape == ref_stylized.shape
        assert relative_difference(ours, ref_stylized) < 1e-5


def test_nstyle_train_step(nstyle_reference, nstyle_model):
    """learning.total_loss's terms, gradients and the Adam step of image_stylization_train.py."""
    ref = nstyle_reference
    config, model, vgg = nstyle_model
    terms, after, gradients = our_train_step(config, model, vgg, ref["batch"], rename=nstyle_tf_name)
    # learning.total_loss has no total variation term; the config weighs it 0.
    assert float(terms["weighted/total_variation"]) == 0.0
    names = [k for k in step_lib.loss_term_names(config) if "total_variation" not in k]
    assert {magenta_term(k) for k in names} == set(ref["terms"])
    assert_terms_match({k: terms[k] for k in names}, ref["terms"], 1e-5)
    assert sorted(gradients) == ref["trained"]
    unused_row = 1
    assert not np.any(gradients["transformer/contract/conv1/InstanceNorm/beta"][unused_row])
    check_gradients(gradients, ref["gradients"], ref["gradient_noise"])
    check_adam_update(ref, after, gradients, min_fraction=0.5)
