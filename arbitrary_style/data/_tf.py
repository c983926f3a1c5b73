"""Lazy TensorFlow import for the data modules.

TensorFlow is only the input pipeline's engine here: JAX owns the
accelerators, so TF must never grab GPU memory (style.md point 8;
tf.data guides for JAX say the same). Importing TF lazily also keeps
``import arbitrary_style`` light.
"""

from __future__ import annotations

import functools
import logging
import sys


@functools.cache
def tf():
    """Returns the ``tensorflow`` module with every GPU hidden from it."""
    # Deferred: TF (about 10 s to import) loads only when a pipeline is built,
    # and its GPUs are hidden before anything else can touch them.
    import tensorflow as tf_module  # noqa: PLC0415

    try:
        tf_module.config.set_visible_devices([], "GPU")
    except RuntimeError:
        # TF was initialised before us: its devices can no longer change.
        if tf_module.config.get_visible_devices("GPU"):
            logging.getLogger(__name__).warning(
                "TensorFlow was initialised before the data pipeline and sees GPUs; "
                "call tf.config.set_visible_devices([], 'GPU') first so JAX keeps them"
            )
    return tf_module


def plain(fn):
    """``fn`` for ``Dataset.map`` without AutoGraph: our map functions have no
    tensor-dependent Python control flow, and AutoGraph's source parsing only
    adds warnings (and fails on lambdas defined in some contexts)."""
    return tf().autograph.experimental.do_not_convert(fn)


@functools.cache
def tfds():
    """Returns ``tensorflow_datasets`` after hiding GPUs from TF."""
    tf()
    _provide_importlib_resources()
    import tensorflow_datasets as tfds_module  # noqa: PLC0415  (after tf(): GPUs hidden first)

    return tfds_module


def _provide_importlib_resources():
    """tensorflow-datasets 4.9.10 imports the ``importlib_resources`` backport
    (for ``importlib_resources.abc.Traversable`` when it builds a dataset), but
    etils (1.15 here) no longer installs it. The standard library's
    ``importlib.resources`` (Python >= 3.11) has the same class, so stand it in
    when the backport is absent."""
    # Deferred: the stand-in is put in sys.modules only when TFDS is used.
    try:
        import importlib_resources  # noqa: F401, PLC0415
    except ImportError:
        import importlib.resources  # noqa: PLC0415
        import importlib.resources.abc  # noqa: F401, PLC0415

        sys.modules.setdefault("importlib_resources", importlib.resources)
