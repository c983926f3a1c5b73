"""train_batches / num_styles / style_set on the embedded demo set (no download)."""

import numpy as np
import pytest

from arbitrary_style import data
from arbitrary_style.config import base_config
from arbitrary_style.data import demo, preprocess

from conftest import experiment_config


def _config(seed=0, batch=4, size=32, **data_overrides):
    config = base_config()
    config.seed = seed
    config.train.batch_size = batch
    config.data.style_sources = ("demo",)
    config.data.content_sources = ("demo",)
    config.data.image_size = size
    for key, value in data_overrides.items():
        config.data[key] = value
    return config


def _take(iterator, n):
    return [next(iterator) for _ in range(n)]


def _equal(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_shapes_dtypes_and_ranges():
    config = _config(batch=4, size=32)
    for batch in _take(data.train_batches(config), 3):
        assert set(batch) == {"content", "style", "style_id"}
        assert batch["content"].shape == (4, 32, 32, 3) and batch["content"].dtype == np.float32
        side = batch["style"].shape[1]
        assert batch["style"].shape == (4, side, side, 3) and batch["style"].dtype == np.float32
        assert 128 <= side < 300  # reference: one random square size per batch
        assert batch["style_id"].dtype == np.int32 and batch["style_id"].shape == (4,)
        assert np.all((0 <= batch["style_id"]) & (batch["style_id"] < data.num_styles(config)))
        for key in ("content", "style"):
            assert 0.0 <= batch[key].min() and batch[key].max() <= 1.0


def test_per_batch_style_size_is_one_of_the_buckets():
    config = _config(batch=2, size=16, style_augment=False)
    assert config.data.style_size_buckets == 8
    sides = [b["style"].shape[1] for b in _take(data.train_batches(config), 25)]
    # 8 sizes evenly spread over the reference's [128, 300), drawn per batch.
    assert set(sides) <= {128, 149, 171, 192, 214, 235, 257, 278}
    assert len(set(sides)) >= 5  # it really is random per batch


def test_zero_buckets_is_the_reference_any_integer_size():
    config = _config(batch=2, size=16, style_augment=False, style_size_buckets=0)
    sides = [b["style"].shape[1] for b in _take(data.train_batches(config), 25)]
    assert all(128 <= s < 300 for s in sides)
    assert len(set(sides)) > 10


def test_same_seed_same_batches_different_seed_different():
    first = _take(data.train_batches(_config(seed=3)), 3)
    second = _take(data.train_batches(_config(seed=3)), 3)
    other = _take(data.train_batches(_config(seed=4)), 3)
    assert all(_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not any(_equal(a, c) for a, c in zip(first, other, strict=True))


def test_resume_from_step_k_equals_kth_batch():
    config = _config(seed=7)
    from_zero = _take(data.train_batches(config), 5)
    resumed = _take(data.train_batches(config, start_step=3), 2)
    assert _equal(resumed[0], from_zero[3]) and _equal(resumed[1], from_zero[4])


def test_processes_split_the_global_batch():
    config = _config(seed=1, batch=4, style_random_size=False)
    whole = next(data.train_batches(config))
    parts = [next(data.train_batches(config, process_index=p, process_count=2)) for p in (0, 1)]
    for key in whole:
        assert parts[0][key].shape[0] == 2
        np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), whole[key])


def test_batch_must_divide_by_process_count():
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        data.train_batches(_config(batch=6), process_count=4)


def test_small_dataset_recipe_is_centre_crop_without_augmentation():
    config = _config(batch=4, size=32, style_augment=False, style_random_crop=False,
                     style_random_size=False)
    batch = next(data.train_batches(config))
    assert batch["style"].shape == (4, 32, 32, 3)
    # Without randomness a style image's crop is a function of the image alone.
    again = next(data.train_batches(_config(seed=99, batch=4, size=32, style_augment=False,
                                            style_random_crop=False, style_random_size=False)))
    by_id = {int(i): s for i, s in zip(batch["style_id"], batch["style"], strict=True)}
    for i, s in zip(again["style_id"], again["style"], strict=True):
        if int(i) in by_id:
            np.testing.assert_array_equal(by_id[int(i)], s)


def test_mixing_weights_select_sources():
    config = _config(batch=8)
    config.data.style_sources = ("demo", "demo")
    config.data.style_weights = (1.0, 0.0)
    ids = np.concatenate([b["style_id"] for b in _take(data.train_batches(config), 4)])
    assert ids.max() < len(demo.style_images("train"))  # never the second copy
    config.data.style_weights = (0.0, 1.0)
    ids = np.concatenate([b["style_id"] for b in _take(data.train_batches(config), 4)])
    assert ids.min() >= len(demo.style_images("train"))


def test_unknown_source_lists_valid_ones():
    config = _config()
    config.data.style_sources = ("wikiart",)
    valid = "valid names: demo, dtd, image_folder, imagenet2012, painter_by_numbers"
    with pytest.raises(ValueError, match=valid):
        data.train_batches(config)


def test_mismatched_weights_are_an_error():
    config = _config()
    config.data.style_weights = (1.0, 2.0)
    with pytest.raises(ValueError, match="one weight per source"):
        data.train_batches(config)


def test_nstyle_uniform_ids_and_fixed_style_images():
    config = experiment_config("nstyle", "smoke")  # demo styles, num_styles=3, 64 px, batch 2
    assert data.num_styles(config) == len(demo.style_images("train"))
    table = data.style_set(config, "observed")
    assert table.shape == (3, 64, 64, 3)
    batches = _take(data.train_batches(config), 30)
    ids = np.concatenate([b["style_id"] for b in batches])
    assert set(ids.tolist()) == {0, 1, 2}
    for b in batches[:5]:
        assert b["style"].shape == (2, 64, 64, 3)
        for sid, style in zip(b["style_id"], b["style"], strict=True):
            np.testing.assert_array_equal(style, table[sid])


def test_style_sets_are_deterministic_and_disjoint():
    config = _config(size=32)
    observed = data.style_set(config, "observed")
    unobserved = data.style_set(config, "unobserved")
    assert observed.shape == (len(demo.style_images("train")), 32, 32, 3)
    assert unobserved.shape == (len(demo.style_images("heldout")), 32, 32, 3)
    np.testing.assert_array_equal(observed, data.style_set(config, "observed"))
    for held in unobserved:
        assert not any(np.array_equal(held, seen) for seen in observed)
    config.data.eval_num_styles = 5
    assert data.style_set(config, "observed").shape[0] == 5
    with pytest.raises(ValueError, match="'observed' or 'unobserved'"):
        data.style_set(config, "test")


def test_style_size_buckets_and_range_limit_the_shapes():
    config = _config(batch=2, size=16, style_augment=False, style_size_buckets=4)
    sides = {b["style"].shape[1] for b in _take(data.train_batches(config), 12)}
    assert sides <= {128, 171, 214, 257}
    config = _config(batch=2, size=16, style_augment=False, style_size_buckets=3,
                     style_size_range=(48, 96))
    sides = {b["style"].shape[1] for b in _take(data.train_batches(config), 12)}
    assert sides <= {48, 64, 80}


def test_style_size_buckets_are_evenly_spread_and_checked():
    assert preprocess.style_size_buckets((128, 300), 8) == (128, 149, 171, 192, 214, 235, 257, 278)
    assert preprocess.style_size_buckets((128, 300), 1) == (128,)
    assert preprocess.style_size_buckets((128, 300), 0) == tuple(range(128, 300))
    assert preprocess.style_size_buckets((10, 13), 8) == (10, 11, 12)  # no repeats
    with pytest.raises(ValueError, match="0 < low < high"):
        data.train_batches(_config(style_size_range=(300, 128)))
