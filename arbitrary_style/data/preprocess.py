"""The reference preprocessing (docs/reference-model.md §4) as stateless tf.data ops.

Everything random takes an explicit ``seed`` (int32/int64 [2]) and uses
``tf.random.stateless_*``, so an example's augmentation depends only on
(config.seed, example index) and a batch's style size only on (config.seed,
step): a resumed run draws exactly what an uninterrupted one would.

Reference behaviour (Magenta ``image_utils.py`` as described in
docs/reference-model.md §4):
  content: shorter side bilinearly resized to size + 2, centre crop, / 255.
  style:   on the uint8 image: random brightness (+-0.8), saturation
           [0.5, 1.5], hue (+-0.2), left-right and up-down flips (TF's adjust_*
           ops on uint8 convert to float and saturate back, i.e. clip); then
           shorter side resized to a random size in [size + 2, size + 200),
           random size x size crop, / 255; then the whole batch resized to one
           random square size in [128, 300) (any integer; we draw one of a few
           evenly spread sizes instead, see ``style_size_buckets``).
  small-dataset recipe: centre crop (shorter side to size + 2), no
           augmentation, no random batch size: three config switches.

Two differences we accept, both in the resize (``arbitrary_style.images.
resize``): TF2's ``tf.image.resize`` uses half-pixel centres while TF1's
``resize_bilinear`` (align_corners=False) did not, a fraction of a pixel
apart; and it antialiases when downscaling, where the reference's bilinear
resize aliases.
"""

from __future__ import annotations

from typing import NamedTuple

from arbitrary_style.data._tf import tf as _tf

# docs/reference-model.md §4.
BRIGHTNESS_MAX_DELTA = 0.8
SATURATION_RANGE = (0.5, 1.5)
HUE_MAX_DELTA = 0.2
RESIZE_EXTRA_MIN = 2  # shorter side >= size + 2 before cropping
RESIZE_EXTRA_MAX = 200  # ... and < size + 200 for the random crop
STYLE_BATCH_SIZE_RANGE = (128, 300)  # [low, high) per-batch square size (the reference's)


class AugmentParams(NamedTuple):
    brightness_delta: object  # float32 scalar, in [-0.8, 0.8)
    saturation_factor: object  # float32 scalar, in [0.5, 1.5)
    hue_delta: object  # float32 scalar, in [-0.2, 0.2)
    flip_left_right: object  # bool scalar
    flip_up_down: object  # bool scalar


def _split(seed, n):
    return _tf().random.experimental.stateless_split(seed, num=n)


def resize_shorter_side(image, shorter_side):
    """Aspect-preserving resize so that min(h, w) == shorter_side; float32 out.

    The tf.data twin of ``arbitrary_style.images.resize_shorter_side``, which
    every other stage uses: tf.data needs TF ops, and ``shorter_side`` may be
    a tensor drawn in the graph. Same shape rule (``images.
    shorter_side_shape``: Magenta's ``_smallest_size_at_least`` in float32,
    the shorter side exact) and the same filter (bilinear, half-pixel
    centres, antialiased when downscaling: ``tf.image.resize(...,
    antialias=True)`` is ``jax.image.resize(..., antialias=True)``'s triangle
    filter). tests/test_images.py checks both against each other. Values stay
    in [0, 255] for uint8 input.
    """
    tf = _tf()
    shape = tf.shape(image)
    new_shape = tf.stack(shorter_side_shape(shape[0], shape[1], shorter_side))
    return tf.image.resize(tf.cast(image, tf.float32), new_shape, antialias=True)


def shorter_side_shape(height, width, side):
    """``arbitrary_style.images.shorter_side_shape`` in TF ops (int32 tensors,
    elementwise): (new height, new width)."""
    tf = _tf()
    height, width, side = (tf.cast(v, tf.int32) for v in (height, width, side))
    scale = tf.cast(side, tf.float32) / tf.cast(tf.minimum(height, width), tf.float32)
    # tf.cast truncates toward zero, as Magenta's tf.to_int32.
    scaled_height = tf.cast(tf.cast(height, tf.float32) * scale, tf.int32)
    scaled_width = tf.cast(tf.cast(width, tf.float32) * scale, tf.int32)
    return tf.where(height <= width, side, scaled_height), tf.where(width <= height, side, scaled_width)


def center_crop(image, size: int):
    tf = _tf()
    shape = tf.shape(image)
    top = (shape[0] - size) // 2
    left = (shape[1] - size) // 2
    cropped = image[top : top + size, left : left + size, :]
    return tf.ensure_shape(cropped, [size, size, 3])


def preprocess_content(image, size: int):
    """uint8 [H, W, 3] -> float32 [size, size, 3] in [0, 1] (reference content path)."""
    tf = _tf()
    image = resize_shorter_side(image, size + RESIZE_EXTRA_MIN)
    image = center_crop(image, size)
    return tf.clip_by_value(image / 255.0, 0.0, 1.0)


def augment_params(seed) -> AugmentParams:
    """Draws one example's colour/flip augmentation from a stateless seed."""
    tf = _tf()
    seeds = _split(seed, 5)

    def u(s, lo, hi):
        return tf.random.stateless_uniform([], s, minval=lo, maxval=hi)

    return AugmentParams(
        brightness_delta=u(seeds[0], -BRIGHTNESS_MAX_DELTA, BRIGHTNESS_MAX_DELTA),
        saturation_factor=u(seeds[1], *SATURATION_RANGE),
        hue_delta=u(seeds[2], -HUE_MAX_DELTA, HUE_MAX_DELTA),
        flip_left_right=u(seeds[3], 0.0, 1.0) < 0.5,
        flip_up_down=u(seeds[4], 0.0, 1.0) < 0.5,
    )


def apply_augmentation(image, params: AugmentParams):
    """The reference's colour jitter and flips, in its order, on a uint8 image.

    ``tf.image.adjust_*`` convert uint8 to float in [0, 1], adjust, and convert
    back with saturation, which is the reference's "clipped" (its
    ``random_brightness`` etc. are these ops with a random delta).
    """
    tf = _tf()
    image = tf.image.adjust_brightness(image, params.brightness_delta)
    image = tf.image.adjust_saturation(image, params.saturation_factor)
    image = tf.image.adjust_hue(image, params.hue_delta)
    image = tf.cond(params.flip_left_right, lambda: tf.image.flip_left_right(image), lambda: image)
    image = tf.cond(params.flip_up_down, lambda: tf.image.flip_up_down(image), lambda: image)
    return image


def preprocess_style(
    image, size: int, seed, *, augment: bool = True, random_crop: bool = True,
    augment_first: bool = True,
):
    """uint8 [H, W, 3] -> float32 [size, size, 3] in [0, 1] (reference style path).

    Args:
      image: uint8 [H, W, 3].
      size: output side (config.data.image_size).
      seed: stateless seed [2] for this example.
      augment: colour jitter and flips (off in the small-dataset recipe).
      random_crop: shorter side to a random size in [size+2, size+200) and a
        random crop; False: shorter side to size+2 and a centre crop.
      augment_first: True (the reference) jitters the decoded image before
        resizing; False jitters the size x size crop instead, which is several
        times cheaper for large images (the colour ops dominate the style
        pipeline's cost) and differs only where resizing averages pixels that
        the jitter clipped differently. Same parameters either way.
    """
    tf = _tf()
    seeds = _split(seed, 3)
    if augment and augment_first:
        image = apply_augmentation(image, augment_params(seeds[0]))
    if random_crop:
        shorter = tf.random.stateless_uniform(
            [],
            seeds[1],
            minval=size + RESIZE_EXTRA_MIN,
            maxval=size + RESIZE_EXTRA_MAX,
            dtype=tf.int32,
        )
        image = resize_shorter_side(image, shorter)
        image = tf.image.stateless_random_crop(image, [size, size, 3], seed=seeds[2])
    else:
        image = center_crop(resize_shorter_side(image, size + RESIZE_EXTRA_MIN), size)
    if augment and not augment_first:
        # Back to uint8 so the adjust_* ops saturate exactly as on the original.
        image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
        image = tf.cast(apply_augmentation(image, augment_params(seeds[0])), tf.float32)
    return tf.clip_by_value(image / 255.0, 0.0, 1.0)


def style_size_buckets(size_range=STYLE_BATCH_SIZE_RANGE, count: int = 0) -> tuple[int, ...]:
    """The square sizes a batch of style images may be resized to, ascending.

    The reference (Magenta ``image_utils.arbitrary_style_image_inputs``) draws
    any integer size in [low, high): 172 sizes for [128, 300). Every new style
    shape compiles the jitted train step again (about a minute on a CPU, see
    experiments/benchmarks/README.md), so ``count`` > 0 keeps ``count`` sizes
    evenly spread over the range, ``low + floor(i * (high - low) / count)``:
    8 buckets over [128, 300) are 128, 149, 171, 192, 214, 235, 257, 278.
    ``count`` <= 0, or at least the range's width, keeps every integer size
    (the reference).
    """
    low, high = (int(v) for v in size_range)
    if not 0 < low < high:
        raise ValueError(f"style size range must be [low, high) with 0 < low < high, got {size_range}")
    width = high - low
    if count <= 0 or count >= width:
        return tuple(range(low, high))
    return tuple(low + (i * width) // count for i in range(count))


def random_batch_size(seed, sizes=None):
    """The per-batch square style size: one of ``sizes``, uniformly.

    Args:
      seed: stateless seed [2] (config.seed's size stream and the step).
      sizes: the candidate sizes (``style_size_buckets``); None: every integer
        in [128, 300), the reference's draw.
    """
    tf = _tf()
    sizes = style_size_buckets() if sizes is None else tuple(int(s) for s in sizes)
    k = tf.random.stateless_uniform([], seed, minval=0, maxval=len(sizes), dtype=tf.int32)
    return tf.gather(tf.constant(sizes, tf.int32), k)


def resize_batch(images, side):
    """Bilinear resize of a float32 [b, h, w, 3] batch to [b, side, side, 3]."""
    tf = _tf()
    return tf.clip_by_value(tf.image.resize(images, tf.stack([side, side])), 0.0, 1.0)
