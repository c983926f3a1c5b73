"""Style and content data: TFDS sources, image folders, the embedded demo set.

Public API: ``train_batches``, ``num_styles``, ``style_set`` (pipeline.py);
source names in ``sources.SOURCES``; the demo set in ``demo.py``. TensorFlow is
imported only when a pipeline is built, with its GPUs hidden (JAX owns them).
"""

from arbitrary_style.data.pipeline import (
    Batches,
    num_styles,
    style_set,
    style_table_sources,
    train_batches,
)

__all__ = ["Batches", "num_styles", "style_set", "style_table_sources", "train_batches"]
