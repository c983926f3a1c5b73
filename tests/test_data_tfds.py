"""TFDS sources without downloads: our Painter by Numbers builder on a tiny fake
Kaggle download, and TFDS's DTD builder under tfds.testing.mock_data."""

import csv
import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from arbitrary_style import data
from arbitrary_style.config import base_config
from arbitrary_style.data import painter_by_numbers
from arbitrary_style.data._tf import tfds as _tfds

tfds = _tfds()


def _jpeg(colour, size=(40, 30), mode="RGB", **kwargs):
    out = io.BytesIO()
    Image.new(mode, size, colour).save(out, format="JPEG", quality=95, **kwargs)
    return out.getvalue()


def _exif_rotated():
    raw = Image.new("RGB", (40, 20), (0, 0, 255))
    raw.paste(Image.new("RGB", (20, 20), (255, 0, 0)), (0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    raw.save(out, format="JPEG", quality=95, exif=exif.tobytes())
    return out.getvalue()


TRAIN = {
    "1.jpg": _jpeg((200, 30, 30)),
    "2.jpg": _jpeg((0, 0, 255, 0), mode="CMYK"),  # yellow in CMYK
    "3.jpg": _jpeg((10, 10, 10))[:200],  # truncated: skipped at preparation
    "4.jpg": _jpeg((30, 200, 30), size=(1400, 1100)),  # larger than MAX_SHORTER_SIDE
}
TEST = {"10.jpg": _jpeg((90, 90, 200)), "11.jpg": _exif_rotated()}
COLUMNS = ["artist", "date", "genre", "pixelsx", "pixelsy", "size_bytes", "source", "style",
           "title", "artist_group", "in_train", "new_filename"]


def _write_csv(path):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for name in [*TRAIN, *TEST]:
            in_train = name in TRAIN
            writer.writerow([f"Artist {name}", "1890", "landscape", 40, 30, 1000, "wikiart",
                             "Impressionism", f"Title {name}", "train_only", in_train, name])


@pytest.fixture(scope="module")
def pbn_dirs(tmp_path_factory):
    """A fake Kaggle download (train.zip, extracted test/, CSV) and a prepared dataset."""
    root = tmp_path_factory.mktemp("pbn")
    manual = root / "manual"
    manual.mkdir()
    _write_csv(manual / "all_data_info.csv")
    with zipfile.ZipFile(manual / "train.zip", "w") as archive:
        for name, payload in TRAIN.items():
            archive.writestr(f"train/{name}", payload)
    (manual / "test").mkdir()
    for name, payload in TEST.items():
        (manual / "test" / name).write_bytes(payload)
    data_dir = root / "tfds"
    builder = painter_by_numbers.PainterByNumbers(data_dir=str(data_dir))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
    return manual, data_dir, builder


def test_pbn_builder_features_and_splits(pbn_dirs):
    _, _, builder = pbn_dirs
    assert builder.name == "painter_by_numbers"
    assert set(builder.info.features) == {"image", "artist", "style", "genre", "title", "date", "file_name"}
    assert builder.info.splits["train"].num_examples == 3  # the truncated file is skipped
    assert builder.info.splits["test"].num_examples == 2
    train = {ex["file_name"].decode(): ex for ex in tfds.as_numpy(builder.as_dataset(split="train"))}
    assert set(train) == {"1.jpg", "2.jpg", "4.jpg"}
    assert train["1.jpg"]["artist"] == b"Artist 1.jpg" and train["1.jpg"]["style"] == b"Impressionism"
    assert train["1.jpg"]["genre"] == b"landscape"
    assert train["1.jpg"]["image"].shape == (30, 40, 3)
    assert train["2.jpg"]["image"].shape == (30, 40, 3)  # CMYK -> RGB
    r, g, b = train["2.jpg"]["image"][15, 20].astype(int)
    assert r > 200 and g > 200 and b < 80  # yellow
    assert min(train["4.jpg"]["image"].shape[:2]) == 1024  # capped shorter side
    test = {ex["file_name"].decode(): ex for ex in tfds.as_numpy(builder.as_dataset(split="test"))}
    rotated = test["11.jpg"]["image"].astype(int)
    assert rotated.shape == (40, 20, 3) and rotated[5, 10, 0] > 200  # upright, red on top


def _pbn_config(data_dir, manual):
    config = base_config()
    config.train.batch_size = 2
    config.data.image_size = 16
    config.data.style_sources = ("painter_by_numbers",)
    config.data.content_sources = ("demo",)
    config.data.tfds_data_dir = str(data_dir)
    config.data.manual_dir = str(manual)
    config.data.shuffle_buffer = 8
    return config


def test_pbn_source_in_training_and_evaluation(pbn_dirs):
    manual, data_dir, _ = pbn_dirs
    config = _pbn_config(data_dir, manual)
    assert data.num_styles(config) == 3
    first = [next(it) for it in [data.train_batches(config)] for _ in range(4)]
    again = [next(it) for it in [data.train_batches(config)] for _ in range(4)]
    resumed = next(data.train_batches(config, start_step=2))
    for a, b in zip(first, again, strict=True):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    for key in resumed:  # stream sources resume with skip(): same batch
        np.testing.assert_array_equal(resumed[key], first[2][key])
    assert first[0]["content"].shape == (2, 16, 16, 3)
    assert 128 <= first[0]["style"].shape[1] < 300
    assert np.all(first[0]["style_id"] == -1)  # streamed: no index
    halves = [next(data.train_batches(config, process_index=p, process_count=2)) for p in (0, 1)]
    assert all(h["content"].shape[0] == 1 for h in halves)
    assert data.style_set(config, "observed").shape == (3, 16, 16, 3)
    assert data.style_set(config, "unobserved").shape == (2, 16, 16, 3)  # Kaggle test split


def test_pbn_missing_manual_file_says_what_where_and_from_where(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    _write_csv(manual / "all_data_info.csv")  # but no train.zip / train/
    builder = painter_by_numbers.PainterByNumbers(data_dir=str(tmp_path / "tfds"))
    with pytest.raises(FileNotFoundError) as error:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(manual))
        )
    message = str(error.value)
    assert "train.zip or train" in message  # the file expected
    assert str(manual) in message and "manual_dir" in message  # where to put it
    assert "kaggle.com/c/painter-by-numbers" in message  # where to get it
    (manual / "all_data_info.csv").unlink()
    (manual / "train").mkdir()
    with pytest.raises(FileNotFoundError, match="all_data_info.csv"):
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=str(manual))
        )


def test_dtd_through_tfds_mock_data(tmp_path):
    """TFDS's own DTD builder, its examples replaced by tfds.testing.mock_data."""
    tf = tfds.core.utils.lazy_imports_utils.tensorflow
    requested = []
    rng = np.random.default_rng(0)
    images = []
    for k in range(6):
        out = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (20 + k, 30, 3), dtype=np.uint8)).save(out, format="PNG")
        images.append(out.getvalue())

    def as_dataset(self, split, decoders=None, **kwargs):
        del kwargs
        requested.append((self.name, str(split)))
        # The pipeline asks for encoded images (SkipDecoding), as a real TFRecord read gives.
        assert isinstance(decoders["image"], tfds.decode.SkipDecoding)
        return tf.data.Dataset.from_tensor_slices(
            {"image": images, "label": np.arange(6, dtype=np.int64),
             "file_name": [f"banded/banded_{k}.jpg" for k in range(6)]}
        )

    config = base_config()
    config.train.batch_size = 2
    config.data.image_size = 16
    config.data.style_sources = ("dtd",)
    config.data.content_sources = ("demo",)
    config.data.tfds_data_dir = str(tmp_path)
    config.data.shuffle_buffer = 4
    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        builder = tfds.builder("dtd", data_dir=str(tmp_path))
        assert {"image", "label", "file_name"} <= set(builder.info.features)
        batch = next(data.train_batches(config))
        assert batch["style"].ndim == 4 and batch["style"].shape[0] == 2
        observed = data.style_set(config, "observed")
        unobserved = data.style_set(config, "unobserved")
    assert observed.shape == unobserved.shape == (6, 16, 16, 3)
    splits = {s for _, s in requested}
    assert "train" in splits and "test" in splits  # DTD's own train/test partition


def test_mixing_a_tfds_source_with_an_indexed_one(pbn_dirs):
    manual, data_dir, _ = pbn_dirs
    config = _pbn_config(data_dir, manual)
    config.data.style_sources = ("painter_by_numbers", "demo")
    config.data.style_weights = (1.0, 1.0)
    batches = data.train_batches(config)
    ids = np.concatenate([next(batches)["style_id"] for _ in range(10)])
    assert (ids == -1).any()  # from PBN (streamed, no index)
    demo_ids = ids[ids >= 0]
    assert len(demo_ids) and demo_ids.min() >= 3  # after PBN's 3 images
    resumed = next(data.train_batches(config, start_step=4))
    again = data.train_batches(config)
    for _ in range(4):
        next(again)
    fifth = next(again)
    for key in resumed:
        np.testing.assert_array_equal(resumed[key], fifth[key])
