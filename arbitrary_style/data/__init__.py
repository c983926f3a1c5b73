"""Style and content data: TFDS sources, image folders, the embedded demo set.

Public API: ``train_batches``, ``num_styles``, ``style_set`` (pipeline.py);
source names in ``sources.SOURCES``; the demo set in ``demo.py``. TensorFlow is
imported only when a pipeline is built, with its GPUs hidden (JAX owns them).

The pipeline's names load on first use (PEP 562 ``__getattr__``): the
pipeline imports the models (JAX) and TensorFlow, about 2 s, and tools that
only read image files (``stylize`` listing its inputs through ``decode``) must
not pay for that.
"""

import importlib

__all__ = ["Batches", "num_styles", "style_set", "style_table_sources", "train_batches"]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module("arbitrary_style.data.pipeline"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
