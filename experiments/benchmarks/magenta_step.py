"""Magenta's own training step of the arbitrary model, the peer of ``train_step --reference``.

Built from the ``magenta`` package's code (installed by the Makefile without
its dependencies, as for tests/test_reference_oracle.py), the way its
``arbitrary_image_stylization_train.py`` builds it: ``build_model`` with the
Inception-v3 trunk to Mixed_6e trained, a 100-d bottleneck, VGG-16 losses
with that script's default weights (which configs/pbn_dtd.py follows),
``tf.compat.v1.train.AdamOptimizer`` and TF-Slim's ``create_train_op`` (the
batch-norm moving averages updated with the step). TensorFlow's default
kernels and threads (oneDNN stays off on this AMD CPU by default; see
README.md), no XLA, as the reference runs. Weights are TF's initial values:
time does not depend on them.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
import types
from pathlib import Path

import numpy as np

# arbitrary_image_stylization_train.py's flag defaults, in its layer names.
CONTENT_WEIGHTS = {"vgg_16/conv3": 1.0}
STYLE_WEIGHTS = {f"vgg_16/conv{i}": 0.5e-3 for i in (1, 2, 3, 4)}
TOTAL_VARIATION_WEIGHT = 1e4
LEARNING_RATE = 1e-3


def import_magenta(module: str) -> types.ModuleType:
    """``magenta.<module>`` imported below empty ``magenta`` packages (its
    ``__init__`` imports the music libraries, which are not installed)."""
    if "magenta" not in sys.modules:
        spec = importlib.util.find_spec("magenta")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("magenta is not installed: make install adds it (without its dependencies)")
        root = Path(spec.submodule_search_locations[0])
        for name, path in (("magenta", root), ("magenta.models", root / "models")):
            package = types.ModuleType(name)
            package.__path__ = [str(path)]
            sys.modules[name] = package
    return importlib.import_module(f"magenta.{module}")


def import_tensorflow():
    """TensorFlow with its GPUs hidden, and the tf_keras module TF-Slim's batch norm needs."""
    import tensorflow as tf  # noqa: PLC0415  (deferred: 10 s, and only this peer needs it)

    tf.config.set_visible_devices([], "GPU")
    # slim.batch_norm builds tf.compat.v1.layers.BatchNormalization, which TF
    # 2.21 loads lazily from tf_keras.legacy_tf_layers; tf_keras 2.21 ships it
    # as tf_keras.src.legacy_tf_layers.
    for name in ("legacy_tf_layers", "legacy_tf_layers.normalization"):
        sys.modules.setdefault(f"tf_keras.{name}", importlib.import_module(f"tf_keras.src.{name}"))
    return tf


def build_train_graph(tf, content, style) -> dict:
    """Magenta's arbitrary training step on the placeholders ``content`` and
    ``style``, in the current graph, as arbitrary_image_stylization_train.py
    builds it: {"total_loss", "loss_dict", "optimizer", "train_op"}."""
    import tf_slim as slim  # noqa: PLC0415  (imports TensorFlow: see import_tensorflow)

    build_model = import_magenta("models.arbitrary_image_stylization.arbitrary_image_stylization_build_model")
    _, total_loss, loss_dict, _ = build_model.build_model(
        content,
        style,
        trainable=True,
        is_training=True,
        inception_end_point="Mixed_6e",
        style_prediction_bottleneck=100,
        adds_losses=True,
        content_weights=CONTENT_WEIGHTS,
        style_weights=STYLE_WEIGHTS,
        total_variation_weight=TOTAL_VARIATION_WEIGHT,
    )
    optimizer = tf.compat.v1.train.AdamOptimizer(LEARNING_RATE)
    # create_train_op runs the UPDATE_OPS (batch-norm moving averages) with the step.
    train_op = slim.learning.create_train_op(
        total_loss, optimizer, clip_gradient_norm=0, summarize_gradients=False
    )
    return {"total_loss": total_loss, "loss_dict": loss_dict, "optimizer": optimizer, "train_op": train_op}


def time_steps(content: np.ndarray, style: np.ndarray, steps: int) -> dict:
    """Builds Magenta's step for these batch shapes, runs one untimed step, times ``steps`` more.

    Returns {"build_seconds", "first_step_seconds", "step_seconds": [...]}.
    """
    tf = import_tensorflow()
    start = time.perf_counter()
    graph = tf.Graph()
    with graph.as_default():
        content_in = tf.compat.v1.placeholder(tf.float32, content.shape)
        style_in = tf.compat.v1.placeholder(tf.float32, style.shape)
        train_op = build_train_graph(tf, content_in, style_in)["train_op"]
        # VGG's fully connected layers (120M numbers) are built but never read.
        needed = [v for v in tf.compat.v1.global_variables() if not v.op.name.startswith("vgg_16/fc")]
        feed = {content_in: content, style_in: style}
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.variables_initializer(needed))
            build_seconds = time.perf_counter() - start
            start = time.perf_counter()
            session.run(train_op, feed)
            first = time.perf_counter() - start
            times = []
            for _ in range(steps):
                start = time.perf_counter()
                session.run(train_op, feed)
                times.append(time.perf_counter() - start)
    return {"build_seconds": build_seconds, "first_step_seconds": first, "step_seconds": times}
