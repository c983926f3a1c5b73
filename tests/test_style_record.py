"""An N-style workdir records which image each style was trained on.

``train_and_evaluate`` writes ``styles.json`` and a thumbnail per style;
``read_style_names`` reads the names back for the stylize command.
"""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from arbitrary_style.data import demo, pipeline
from arbitrary_style.inference import style_record
from arbitrary_style.training import trainer

from conftest import load_config


def test_style_names_from_source_labels():
    assert style_record.style_name("train/strokes_0") == "strokes_0"
    assert style_record.style_name("/data/paintings/Monet water lilies.jpg") == "Monet-water-lilies"
    assert style_record.style_name("painter_by_numbers:12345.jpg") == "12345"
    assert style_record.style_name(":") == "style"


def test_nstyle_training_writes_the_record_and_thumbnails(tmp_path):
    config = load_config("nstyle", num_steps=1)  # the demo's training styles
    trainer.train_and_evaluate(config, tmp_path)
    record = json.loads((tmp_path / style_record.STYLE_RECORD).read_text())["styles"]
    num_styles = len(record)
    assert num_styles == config.model.num_styles or config.model.num_styles <= 0
    expected_names = [name.split("/")[-1] for name in demo.style_names("train")][:num_styles]
    assert [entry["name"] for entry in record] == expected_names
    assert [entry["index"] for entry in record] == list(range(num_styles))
    _, sources = pipeline.style_table_sources(config)
    for entry in record:
        thumbnail = np.asarray(Image.open(tmp_path / entry["thumbnail"]), np.float32) / 255
        assert thumbnail.shape == (style_record.THUMBNAIL_SIZE, style_record.THUMBNAIL_SIZE, 3)
        # The thumbnail is its style image (PIL's resize, independent of
        # ours): closer to it than to any other style.
        small = [np.asarray(Image.fromarray(x).resize((128, 128)), np.float32) / 255 for x in sources]
        distances = [np.abs(thumbnail - s).mean() for s in small]
        assert int(np.argmin(distances)) == entry["index"]
    assert style_record.read_style_names(tmp_path, num_styles) == expected_names


def test_arbitrary_training_writes_no_record(tmp_path, fake_data):
    trainer.train_and_evaluate(load_config("demo", num_steps=1), tmp_path)
    assert not (tmp_path / style_record.STYLE_RECORD).exists()
