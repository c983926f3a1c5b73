"""Default ``config.data`` section (the data pipeline's options).

Sources (``style_sources``, ``content_sources``; names from
``arbitrary_style.data.sources.SOURCES``):

  painter_by_numbers  Kaggle "Painter by Numbers" through our TFDS builder
                      (manual download into ``manual_dir``); training styles:
                      its Kaggle 'train' split; held-out: its 'test' split.
  dtd                 TFDS 'dtd' (first fold); training: 'train', held-out: 'test'.
  imagenet2012        TFDS 'imagenet2012' (manual download); content: 'train'.
  image_folder        every image file under a directory, recursively (the
                      extensions in arbitrary_style.data.decode.IMAGE_EXTENSIONS)
                      (``style_dir``, ``content_dir``, ``heldout_style_dir``).
  demo                the embedded demo set (arbitrary_style.data.demo).

``style_weights`` / ``content_weights``: one mixing weight per source, in the
same order; ``()`` mixes in proportion to the sources' sizes, which is what
training on their union (the paper's PBN + DTD) does.

Switches for the small-dataset recipe (docs/reference-model.md §4: no
augmentation, centre crop, no random style size): ``style_augment``,
``style_random_crop`` and ``style_random_size``. A random style size is one of
``style_size_buckets`` sizes in ``style_size_range``, not any integer as in
the reference: each size compiles the train step once. ``configs/*.py`` may only
change these values; new fields go here.
"""

from __future__ import annotations

import ml_collections


def data_config() -> ml_collections.ConfigDict:
    """The paper's data: PBN + DTD styles, ImageNet content, 256 px."""
    return ml_collections.ConfigDict(
        dict(
            style_sources=("painter_by_numbers", "dtd"),
            style_weights=(),  # () = proportional to source sizes
            content_sources=("imagenet2012",),
            content_weights=(),
            image_size=256,
            # Style preprocessing (docs/reference-model.md §4). False/False/False is
            # the small-dataset recipe.
            style_augment=True,  # brightness/saturation/hue jitter + flips
            style_random_crop=True,  # random shorter side in [S+2, S+200) + random crop
            style_random_size=True,  # one random square size per batch
            style_size_range=(128, 300),  # [low, high) of that size (the reference's)
            # Deviation from the reference, which draws any integer size in the
            # range (Magenta image_utils.arbitrary_style_image_inputs): we draw
            # one of this many sizes, evenly spread over the range (128, 149,
            # ..., 278 for 8). Each new style shape compiles the jitted train
            # step again, about a minute on a CPU; 8 sizes bound that to 8
            # programs instead of 172. 0: every integer size (the reference).
            style_size_buckets=8,
            # True: colour jitter on the decoded image, before resizing (the
            # reference). False: on the crop, ~5x cheaper per style image (see
            # experiments/benchmarks/README.md), nearly the same distribution.
            style_augment_before_resize=True,
            image_folder=ml_collections.ConfigDict(
                dict(
                    style_dir="",  # training styles (N-style: one style per image)
                    content_dir="",  # content photos
                    heldout_style_dir="",  # unobserved styles for evaluation
                )
            ),
            # TFDS: '' = TFDS defaults (~/tensorflow_datasets and
            # <data_dir>/downloads/manual).
            tfds_data_dir="",
            manual_dir="",
            # Shuffle buffer for TFDS (TFRecord) sources, which are streamed;
            # folder and demo sources are read by index and need none.
            shuffle_buffer=10_000,
            # Decode large JPEGs at a reduced DCT scale that still covers the
            # largest resize (Pillow's draft); False decodes at full size.
            jpeg_draft=True,
            # Evaluation style sets (style_set): how many per set, at most.
            eval_num_styles=1024,
            num_parallel_calls=-1,  # -1 = tf.data.AUTOTUNE
            prefetch=2,  # batches
        )
    )
