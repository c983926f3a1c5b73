"""Lazy TensorFlow import for the data modules.

TensorFlow is only the input pipeline's engine here: JAX owns the
accelerators, so TF must never grab GPU memory (style.md point 8;
tf.data guides for JAX say the same). Importing TF lazily also keeps
``import arbitrary_style`` light.
"""

from __future__ import annotations

import functools


@functools.cache
def tf():
    """Returns the ``tensorflow`` module with every GPU hidden from it."""
    import tensorflow as tf_module

    try:
        tf_module.config.set_visible_devices([], "GPU")
    except RuntimeError:
        # TF was already initialised by someone else: its devices can no longer
        # change. Nothing to do; whoever imported it first decided.
        pass
    return tf_module


@functools.cache
def tfds():
    """Returns ``tensorflow_datasets`` after hiding GPUs from TF."""
    tf()
    import tensorflow_datasets as tfds_module

    return tfds_module
