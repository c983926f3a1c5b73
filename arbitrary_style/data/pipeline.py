"""The training input pipeline: host-aware, deterministic in (seed, step), resumable.

Design (style.md point 8). The global batch is ``config.train.batch_size``;
process p of P yields examples ``[p * b, (p + 1) * b)`` of every global batch,
b = batch_size // P. Example ``i = step * batch_size + p * b + j`` is a pure
function of (config.seed, i):

* Indexed sources (image folders, demo): the source is chosen by a seeded draw
  against the mixing weights, the image is ``perm_epoch[i mod n]`` with a
  per-epoch permutation seeded by (seed, role, source, epoch); an unreadable
  image is skipped (counted, logged) by taking the next one of the
  permutation, so the batch composition never depends on what was read before.
  ``start_step=k`` simply starts the index at k: it costs nothing, and batch k
  is bitwise the k-th batch of a run from 0, whatever ``process_count`` is.
* TFDS (TFRecord) sources cannot be read by index: each is read as a seeded,
  shuffled, repeated stream of this process's even share
  (``tfds.even_splits``), streams are mixed with
  ``sample_from_datasets(seed=...)``, and resuming ``skip()``s the raw
  (still encoded) records, so a resume costs reading, not decoding. TFDS
  datasets are validated when prepared, so no unreadable image shifts the
  stream; if one did, the resumed stream would shift by one example.
* Augmentation randomness is stateless, seeded by (seed, example index); the
  per-batch style size by (seed, step).

One deviation from the reference's style sizes: Magenta's
``image_utils.arbitrary_style_image_inputs`` resizes each batch of styles to
any integer square size in [128, 300); we draw one of
``config.data.style_size_buckets`` (8) sizes evenly spread over
``config.data.style_size_range`` (``preprocess.style_size_buckets``). The
jitted train step compiles once per input shape, about a minute each on a
CPU, so the reference's draw would compile up to 172 programs; 8 sizes cover
the same range. ``style_size_buckets=0`` restores the reference's draw.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator

import numpy as np

from arbitrary_style import models
from arbitrary_style.data import decode as decode_lib
from arbitrary_style.data import preprocess
from arbitrary_style.data import sources as sources_lib
from arbitrary_style.data._tf import plain as _plain
from arbitrary_style.data._tf import tf as _tf

log = logging.getLogger(__name__)

_ROLE_ID = {"style": 1, "content": 2, "nstyle": 3, "size": 4, "mix": 5}
_MAX_INDEX = 2**62


def _seed_pair(seed: int, role: str) -> int:
    # Distinct streams per (config.seed, purpose); the example index or step is
    # the second half of every stateless seed.
    return int(seed) * 8 + _ROLE_ID[role]


@functools.lru_cache(maxsize=16)
def _cached_permutation(seed: int, role_id: int, k: int, epoch: int, size: int) -> np.ndarray:
    # Cached on the values, not on an _Indexer (a cached method would keep it alive).
    rng = np.random.default_rng([seed, role_id, k, epoch])
    return rng.permutation(size)


class _Indexer:
    """Global example index -> (uint8 image, style id) for indexed sources."""

    def __init__(self, sources, weights, *, seed, role, skip_log, min_side):
        self._sources = sources
        self._cum_weights = np.cumsum(weights)
        self._seed = int(seed)
        self._role_id = _ROLE_ID[role]
        self._skip_log = skip_log
        self._min_side = min_side
        self._offsets = np.concatenate([[0], np.cumsum([len(s) for s in sources])])
        self._bad = [set() for _ in sources]

    def _permutation(self, k: int, epoch: int) -> np.ndarray:
        return _cached_permutation(self._seed, self._role_id, k, epoch, len(self._sources[k]))

    def choose(self, i: int) -> int:
        if len(self._sources) == 1:
            return 0
        u = np.random.default_rng([self._seed, _ROLE_ID["mix"], self._role_id, i]).random()
        return int(min(np.searchsorted(self._cum_weights, u, side="right"), len(self._sources) - 1))

    def load(self, i: int, k: int | None = None) -> tuple[np.ndarray, np.int32]:
        k = self.choose(i) if k is None else k
        source = self._sources[k]
        n = len(source)
        epoch, pos = divmod(int(i), n)
        for _ in range(n):
            j = int(self._permutation(k, epoch)[pos])
            if j not in self._bad[k]:
                try:
                    image = sources_lib.check_image_size(source.load(j, min_side=self._min_side))
                    return image, np.int32(self._offsets[k] + j)
                except decode_lib.UnreadableImage as e:
                    self._bad[k].add(j)
                    self._skip_log.record(source.label(j), str(e))
            pos += 1
            if pos == n:
                epoch, pos = epoch + 1, 0
        raise RuntimeError(f"source {source.name!r}: none of its {n} images is readable")


class Batches(Iterator):
    """Iterator over training batches; ``skipped`` reports unreadable images."""

    def __init__(self, dataset, skip_log: decode_lib.SkipLog):
        self._iterator = dataset.as_numpy_iterator()
        self.skip_log = skip_log

    def __next__(self) -> dict[str, np.ndarray]:
        return next(self._iterator)

    @property
    def skipped_count(self) -> int:
        return self.skip_log.count

    @property
    def skipped(self) -> dict[str, str]:
        return self.skip_log.skipped


def _check_batch(config, process_index, process_count) -> int:
    batch = int(config.train.batch_size)
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} not in [0, process_count={process_count})")
    if batch <= 0 or batch % process_count:
        raise ValueError(
            f"config.train.batch_size={batch} (the global batch) must be a positive multiple "
            f"of the number of processes ({process_count}): each process loads batch_size // "
            "process_count examples"
        )
    return batch // process_count


def _styles_by_id(config) -> bool:
    """Whether ``config``'s model is conditioned on style ids (one table row per
    training style, N-style) rather than on style images."""
    return "model" in config and models.conditioning_key(config.model) == "style_id"


def train_batches(
    config,
    *,
    start_step: int = 0,
    process_index: int = 0,
    process_count: int = 1,
    parts: tuple[str, ...] = ("content", "style"),
) -> Batches:
    """This process's part of every global training batch, from ``start_step`` on.

    Yields dicts of numpy arrays:
      content:  float32 [b, S, S, 3] in [0, 1], S = config.data.image_size.
      style:    float32 [b, s, s, 3] in [0, 1]; when config.data.style_random_size,
                s is drawn per batch, uniformly from the style_size_buckets
                sizes in style_size_range ([128, 300)); else S.
      style_id: int32 [b], index of the style image in the training style set
                (sources concatenated in config order); -1 for images from
                TFDS sources, which are streamed without an index.
    N-style (config.model.kind == 'nstyle'): each sample's style id is uniform
    in [0, N) and 'style' is that style's image, centre-cropped to S with no
    augmentation (Turi Create's recipe).

    b = config.train.batch_size // process_count. Batch k depends only on
    (config.seed, k): ``start_step=k`` yields the same batches as skipping k.
    ``parts=('style',)`` or ``('content',)`` builds one half alone (the
    input-pipeline benchmark times them separately); 'style_id' comes with
    'style'.
    """
    if not parts or set(parts) - {"content", "style"}:
        raise ValueError(f"parts must be a non-empty subset of ('content', 'style'), got {parts}")
    tf = _tf()
    local = _check_batch(config, process_index, process_count)
    global_batch = int(config.train.batch_size)
    size = int(config.data.image_size)
    seed = int(config.seed)
    nstyle = _styles_by_id(config)
    skip_log = decode_lib.SkipLog("images")
    calls = config.data.num_parallel_calls
    calls = tf.data.AUTOTUNE if calls is None or calls < 0 else int(calls)
    draft = bool(config.data.get("jpeg_draft", True))
    style_min_side = size + preprocess.RESIZE_EXTRA_MAX if draft else None
    content_min_side = size + preprocess.RESIZE_EXTRA_MIN if draft else None

    want_content, want_style = "content" in parts, "style" in parts
    content_sources, content_w = (
        sources_lib.make_sources(config, "content") if want_content else ([], None)
    )
    if not want_style:
        style_sources, style_w = [], None
    elif nstyle:
        style_table = tf.constant(_nstyle_style_table(config))
        style_sources, style_w = [], None
    else:
        style_sources, style_w = sources_lib.make_sources(config, "style")

    start = int(start_step) * local

    def global_index(c):
        step = c // local
        return {"step": step, "index": step * global_batch + process_index * local + c % local}

    # Example counter of this process -> (step, global example index).
    counter = tf.data.Dataset.range(start, _MAX_INDEX).map(_plain(global_index))

    def examples(sources, weights, role, min_side):
        """{step, index, image (uint8), style_id} for one role."""
        if all(isinstance(s, sources_lib.IndexedSource) for s in sources):
            loader = _indexed_loader(sources, weights, seed, role, skip_log, min_side)
            return counter.map(_plain(loader), num_parallel_calls=calls)
        return _stream(sources, weights, seed, role, skip_log, min_side,
                       process_index, process_count, start, local, config, calls)

    content_ds = counter
    if want_content:
        content_ds = examples(content_sources, content_w, "content", content_min_side)
    style_ds = counter
    if want_style and not nstyle:
        style_ds = examples(style_sources, style_w, "style", style_min_side)

    if want_content:
        content_ds = content_ds.map(
            _plain(lambda e: {"step": e["step"], "index": e["index"],
                              "content": preprocess.preprocess_content(e["image"], size)}),
            num_parallel_calls=calls,
        )
    if want_style and nstyle:
        num = int(style_table.shape[0])

        def nstyle_map(e):
            sid = tf.random.stateless_uniform(
                [], tf.stack([tf.constant(_seed_pair(seed, "nstyle"), tf.int64), e["index"]]),
                minval=0, maxval=num, dtype=tf.int32,
            )
            return {"style": tf.gather(style_table, sid), "style_id": sid}

        style_ds = style_ds.map(_plain(nstyle_map), num_parallel_calls=calls)
    elif want_style:
        style_pair = _seed_pair(seed, "style")
        augment = bool(config.data.style_augment)
        random_crop = bool(config.data.style_random_crop)
        augment_first = bool(config.data.get("style_augment_before_resize", True))

        def style_map(e):
            example_seed = tf.stack([tf.constant(style_pair, tf.int64), e["index"]])
            style = preprocess.preprocess_style(
                e["image"], size, example_seed, augment=augment, random_crop=random_crop,
                augment_first=augment_first,
            )
            return {"style": style, "style_id": e["style_id"]}

        style_ds = style_ds.map(_plain(style_map), num_parallel_calls=calls)

    if want_style:
        ds = tf.data.Dataset.zip(content_ds, style_ds).map(_plain(lambda c, s: {**c, **s}))
    else:
        ds = content_ds
    ds = ds.batch(local, drop_remainder=True)
    random_size = bool(config.data.style_random_size) and not nstyle
    style_sizes = ()
    if random_size:  # validated here, before any batch is read
        style_sizes = preprocess.style_size_buckets(
            config.data.style_size_range, int(config.data.style_size_buckets)
        )
    size_pair = _seed_pair(seed, "size")

    def finish(batch):
        out = {}
        if want_content:
            out["content"] = tf.cast(batch["content"], tf.float32)
        if want_style:
            style = batch["style"]
            if random_size:
                side = preprocess.random_batch_size(
                    tf.stack([tf.constant(size_pair, tf.int64), batch["step"][0]]), style_sizes
                )
                style = preprocess.resize_batch(style, side)
            out["style"] = tf.cast(style, tf.float32)
            out["style_id"] = tf.cast(batch["style_id"], tf.int32)
        return out

    ds = ds.map(_plain(finish), num_parallel_calls=calls)
    options = tf.data.Options()
    options.deterministic = True
    ds = ds.with_options(options).prefetch(int(config.data.prefetch))
    return Batches(ds, skip_log)


def _indexed_loader(sources, weights, seed, role, skip_log, min_side):
    tf = _tf()
    indexer = _Indexer(sources, weights, seed=seed, role=role, skip_log=skip_log, min_side=min_side)

    def load(e):
        image, sid = tf.numpy_function(
            lambda i: indexer.load(int(i)), [e["index"]], [tf.uint8, tf.int32], stateful=False
        )
        image.set_shape([None, None, 3])
        sid.set_shape([])
        return {"step": e["step"], "index": e["index"], "image": image, "style_id": sid}

    return load


def _stream(sources, weights, seed, role, skip_log, min_side,
            process_index, process_count, start, local, config, calls):
    """Mixed stream for a role with TFDS sources; elements like the indexed path's."""
    tf = _tf()
    role_pair = _seed_pair(seed, role)
    raw = []
    # Style ids count the sources' images in config order (TFDS ones: -1).
    sizes = [len(s) if isinstance(s, sources_lib.IndexedSource) else s.size() for s in sources]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    indexers = {}
    for k, source in enumerate(sources):
        if isinstance(source, sources_lib.IndexedSource):
            # Indexed sources inside a mix: this process's stride of indices.
            indexers[k] = _Indexer([source], np.ones(1), seed=seed, role=role,
                                   skip_log=skip_log, min_side=min_side)
            ds = tf.data.Dataset.range(process_index, _MAX_INDEX, process_count).map(
                _plain(lambda i, k=k: {"source": tf.constant(k, tf.int32), "index": i,
                                       "bytes": tf.constant(b""), "name": tf.constant("")})
            )
        else:
            ds = source.dataset(process_index=process_index, process_count=process_count,
                                shuffle_seed=role_pair + 1000 * k)
            ds = ds.shuffle(int(config.data.shuffle_buffer), seed=role_pair + 1000 * k,
                            reshuffle_each_iteration=True).repeat()
            ds = ds.map(_plain(lambda e, k=k: {"source": tf.constant(k, tf.int32),
                                               "index": tf.constant(-1, tf.int64),
                                               "bytes": e["image"], "name": e["name"]}))
        raw.append(ds)
    if len(raw) == 1:
        mixed = raw[0]
    else:
        mixed = tf.data.Dataset.sample_from_datasets(
            raw, weights=[float(w) for w in weights], seed=role_pair, stop_on_empty_dataset=False
        )
    mixed = mixed.skip(start)  # resume: skip encoded records, decode nothing

    def decode_any(k, index, data, name):
        k = int(k)
        if k in indexers:
            image, sid = indexers[k].load(int(index), 0)
            return image, np.int32(sid + offsets[k]), True
        try:
            return sources_lib.decode_training_image(bytes(data), min_side=min_side), np.int32(-1), True
        except decode_lib.UnreadableImage as e:
            label = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
            skip_log.record(f"{sources[k].name}:{label}", str(e))
            return np.zeros((1, 1, 3), np.uint8), np.int32(-1), False

    def decode_map(e):
        image, sid, ok = tf.numpy_function(
            decode_any, [e["source"], e["index"], e["bytes"], e["name"]],
            [tf.uint8, tf.int32, tf.bool], stateful=False,
        )
        image.set_shape([None, None, 3])
        sid.set_shape([])
        ok.set_shape([])
        return {"image": image, "style_id": sid, "ok": ok}

    decoded = mixed.map(_plain(decode_map), num_parallel_calls=calls).filter(_plain(lambda e: e["ok"]))
    # Example counter continues from `start`, so augmentation seeds match a
    # run from 0 (per process: seeds also carry the process index).
    counted = decoded.enumerate(start=start)

    def number(c, e):
        step = c // local
        index = (step * int(config.train.batch_size) + process_index * local + c % local)
        return {"step": step, "index": index, "image": e["image"], "style_id": e["style_id"]}

    return counted.map(_plain(number))


# --- style sets: N-style table and evaluation sets ---------------------------


def ordered_images(
    config, role: str, which: str, total: int | None, *, skip_log=None
) -> tuple[list[np.ndarray], list[str]]:
    """The first readable images of a role's sources, each source in its stored order.

    Args:
      role, which: as ``sources.make_sources`` takes them ('style' | 'content';
        'train' | 'heldout').
      total: how many images in all, split over the sources by their mixing
        weights (``split_by_weight``); None takes every readable image.
      skip_log: records unreadable images; a new ``SkipLog('<role> images')``
        when None.

    Returns:
      (uint8 images, a label per image): ``source.label(j)`` for indexed
      sources; '<source>:<file name>' for streamed ones ('<source>[<k>]', k the
      number of images taken before it, when the file has no name).
    """
    if skip_log is None:
        skip_log = decode_lib.SkipLog(f"{role} images")
    sources, weights = sources_lib.make_sources(config, role, which)
    limits = [None] * len(sources) if total is None else split_by_weight(total, weights)
    images, labels = [], []
    for source, limit in zip(sources, limits, strict=True):
        got = 0
        if isinstance(source, sources_lib.IndexedSource):
            for j in range(len(source)):
                if limit is not None and got >= limit:
                    break
                try:
                    images.append(source.load(j))
                except decode_lib.UnreadableImage as e:
                    skip_log.record(source.label(j), str(e))
                    continue
                labels.append(source.label(j))
                got += 1
        else:
            for example in source.dataset().as_numpy_iterator():
                if limit is not None and got >= limit:
                    break
                name = example["name"]
                name = name.decode() if isinstance(name, bytes) else str(name)
                label = f"{source.name}:{name}" if name else f"{source.name}[{len(labels)}]"
                try:
                    images.append(decode_lib.decode_image(example["image"]))
                except decode_lib.UnreadableImage as e:
                    skip_log.record(label, str(e))
                    continue
                labels.append(label)
                got += 1
    return images, labels


def center_images(images: list[np.ndarray], size: int) -> np.ndarray:
    """uint8 images -> float32 [n, S, S, 3] in [0, 1]: shorter side S+2, centre crop."""
    tf = _tf()
    if not images:
        return np.zeros((0, size, size, 3), np.float32)
    fn = tf.function(lambda x: preprocess.preprocess_content(x, size), autograph=False,
                     input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
    return np.stack([fn(tf.constant(im)).numpy() for im in images]).astype(np.float32)


def split_by_weight(total: int, weights: np.ndarray) -> list[int]:
    """Splits ``total`` over sources by weight (largest remainder), each >= 1."""
    raw = total * weights
    counts = np.floor(raw).astype(int)
    for k in np.argsort(-(raw - counts))[: total - counts.sum()]:
        counts[k] += 1
    return [max(int(c), 1) for c in counts]


def _nstyle_style_images(config) -> list[np.ndarray]:
    """All readable images of the style sources, in order (N-style: one style each)."""
    return _nstyle_cache(_nstyle_key(config), config)[0]


def style_table_sources(config) -> tuple[list[str], list[np.ndarray]]:
    """Where each row of an N-style model's style table comes from, by style id:
    the source label of its image (``ordered_images``: a file path, or
    '<source>:<file name>') and the image as read (uint8, any size)."""
    wanted = int(config.model.get("num_styles", 0) or 0) or None
    images, labels = _nstyle_cache(_nstyle_key(config), config)
    return labels[:wanted], images[:wanted]


_NSTYLE_CACHE: dict = {}


def _nstyle_cache(key, config) -> tuple[list[np.ndarray], list[str]]:
    if key not in _NSTYLE_CACHE:
        _NSTYLE_CACHE.clear()  # one style set at a time
        _NSTYLE_CACHE[key] = ordered_images(config, "style", "train", None)
    return _NSTYLE_CACHE[key]


def _nstyle_key(config) -> tuple:
    return (
        tuple(config.data.style_sources),
        config.data.image_folder.style_dir,
        config.data.tfds_data_dir,
    )


def _nstyle_style_table(config) -> np.ndarray:
    images = _nstyle_style_images(config)
    wanted = int(config.model.get("num_styles", 0) or 0) or len(images)
    if wanted > len(images):
        raise ValueError(
            f"config.model.num_styles={wanted} but the style sources "
            f"{tuple(config.data.style_sources)} have only {len(images)} readable images"
        )
    return center_images(images[:wanted], int(config.data.image_size))


def num_styles(config) -> int:
    """Number of distinct style images in the training style sources.

    N-style configs count readable images (every file is decoded once, since
    each image becomes a style row); otherwise the sources' sizes.
    """
    if _styles_by_id(config):
        return len(_nstyle_style_images(config))
    sources, _ = sources_lib.make_sources(config, "style")
    return int(sum(len(s) if isinstance(s, sources_lib.IndexedSource) else s.size() for s in sources))


def style_set(config, which: str, limit: int | None = None) -> np.ndarray:
    """Style images for evaluation: float32 [n, S, S, 3] in [0, 1], deterministic order.

    Args:
      which: 'observed' (training styles) or 'unobserved' (held-out styles:
        PBN's Kaggle test split, DTD's test split, the demo's held-out styles,
        config.data.image_folder.heldout_style_dir).

    Images are centre-cropped at config.data.image_size (shorter side S+2),
    unaugmented. At most ``limit`` (None: config.data.eval_num_styles), split
    over the sources by their mixing weights, each source in its stored order
    (``ordered_images``). For N-style 'observed', exactly the N training
    styles in style-id order (``limit`` does not apply).
    """
    which = {"observed": "train", "unobserved": "heldout"}.get(which)
    if which is None:
        raise ValueError("style_set(which=...) must be 'observed' or 'unobserved'")
    size = int(config.data.image_size)
    if which == "train" and _styles_by_id(config):
        return _nstyle_style_table(config)
    skip_log = decode_lib.SkipLog("style images")
    limit = int(config.data.eval_num_styles if limit is None else limit)
    images, _ = ordered_images(config, "style", which, limit, skip_log=skip_log)
    if skip_log.count:
        log.warning("style_set(%s): %d unreadable images skipped", which, skip_log.count)
    return center_images(images, size)
