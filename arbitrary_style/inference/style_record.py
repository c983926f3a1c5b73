"""The style record of an N-style workdir: which image each style index was trained on.

Training writes ``<workdir>/styles.json``:

    {"styles": [{"index": 0, "name": "<file stem>", "source": "<path or source id>",
                 "thumbnail": "styles/0000_<name>.png"}, ...]}

one entry per row of the model's style table, thumbnails (128 px) beside it.
Inference reads the names (``read_style_names``): ``Stylizer.style_names`` and
the stylize command's output names. A workdir without the record (trained
before it existed, or an arbitrary model) has no names; a record that does
not fit the model is a user error naming the file, never silently ignored.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
from collections.abc import Sequence

import numpy as np

from arbitrary_style import images
from arbitrary_style.command_line import UserError

STYLE_RECORD = "styles.json"
THUMBNAIL_DIR = "styles"
THUMBNAIL_SIZE = 128


class StyleRecordError(UserError):
    """A style record that cannot be read or does not fit its model."""


def read_style_names(workdir: str | os.PathLike, num_styles: int) -> list[str] | None:
    """The style names of an N-style workdir, by index; None without a record.

    Raises:
      StyleRecordError: the record is not JSON, lacks a name, repeats or
        misses an index, or holds another number of styles than the model.
    """
    path = pathlib.Path(workdir) / STYLE_RECORD
    if not path.is_file():
        return None
    remedy = f"rewrite it (one entry per style, indices 0..{num_styles - 1}) or remove it"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        entries = record["styles"]
        by_index = {int(entry["index"]): str(entry["name"]) for entry in entries}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        why = error.msg if isinstance(error, json.JSONDecodeError) else f"{type(error).__name__}: {error}"
        raise StyleRecordError(
            f"style record {path} cannot be read, {why}, {remedy}"
        ) from None
    if len(entries) != num_styles or sorted(by_index) != list(range(num_styles)):
        raise StyleRecordError(
            f"style record {path} holds {len(entries)} entries with {len(by_index)} distinct indices, "
            f"the model has {num_styles} styles (0..{num_styles - 1}), {remedy}"
        )
    return [by_index[i] for i in range(num_styles)]


def style_name(label: str) -> str:
    """A file-name-safe name for a style from its source label (a path,
    '<source>:<file name>' or '<split>/<name>'): the file's stem."""
    stem = pathlib.PurePosixPath(label.rsplit(":", 1)[-1].replace("\\", "/")).stem
    return re.sub(r"[^\w.-]+", "-", stem).strip("-") or "style"


def write_style_record(
    workdir: str | os.PathLike, labels: Sequence[str], style_images: Sequence[np.ndarray]
) -> pathlib.Path:
    """Writes ``<workdir>/styles.json`` and a thumbnail per style.

    Args:
      workdir: the training workdir.
      labels: each style's source label, by style id (the data pipeline's
        ``style_table_sources``).
      style_images: each style's image as read (uint8 HxWx3, any size).

    Returns:
      The record's path.
    """
    if len(labels) != len(style_images):
        raise ValueError(f"{len(labels)} style labels for {len(style_images)} style images")
    workdir = pathlib.Path(workdir)
    (workdir / THUMBNAIL_DIR).mkdir(parents=True, exist_ok=True)
    entries = []
    for index, (label, image) in enumerate(zip(labels, style_images, strict=True)):
        name = style_name(label)
        thumbnail = f"{THUMBNAIL_DIR}/{index:04d}_{name}.png"
        pixels = np.asarray(image, np.float32) / 255.0
        square = images.center_crop(images.resize_shorter_side(pixels, THUMBNAIL_SIZE), THUMBNAIL_SIZE)
        images.save_image(square, workdir / thumbnail)
        entries.append({"index": index, "name": name, "source": label, "thumbnail": thumbnail})
    path = workdir / STYLE_RECORD
    path.write_text(json.dumps({"styles": entries}, indent=2) + "\n", encoding="utf-8")
    return path
