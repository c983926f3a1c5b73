"""Image sources chosen by name: TFDS datasets, image folders, the demo set.

Two kinds:

* ``IndexedSource`` (``image_folder``, ``demo``): random access by index, so
  the pipeline maps example index -> image directly and a resumed run starts
  at any step for free.
* ``TFDSSource`` (``painter_by_numbers``, ``dtd``, ``imagenet2012``): TFRecord
  files, read as a stream (random access is impossible), images kept encoded
  (``SkipDecoding``) and decoded by ``decode.decode_image`` like every other
  file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import ml_collections
import numpy as np

from arbitrary_style.data import decode as decode_lib
from arbitrary_style.data import demo
from arbitrary_style.data._tf import plain
from arbitrary_style.data._tf import tfds as _tfds
from arbitrary_style.registry import lookup

ROLES = ("style", "content")
# Images whose shorter side is under this many pixels are skipped like
# unreadable ones (named in a warning, counted), not trained on. Every image
# is resized to config.data.image_size (256 px in the paper's recipe), so a
# smaller one is upscaled more than 16x into a nearly flat picture; a 1x1
# image is exactly flat, instance normalisation then divides by
# sqrt(epsilon), and one such image sent the gradient norm to 5e13. Skipped
# rather than an error: one thumbnail among thousands of files should not
# stop a run, as one corrupt file does not.
MIN_IMAGE_SIDE = 16
# 'train': the images a model trains on (observed styles); 'heldout': the
# unobserved styles for evaluation (docs/reference-model.md §5).
WHICH = ("train", "heldout")


class TooSmallImage(decode_lib.UnreadableImage):
    """An image whose shorter side is under ``MIN_IMAGE_SIDE``; skipped like an unreadable one."""


def check_image_size(image: np.ndarray) -> np.ndarray:
    """Returns ``image``; raises TooSmallImage when its shorter side is under MIN_IMAGE_SIDE."""
    height, width = image.shape[:2]
    if min(height, width) < MIN_IMAGE_SIDE:
        raise TooSmallImage(
            f"{width}x{height} px is too small, the shorter side must be at least "
            f"{MIN_IMAGE_SIDE} px"
        )
    return image


def decode_training_image(data: bytes, *, min_side: int | None = None) -> np.ndarray:
    """``decode.decode_image`` for the training and evaluation data: also rejects
    images too small to train on (``check_image_size``)."""
    return check_image_size(decode_lib.decode_image(data, min_side=min_side))


class IndexedSource:
    """A random-access image source; subclasses define ``__len__``, ``_load``, ``label``."""

    name: str

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int, *, min_side: int | None = None) -> np.ndarray:
        """uint8 [H, W, 3]; raises ``decode.UnreadableImage``."""
        raise NotImplementedError

    def label(self, index: int) -> str:
        return f"{self.name}[{index}]"


class ArraySource(IndexedSource):
    """Images already in memory (the demo set)."""

    def __init__(self, name: str, images: Sequence[np.ndarray], labels: Sequence[str] | None = None):
        self.name = name
        self._images = list(images)
        self._labels = list(labels) if labels is not None else None

    def __len__(self):
        return len(self._images)

    def load(self, index, *, min_side=None):
        del min_side
        return self._images[index]

    def label(self, index):
        return self._labels[index] if self._labels else super().label(index)


class FolderSource(IndexedSource):
    """Every image file under a directory, recursively, in sorted path order."""

    def __init__(self, directory: str, *, option: str):
        self.name = "image_folder"
        self.directory = directory
        if not directory:
            raise ValueError(
                f"{option} is empty: set it to a directory of images "
                f"({', '.join(decode_lib.IMAGE_EXTENSIONS)}, searched recursively)"
            )
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"{option}: image folder {directory!r} does not exist")
        self._paths = list_images(directory)
        if not self._paths:
            raise ValueError(
                f"{option}: image folder {directory!r} contains no images "
                f"(looked recursively for {', '.join(decode_lib.IMAGE_EXTENSIONS)})"
            )

    @property
    def paths(self) -> list[str]:
        return list(self._paths)

    def __len__(self):
        return len(self._paths)

    def load(self, index, *, min_side=None):
        path = self._paths[index]
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise decode_lib.UnreadableImage(f"cannot read: {e}") from None
        return decode_lib.decode_image(data, min_side=min_side)

    def label(self, index):
        return self._paths[index]


def list_images(directory: str) -> list[str]:
    """Image files (by extension, any case) under ``directory``, sorted, recursively."""
    found = []
    for root, dirs, files in os.walk(directory, followlinks=True):
        dirs.sort()
        for name in files:
            if name.lower().endswith(decode_lib.IMAGE_EXTENSIONS) and not name.startswith("._"):
                found.append(os.path.join(root, name))
    return sorted(found)


@dataclass
class TFDSSource:
    """A TFDS dataset split, read with images still encoded."""

    name: str
    split: str
    data_dir: str | None
    manual_dir: str | None

    def builder(self):
        tfds = _tfds()
        if self.name == "painter_by_numbers":
            # Registers our builder with TFDS (only when this source is used: the
            # module imports TensorFlow and TFDS when it loads).
            from arbitrary_style.data import painter_by_numbers  # noqa: F401, PLC0415
        builder = tfds.builder(self.name, data_dir=self.data_dir)
        if not _is_prepared(builder):
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=self.manual_dir)
            )
        return builder

    def size(self) -> int:
        """Number of examples in the split; 0 when TFDS does not know it (mocked data)."""
        try:
            return int(self.builder().info.splits[self.split].num_examples)
        except (KeyError, ValueError, TypeError, AttributeError):
            return 0

    def dataset(self, *, process_index=0, process_count=1, shuffle_seed=None):
        """tf.data of {'image': encoded bytes, 'name': file name}.

        With ``shuffle_seed``: this process's even share of the split, files
        shuffled with that seed (deterministic order); otherwise the split in
        its stored order.
        """
        tfds = _tfds()
        builder = self.builder()
        split = self.split
        if process_count > 1:
            split = tfds.even_splits(split, n=process_count, drop_remainder=True)[process_index]
        read_config = tfds.ReadConfig(shuffle_seed=shuffle_seed)
        ds = builder.as_dataset(
            split=split,
            shuffle_files=shuffle_seed is not None,
            read_config=read_config,
            decoders={"image": tfds.decode.SkipDecoding()},
        )
        has_name = "file_name" in builder.info.features

        def select(example):
            name = example["file_name"] if has_name else ""
            return {"image": example["image"], "name": name}

        return ds.map(plain(select))


def _is_prepared(builder) -> bool:
    try:
        return builder.is_prepared()
    except AttributeError:  # older TFDS
        return os.path.exists(os.path.join(builder.data_dir, "dataset_info.json"))


# --- the source table --------------------------------------------------------

# TFDS splits per (role, which). PBN: Kaggle train/test; DTD: TFDS's first fold.
_TFDS_SPLITS = {
    "painter_by_numbers": {"train": "train", "heldout": "test"},
    "dtd": {"train": "train", "heldout": "test"},
    "imagenet2012": {"train": "train", "heldout": "validation"},
}


def _tfds_factory(name: str) -> Callable:
    def make(config: ml_collections.ConfigDict, role: str, which: str):
        del role
        return TFDSSource(
            name=name,
            split=_TFDS_SPLITS[name][which],
            data_dir=config.data.tfds_data_dir or None,
            manual_dir=config.data.manual_dir or None,
        )

    return make


def _image_folder(config, role, which):
    folders = config.data.image_folder
    if role == "content":
        return FolderSource(folders.content_dir, option="config.data.image_folder.content_dir")
    if which == "heldout":
        return FolderSource(
            folders.heldout_style_dir, option="config.data.image_folder.heldout_style_dir"
        )
    return FolderSource(folders.style_dir, option="config.data.image_folder.style_dir")


def _demo(config, role, which):
    del config
    if role == "content":
        return ArraySource("demo", demo.content_images(), [f"demo/{n}" for n in demo.CONTENT_NAMES])
    split = "train" if which == "train" else "heldout"
    return ArraySource("demo", demo.style_images(split), demo.style_names(split))


SOURCES: dict[str, Callable] = {
    "painter_by_numbers": _tfds_factory("painter_by_numbers"),
    "dtd": _tfds_factory("dtd"),
    "imagenet2012": _tfds_factory("imagenet2012"),
    "image_folder": _image_folder,
    "demo": _demo,
}


def make_source(config, role: str, which: str, name: str):
    """The source named ``name`` for ``role`` ('style'/'content') and ``which`` ('train'/'heldout')."""
    factory = lookup(f"config.data.{role}_sources entry", name, SOURCES)
    return factory(config, role, which)


def make_sources(config, role: str, which: str = "train") -> tuple[list, np.ndarray]:
    """The sources of a role and their normalised mixing weights."""
    names = tuple(getattr(config.data, f"{role}_sources"))
    if not names:
        raise ValueError(f"config.data.{role}_sources is empty; valid names: {', '.join(sorted(SOURCES))}")
    sources = [make_source(config, role, which, name) for name in names]
    weights = tuple(getattr(config.data, f"{role}_weights", ()) or ())
    if weights:
        if len(weights) != len(names):
            raise ValueError(
                f"config.data.{role}_weights has {len(weights)} entries but "
                f"config.data.{role}_sources has {len(names)}: give one weight per source"
            )
        w = np.asarray(weights, dtype=np.float64)
        if np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"config.data.{role}_weights must be >= 0 with a positive sum, got {weights}")
    else:
        # Proportional to size = sampling from the union (the paper's PBN + DTD).
        sizes = [len(s) if isinstance(s, IndexedSource) else s.size() for s in sources]
        w = np.asarray([max(n, 1) for n in sizes], dtype=np.float64) if all(sizes) else np.ones(len(sources))
    return sources, w / w.sum()
