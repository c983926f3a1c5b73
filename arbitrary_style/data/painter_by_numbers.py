"""TFDS builder for Kaggle's "Painter by Numbers" (the paper's ~80k paintings).

Importing this module registers the builder as ``painter_by_numbers`` with
TFDS; ``sources.py`` imports it only when the source is used.

Prepare once with ``python -m arbitrary_style.data.prepare painter_by_numbers
--manual_dir=DIR [--data_dir=DIR]`` (training also prepares it on first use).

Manual download (Kaggle needs an account and the competition's rules
accepted): ``train.zip`` (or the extracted ``train/`` folder), ``test.zip``
(or ``test/``) and ``all_data_info.csv``, all in the TFDS manual directory.

Splits: Kaggle's ``train`` (79,433 paintings) and ``test`` (23,817). Features:
image, artist, style, genre, title, date, file_name (metadata from
``all_data_info.csv``; '' where the CSV has no row).

Held-out ("unobserved") styles for evaluation (docs/reference-model.md §5): the
``test`` split, which no training run reads. ``style_set(config,
'unobserved')`` takes its first ``config.data.eval_num_styles`` examples in
stored order; TFDS writes each split ordered by a fixed hash of the example
key (the file name), so that set is the same on every machine that prepared
the same files.

Images are normalised once, when the dataset is prepared: every file is
decoded with Pillow (``decode.decode_image``); unreadable ones are skipped and
their count is logged; plain RGB JPEGs that need no rotation and whose shorter
side is at most ``MAX_SHORTER_SIDE`` are stored byte for byte, the others
(grayscale, CMYK, PNG, EXIF-rotated, very large: PBN has paintings of over
100 megapixels) are stored as upright RGB JPEGs with the shorter side reduced
to ``MAX_SHORTER_SIDE``. Training never uses more than size + 200 = 456 px.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import zipfile

from PIL import Image

from arbitrary_style.data import decode as decode_lib
from arbitrary_style.data._tf import tfds as _tfds

log = logging.getLogger(__name__)

tfds = _tfds()

KAGGLE_URL = "https://www.kaggle.com/c/painter-by-numbers/data"
CSV_NAME = "all_data_info.csv"
SPLITS = ("train", "test")
MAX_SHORTER_SIDE = 1024
_METADATA = ("artist", "style", "genre", "title", "date")

_INSTRUCTIONS = f"""\
Download from {KAGGLE_URL} (a Kaggle account is needed and the competition's
rules must be accepted; or `kaggle competitions download -c painter-by-numbers`):
  {CSV_NAME}
  train.zip   (or its extracted folder train/)
  test.zip    (or its extracted folder test/)
and put them in the TFDS manual directory: by default
~/tensorflow_datasets/downloads/manual/, or the folder given as
config.data.manual_dir (tfds: --manual_dir).
"""


class PainterByNumbers(tfds.core.GeneratorBasedBuilder):
    """Kaggle Painter by Numbers paintings with artist, style and genre."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Kaggle train/test splits; images normalised to upright RGB JPEG."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS

    def _info(self):
        features = {"image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg")}
        features.update({name: tfds.features.Text() for name in _METADATA})
        features["file_name"] = tfds.features.Text()
        return self.dataset_info_from_configs(
            description="Painter by Numbers (Kaggle, 2016): paintings from WikiArt.",
            features=tfds.features.FeaturesDict(features),
            homepage=KAGGLE_URL,
            supervised_keys=None,
        )

    def _split_generators(self, dl_manager):
        manual_dir = dl_manager.manual_dir
        metadata = _read_metadata(_require(manual_dir, CSV_NAME))
        return {
            split: self._generate_examples(_find_images(manual_dir, split), metadata)
            for split in SPLITS
        }

    def _generate_examples(self, images, metadata):
        skip_log = decode_lib.SkipLog("Painter by Numbers images")
        unlisted = 0
        for file_name, read in images:
            try:
                image = normalise_image(read())
            except decode_lib.UnreadableImage as e:
                skip_log.record(file_name, str(e))
                continue
            row = metadata.get(file_name)
            unlisted += row is None
            row = row or {}
            example = {name: row.get(name, "") or "" for name in _METADATA}
            example.update(image=image, file_name=file_name)
            yield file_name, example
        if skip_log.count:
            log.warning("painter_by_numbers: %d unreadable images skipped", skip_log.count)
        if unlisted:
            log.warning("painter_by_numbers: %d images have no row in %s", unlisted, CSV_NAME)


def _require(manual_dir, *names: str):
    """The first of ``names`` present in the manual dir, or an error saying what to do."""
    for name in names:
        path = os.path.join(os.fspath(manual_dir), name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(
        f"Painter by Numbers: expected {' or '.join(names)} in the manual directory "
        f"{os.fspath(manual_dir)}, not found.\n{_INSTRUCTIONS}"
    )


def _read_metadata(csv_path: str) -> dict[str, dict[str, str]]:
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if "new_filename" not in (reader.fieldnames or ()):
            raise ValueError(
                f"{csv_path} has no 'new_filename' column: is it Kaggle's {CSV_NAME}? "
                f"(columns found: {reader.fieldnames})"
            )
        return {row["new_filename"]: row for row in reader}


def _find_images(manual_dir, split: str):
    """(file name, reader) pairs of the split's images, sorted by name."""
    path = _require(manual_dir, f"{split}.zip", split)
    if os.path.isdir(path):
        files = sorted(
            os.path.join(root, name)
            for root, _, names in os.walk(path)
            for name in names
            if name.lower().endswith(decode_lib.IMAGE_EXTENSIONS)
        )

        def read_file(p):
            with open(p, "rb") as f:
                return f.read()

        return [(os.path.basename(p), lambda p=p: read_file(p)) for p in files]
    return _zip_members(path)


def _zip_members(path: str):
    archive = zipfile.ZipFile(path)  # kept open while the generator runs
    members = sorted(
        (m for m in archive.infolist()
         if not m.is_dir() and m.filename.lower().endswith(decode_lib.IMAGE_EXTENSIONS)
         and not os.path.basename(m.filename).startswith("._")),
        key=lambda m: m.filename,
    )
    return [(os.path.basename(m.filename), lambda m=m: archive.read(m)) for m in members]


@contextlib.contextmanager
def _allow_large_images():
    # Some PBN paintings exceed Pillow's decompression-bomb limit; they are
    # trusted data here. Restored afterwards (preparation is single-threaded).
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def normalise_image(data: bytes) -> bytes:
    """Encoded bytes -> JPEG bytes of an upright RGB image (see module docstring)."""
    with _allow_large_images():
        try:
            with Image.open(io.BytesIO(data)) as probe:
                orientation = probe.getexif().get(0x0112, 1)
                keep = (
                    probe.format == "JPEG"
                    and probe.mode == "RGB"
                    and orientation in (0, 1)
                    and min(probe.size) <= MAX_SHORTER_SIDE
                )
        except Exception as e:  # noqa: BLE001 - decode_image below reports it
            del e
            keep = False
        array = decode_lib.decode_image(data, min_side=MAX_SHORTER_SIDE)
    if keep:
        return data
    image = Image.fromarray(array)
    shorter = min(image.size)
    if shorter > MAX_SHORTER_SIDE:
        scale = MAX_SHORTER_SIDE / shorter
        new_size = tuple(max(1, int(round(s * scale))) for s in image.size)
        image = image.resize(new_size, Image.BICUBIC, reducing_gap=3.0)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=95)
    return out.getvalue()


