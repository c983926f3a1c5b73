"""Keras VGG-16/VGG-19 ``*_weights_tf_dim_ordering_tf_kernels_notop.h5`` files.

Keras names layers ``block{K}_conv{J}``; with TF dim ordering the kernels are
already HWIO. Older files (the ones Keras Applications still downloads) name
the arrays ``block1_conv1_W_1:0``/``block1_conv1_b_1:0``, newer saves
``block1_conv1/kernel:0``/``bias:0``; the group's ``weight_names`` attribute
lists them either way. These weights are the original (Caffe) VGG weights and
expect BGR pixels minus the BGR ImageNet mean (``CAFFE_CONVENTION``).

HDF5 lets a dataset declare any shape and allocate its storage only when
written: reading an unwritten one returns fill values, at the declared size.
So before any array is read, each must have the storage its size needs: its
bytes, within the file's length (all uncompressed arrays together, too), or
for a compressed one at least 1/1032 of them (deflate's largest ratio, zlib's
FAQ). Keras writes its weights uncompressed.
"""

from __future__ import annotations

import os
import re

import numpy as np

from arbitrary_style.weights.core import WeightsFormatError, WeightSource

_LAYER = re.compile(r"^block(\d)_conv(\d)$")
# zlib's deflate cannot expand data more than 1032:1 (zlib FAQ, "maximum compression ratio").
_MAX_EXPANSION = 1032


def _leaf(array_name: str, ndim: int) -> str:
    base = array_name.rsplit("/", 1)[-1].split(":")[0]
    if ndim == 4 and (base.startswith("kernel") or re.search(r"_W(_\d+)?$", base)):
        return "weights"
    if ndim == 1 and (base.startswith("bias") or re.search(r"_b(_\d+)?$", base)):
        return "biases"
    raise WeightsFormatError(f"unrecognised Keras array {array_name!r} of rank {ndim}")


def read_keras_vgg(path: str | os.PathLike) -> WeightSource:
    """Reads every ``block{K}_conv{J}`` layer as ``conv{K}/conv{K}_{J}/{weights,biases}``."""
    # Deferred: h5py adds 0.3 s to start-up, and only Keras loss networks need it.
    import h5py  # noqa: PLC0415

    path = os.fspath(path)
    file_size = os.path.getsize(path)
    arrays, declared = {}, 0
    try:
        with h5py.File(path, "r") as f:
            for layer in f:
                match = _LAYER.match(layer)
                if not match:
                    continue  # pooling layers, 'input_1'
                block, index = match.groups()
                group = f[layer]
                names = [
                    n.decode() if isinstance(n, bytes) else str(n)
                    for n in group.attrs.get("weight_names", [])
                ]
                if not names:
                    group.visit(
                        lambda n, group=group, names=names: (
                            names.append(n) if isinstance(group[n], h5py.Dataset) else None
                        )
                    )
                for name in names:
                    dataset = group[name]
                    if not isinstance(dataset, h5py.Dataset):
                        raise WeightsFormatError(f"{path!r}: {layer}/{name} is not an array")
                    nbytes = dataset.size * dataset.dtype.itemsize
                    stored = dataset.id.get_storage_size()
                    if dataset.compression:
                        fits = nbytes <= _MAX_EXPANSION * min(stored, file_size)
                    else:
                        declared += nbytes
                        fits = nbytes <= min(stored, file_size) and declared <= file_size
                    if not fits:
                        raise WeightsFormatError(
                            f"{path!r} is damaged or not a weights file, {layer}/{name} declares "
                            f"a {dataset.shape} {dataset.dtype} array ({nbytes} bytes) but "
                            f"{stored} bytes are stored for it in a file of {file_size}, use "
                            "an intact copy of the file"
                        )
                    array = np.asarray(dataset[()], dtype=np.float32)
                    leaf = _leaf(name, array.ndim)
                    arrays[f"conv{block}/conv{block}_{index}/{leaf}"] = array
    except OSError as e:
        raise WeightsFormatError(f"{path!r} is not a readable HDF5 file: {e}") from None
    if not arrays:
        raise WeightsFormatError(f"{path!r} holds no Keras VGG layers (block1_conv1, ...)")
    return WeightSource.from_arrays(arrays, f"Keras h5 file {path!r}")


def vgg_depth(names) -> int:
    """16 or 19 from the number of convolutions in block 3 (3 or 4)."""
    block3 = {n.split("/")[1] for n in names if n.startswith("conv3/")}
    return {3: 16, 4: 19}.get(len(block3), 0)
