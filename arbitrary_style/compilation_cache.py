"""JAX's persistent compilation cache, on by default for the command-line tools.

Compiling is a large share of a short run's time on a CPU: about a minute for
the paper's train step, 3-6 s for the stylize network at each image size
(experiments/benchmarks/README.md). JAX can keep compiled programs on disk,
keyed by the program, its compile options and the JAX/XLA versions, so a hit
is the executable a fresh compile would give. ``enable()`` turns that on; the
entry points (``python -m arbitrary_style.train``, ``.eval``, ``.stylize``)
call it first thing in ``main``, before anything compiles (JAX opens the cache
at the first compilation and ignores a later change of directory). Library
modules never call it: importing this package changes no JAX setting.

Where (the first that applies):

1. ``enable(path)``'s argument;
2. ``$ARBITRARY_STYLE_COMPILATION_CACHE``: a directory, or ``""``, ``0``,
   ``off``, ``false`` or ``no`` to leave JAX's settings alone (no cache unless
   JAX's own ``JAX_COMPILATION_CACHE_DIR`` asks for one);
3. a directory JAX already has (``JAX_COMPILATION_CACHE_DIR``, or an earlier
   ``jax.config.update``, as the test suite does): kept, with its thresholds;
4. ``$XDG_CACHE_HOME/arbitrary_style/jax_compilation_cache``, with
   ``XDG_CACHE_HOME`` defaulting to ``~/.cache``.

Several processes may share the directory: JAX writes an entry only if its
key is absent, and an entry that cannot be read (one half written by another
process) is reported as a warning and compiled afresh. The cache grows
without bound (JAX's size limit needs the ``filelock`` package and would then
lock every read); delete the directory to reclaim the space. Like any
compilation cache it is trusted code: do not point it at a directory others
can write to.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

ENV_VAR = "ARBITRARY_STYLE_COMPILATION_CACHE"
OFF_VALUES = ("", "0", "off", "false", "no")

# Every program is written, however quickly it compiled. A warm run of
# ``stylize`` on one photo loads about ten programs, each of which compiles
# in under half a second on a 2-core CPU (the lite network's plain XLA
# program, the style predictor, the normalisation heads); together they were
# 1.3 s of a 3.9 s run, and loading them takes a few milliseconds each. JAX's
# default (1 s) would write none of them.
MIN_COMPILE_TIME_SECS = 0.0
# No size threshold: an entry's size says nothing about its compile time.
MIN_ENTRY_SIZE_BYTES = -1


def default_dir() -> Path:
    """``$XDG_CACHE_HOME/arbitrary_style/jax_compilation_cache`` (``~/.cache`` if unset)."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home) / "arbitrary_style" / "jax_compilation_cache"


def enable(path: str | os.PathLike | None = None) -> Path | None:
    """Points JAX's persistent compilation cache at a directory (see the module doc).

    Call before the first compilation. Calling again with the same arguments
    changes nothing.

    Args:
      path: the cache directory; None chooses it from the environment.

    Returns:
      The directory in use, or None when the cache is off.
    """
    if path is None:
        setting = os.environ.get(ENV_VAR)
        if setting is not None and setting.strip().lower() in OFF_VALUES:
            return _configured_dir()
        if setting is None and _configured_dir() is not None:
            return _configured_dir()
        path = setting or default_dir()
    directory = Path(path).expanduser().absolute()
    directory.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_SECS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", MIN_ENTRY_SIZE_BYTES)
    return directory


def _configured_dir() -> Path | None:
    """The directory JAX's own settings name, if any (and the cache is not disabled)."""
    value = jax.config.jax_compilation_cache_dir
    if not value or not jax.config.jax_enable_compilation_cache:
        return None
    return Path(value)
