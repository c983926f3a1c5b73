"""Default ``config.data`` section (the data pipeline's options)."""

from __future__ import annotations

import ml_collections


def data_config() -> ml_collections.ConfigDict:
    """The paper's data: PBN + DTD styles, ImageNet content, 256 px."""
    return ml_collections.ConfigDict(
        dict(
            style_sources=("painter_by_numbers", "dtd"),
            content_sources=("imagenet2012",),
            image_size=256,
        )
    )
