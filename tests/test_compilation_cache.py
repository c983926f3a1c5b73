"""compilation_cache.enable: the default directory, the override, the off
switch, a directory JAX already has (the tests' own, from conftest.py), and
the command-line tools turning it on.

The test run's cache is opened by its first compilation, so pointing JAX at
another directory here changes only settings, which each test restores.
"""

from __future__ import annotations

import subprocess
import sys

import jax
import pytest
from PIL import Image

from arbitrary_style import compilation_cache

from conftest import ROOT, subprocess_env

SETTINGS = (
    "jax_compilation_cache_dir",
    "jax_persistent_cache_min_compile_time_secs",
    "jax_persistent_cache_min_entry_size_bytes",
)


@pytest.fixture
def jax_settings(monkeypatch, tmp_path):
    """No cache directory (as without JAX_COMPILATION_CACHE_DIR); settings restored after."""
    saved = {name: getattr(jax.config, name) for name in SETTINGS}
    jax.config.update("jax_compilation_cache_dir", None)
    monkeypatch.delenv(compilation_cache.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    yield
    for name, value in saved.items():
        jax.config.update(name, value)


def current() -> dict:
    return {name: getattr(jax.config, name) for name in SETTINGS}


def test_default_directory_under_the_user_cache_and_idempotent(jax_settings, tmp_path):
    expected = tmp_path / "xdg" / "arbitrary_style" / "jax_compilation_cache"
    assert compilation_cache.default_dir() == expected
    assert compilation_cache.enable() == expected
    assert expected.is_dir()
    settings = current()
    assert settings == {
        "jax_compilation_cache_dir": str(expected),
        "jax_persistent_cache_min_compile_time_secs": compilation_cache.MIN_COMPILE_TIME_SECS,
        "jax_persistent_cache_min_entry_size_bytes": compilation_cache.MIN_ENTRY_SIZE_BYTES,
    }
    assert compilation_cache.enable() == expected
    assert current() == settings


def test_environment_variable_and_argument_override(jax_settings, tmp_path, monkeypatch):
    monkeypatch.setenv(compilation_cache.ENV_VAR, str(tmp_path / "chosen"))
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "jax-own"))
    assert compilation_cache.enable() == tmp_path / "chosen"
    assert compilation_cache.enable() == tmp_path / "chosen"
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "chosen")
    assert compilation_cache.enable(tmp_path / "argument") == tmp_path / "argument"
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "argument")


@pytest.mark.parametrize("value", ["", "0", "off", "OFF", "false", "no"])
def test_off_switch_changes_nothing(jax_settings, tmp_path, monkeypatch, value):
    monkeypatch.setenv(compilation_cache.ENV_VAR, value)
    before = current()
    assert compilation_cache.enable() is None
    assert current() == before
    assert not (tmp_path / "xdg").exists()


def test_a_directory_jax_already_has_is_kept_with_its_thresholds(jax_settings, tmp_path):
    # What the test suite's conftest.py sets through JAX_COMPILATION_CACHE_DIR.
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "tests"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    before = current()
    assert compilation_cache.enable() == tmp_path / "tests"
    assert current() == before
    assert not (tmp_path / "xdg").exists()


# Each command fails on its arguments, after main() turned the cache on.
USAGE_ERRORS = {
    "train": (["--config=configs/demo.py:smoke", "--workdir={tmp}/run", "unexpected"],
              "unexpected arguments"),
    "eval": (["--workdir={tmp}/missing"], "does not exist"),
    # A style image that does not exist: found once the model has loaded.
    "stylize": (["{tmp}/photo.png", "-o", "{tmp}/out", "--pretrained=magenta-lite",
                 "--style={tmp}/missing.png"], "not found"),
}


@pytest.mark.parametrize("command", sorted(USAGE_ERRORS))
def test_command_line_tools_enable_it_first(tmp_path, command):
    args, message = USAGE_ERRORS[command]
    Image.new("RGB", (16, 12)).save(tmp_path / "photo.png")
    cache = tmp_path / "cli-cache"
    proc = subprocess.run(
        [sys.executable, "-m", f"arbitrary_style.{command}", *(a.format(tmp=tmp_path) for a in args)],
        cwd=ROOT, env=subprocess_env(ARBITRARY_STYLE_COMPILATION_CACHE=str(cache)),
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert cache.is_dir()


# A stylize run in a fresh interpreter that reports how many programs XLA
# compiled (JAX's monitoring events: a program found in the persistent cache
# is loaded, not compiled).
COUNT_COMPILES = """
import collections, sys
from jax import monitoring
from arbitrary_style import compilation_cache, stylize
events = collections.Counter()
monitoring.register_event_listener(lambda event, **_: events.update([event]))
compilation_cache.enable(sys.argv[1])
status = stylize.run(["stylize", *sys.argv[2:]])
# Every program asks the persistent cache first; a hit is loaded, the rest compiled.
requests = events["/jax/compilation_cache/compile_requests_use_cache"]
print("status", status, "compiled", requests - events["/jax/compilation_cache/cache_hits"])
"""


def test_a_second_process_compiles_nothing(tmp_path):
    Image.new("RGB", (75, 50), (120, 60, 30)).save(tmp_path / "photo.png")
    Image.effect_noise((64, 64), 40).convert("RGB").save(tmp_path / "style.png")
    command = [
        sys.executable, "-c", COUNT_COMPILES, str(tmp_path / "cache"), str(tmp_path / "photo.png"),
        "-o", str(tmp_path / "out"), "--pretrained=magenta-lite", f"--style={tmp_path / 'style.png'}",
        "--overwrite",
    ]  # fmt: skip
    runs = [
        subprocess.run(command, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
        for _ in range(2)
    ]
    first, second = (run.stdout.split()[-4:] for run in runs)
    assert first[:2] == ["status", "0"] and int(first[3]) > 0, runs[0].stderr
    assert second == ["status", "0", "compiled", "0"], runs[1].stderr
