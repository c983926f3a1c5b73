"""TensorFlow checkpoints: Magenta's arbitrary model and the TF-Slim ImageNet nets.

Names are the reference variable scopes (docs/reference-model.md §7), kernels are
HWIO in both, so the converters are tables only. TensorFlow is imported inside
the functions: ``import arbitrary_style`` stays fast and TF never sees a GPU.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np

from arbitrary_style.weights.core import (
    NameTable,
    WeightsFormatError,
    WeightsNotFoundError,
    WeightSource,
)
from arbitrary_style.weights.integrity import weight_files

# Variables a training checkpoint holds that no inference model uses:
# optimiser slots and counters (Adam's m and v are '<var>/Adam', '<var>/Adam_1'),
# the step counter, moving-average shadows.
TRAINING_ONLY = (
    r"(^|/)global_step$",
    r"/Adam(_\d+)?$",
    r"(^|/)beta[12]_power(_\d+)?$",
    r"/ExponentialMovingAverage$",
    r"/Momentum$",
    r"/RMSProp(_\d+)?$",
)

# Magenta's arbitrary model: 'transformer/...' is the transfer network, every
# other model variable belongs to the style predictor (InceptionV3/...,
# 'Conv' bottleneck, style_params/...). The checkpoint also holds the frozen
# VGG-16 loss network (scope 'vgg_16').
MAGENTA_TABLE = NameTable(
    rules=(("transformer/", "transformer/"), ("", "predictor/")),
    skip=(r"^vgg_16/",) + TRAINING_ONLY,
)

# Slim's full Inception-v3 classifier; the predictor's trunk stops at Mixed_6e.
SLIM_INCEPTION_TABLE = NameTable(
    rules=(("InceptionV3/", ""),),
    skip=(r"^InceptionV3/(Mixed_7[abc]|AuxLogits|Logits)/",) + TRAINING_ONLY,
)


def slim_vgg_table(scope: str, num_blocks: int) -> NameTable:
    """Slim ``vgg_16``/``vgg_19``: conv blocks up to the model's last end point.

    The fully connected layers (fc6..fc8) and deeper blocks are skipped;
    ``mean_rgb`` appears in some slim VGG checkpoints and is not a weight.
    """
    unused_blocks = "|".join(f"conv{b}" for b in range(num_blocks + 1, 6))
    skip = [rf"^{scope}/fc\d/", rf"^{scope}/mean_rgb$"]
    if unused_blocks:
        skip.append(rf"^{scope}/({unused_blocks})/")
    return NameTable(rules=((f"{scope}/", ""),), skip=tuple(skip) + TRAINING_ONLY)


def _tensorflow():
    # Deferred: TensorFlow takes about 10 s to import, and only checkpoint readers need it.
    import tensorflow as tf  # noqa: PLC0415

    # Reading a checkpoint needs no accelerator; keep TF off the GPU JAX uses.
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # devices already initialised elsewhere in the process
        pass
    return tf


def checkpoint_exists(prefix: str | os.PathLike) -> bool:
    """True for a V2 prefix (``.index`` beside it) or a V1 single-file checkpoint."""
    prefix = os.fspath(prefix)
    return os.path.exists(prefix + ".index") or os.path.isfile(prefix)


def open_checkpoint(prefix: str | os.PathLike) -> WeightSource:
    """Names, shapes and a lazy reader of a TF checkpoint (V1 file or V2 prefix).

    Raises:
      WeightsNotFoundError: nothing at ``prefix``.
      WeightsFormatError: not a checkpoint, or damaged (e.g. truncated), or
        declaring more bytes than its files hold.
    """
    prefix = os.fspath(prefix)
    if not checkpoint_exists(prefix):
        raise WeightsNotFoundError(
            f"no TensorFlow checkpoint at {prefix!r}, neither {prefix}.index with "
            f"{prefix}.data-* nor a single-file V1 checkpoint exists, give the checkpoint's "
            "prefix (the path without .index)"
        )
    tf = _tensorflow()
    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = {name: tuple(shape) for name, shape in reader.get_variable_to_shape_map().items()}
        dtypes = reader.get_variable_to_dtype_map()
    except Exception as e:  # TF raises several error types for bad files
        raise WeightsFormatError(
            f"{prefix!r} is not a readable TensorFlow checkpoint: {type(e).__name__}: {e}"
        ) from None
    _check_declared_sizes(prefix, shapes, dtypes)

    def read(name: str) -> np.ndarray:
        try:
            return np.asarray(reader.get_tensor(name))
        except Exception as e:
            raise WeightsFormatError(
                f"cannot read variable {name!r} from checkpoint {prefix!r} (truncated or "
                f"damaged?): {type(e).__name__}: {e}"
            ) from None

    return WeightSource(f"TensorFlow checkpoint {prefix!r}", shapes, read)


def _check_declared_sizes(prefix: str, shapes, dtypes) -> None:
    """Refuses a checkpoint whose variables declare more bytes than its files hold.

    TensorFlow's reader allocates a tensor at the shape the index declares
    before it reads the data (tensor_bundle.cc, BundleReader::GetValue), so a
    crafted index could ask for any size; checkpoints are uncompressed, so
    every variable's bytes are in the files.
    """
    file_bytes = sum(path.stat().st_size for path in weight_files(prefix))
    declared = 0
    for name, shape in shapes.items():
        dtype = dtypes.get(name)
        itemsize = dtype.size if dtype is not None else 1  # tf.string: 0, its bytes are in the file
        nbytes = math.prod(shape) * itemsize
        declared += nbytes
        if declared > file_bytes:
            raise WeightsFormatError(
                f"{prefix!r} is truncated or damaged, variable {name!r} of shape "
                f"{shape} ({nbytes} bytes) takes its variables past the {file_bytes} bytes "
                "of its files, use an intact copy of the checkpoint"
            )


def magenta_model_shape(shapes) -> dict:
    """Width multipliers of the arbitrary model stored in a Magenta-named checkpoint.

    alpha from the first transformer conv (32 * alpha filters); the Inception
    depth multiplier from Conv2d_4a_3x3 (192 * m filters, above slim's
    min_depth of 16 for any m >= 1/12); the trunk from which scope is present.
    """
    def channels(name):
        if name not in shapes:
            raise WeightsFormatError(
                f"not a Magenta arbitrary-style checkpoint: no variable {name!r}"
            )
        return shapes[name][-1]

    alpha = channels("transformer/contract/conv1/weights") / 32
    if "InceptionV3/Conv2d_4a_3x3/weights" in shapes:
        trunk = "inception_v3"
        depth_multiplier = channels("InceptionV3/Conv2d_4a_3x3/weights") / 192
        bottleneck = channels("Conv/weights")
    elif any(re.match(r"^MobilenetV2/", name) for name in shapes):
        trunk, depth_multiplier = "mobilenet_v2", 1.0
        bottleneck = channels("mobilenet_conv/Conv/weights")
    else:
        raise WeightsFormatError("checkpoint has neither an InceptionV3 nor a MobilenetV2 trunk")
    return dict(alpha=alpha, trunk=trunk, depth_multiplier=depth_multiplier, bottleneck_dim=bottleneck)
