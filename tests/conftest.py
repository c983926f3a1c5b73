"""Shared test helpers: a fake, deterministic data source and small train configs.

The fake source honours the data contract of ``arbitrary_style.data``
(``train_batches(config, *, start_step, process_index, process_count)``: batch
k is a function of (config.seed, k); process p gets rows [p*b, (p+1)*b)) with
fixed image sizes, so that trainer tests need no TensorFlow and compile once.
Subprocess tests import this module by path (``sys.path`` += tests/).
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FAKE_NUM_STYLES = 3


def fake_num_styles(config) -> int:
    return config.model.num_styles if config.model.num_styles > 0 else FAKE_NUM_STYLES


def fake_global_batch(config, step: int) -> dict[str, np.ndarray]:
    size = config.data.image_size
    batch = config.train.batch_size
    rng = np.random.default_rng([config.seed, step])
    out = {
        "content": rng.random((batch, size, size, 3), dtype=np.float32),
        "style": rng.random((batch, size, size, 3), dtype=np.float32),
        "style_id": rng.integers(0, fake_num_styles(config), batch).astype(np.int32),
    }
    # Smooth the images a little so that the losses are not pure noise.
    for key in ("content", "style"):
        out[key] = (out[key] + np.roll(out[key], 1, axis=1) + np.roll(out[key], 1, axis=2)) / 3
    return out


def fake_train_batches(config, *, start_step=0, process_index=0, process_count=1):
    local = config.train.batch_size // process_count
    step = start_step
    while True:
        batch = fake_global_batch(config, step)
        yield {k: v[process_index * local : (process_index + 1) * local] for k, v in batch.items()}
        step += 1


def install_fake_data(setattr_fn=None):
    """Points the data module's two entry points at the fakes."""
    # Deferred here and in leaves(): conftest loads for every test, and JAX and
    # the data package (about 3 s) only for the tests that use these helpers.
    from arbitrary_style import data  # noqa: PLC0415

    if setattr_fn is None:
        data.train_batches = fake_train_batches
        data.num_styles = fake_num_styles
    else:
        setattr_fn(data, "train_batches", fake_train_batches)
        setattr_fn(data, "num_styles", fake_num_styles)


@pytest.fixture
def fake_data(monkeypatch):
    install_fake_data(monkeypatch.setattr)


def synthetic_photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth synthetic picture with some edges: float32 [h, w, 3] in [0, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    phase = rng.uniform(0, 6, 3)
    base = 0.5 + 0.35 * np.sin(9 * x[..., None] + 5 * y[..., None] ** 2 + phase)
    base += 0.1 * ((x[..., None] * 13 + y[..., None] * 7) % 1 > 0.5)
    return np.clip(base, 0, 1).astype(np.float32)


def write_tf_checkpoint(prefix: pathlib.Path, values: dict[str, np.ndarray]) -> None:
    """A name-based TF checkpoint of ``values`` at ``prefix``, written with
    SaveV2, the op that ``tf.compat.v1.train.Saver`` runs (as the reference's
    checkpoints were written)."""
    # Deferred: TensorFlow takes about 10 s to import, and only the tests that
    # write a TF checkpoint need it; its GPUs are hidden at once.
    import tensorflow as tf  # noqa: PLC0415

    tf.config.set_visible_devices([], "GPU")
    names = sorted(values)
    tf.raw_ops.SaveV2(
        prefix=str(prefix),
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tf.constant(values[n]) for n in names],
    )


def experiment_config(name: str, arg: str | None = None):
    """``configs/<name>.py``'s ``get_config(arg)``: the one way tests load a config.

    The config file is executed as ml_collections' ``config_flags`` does for
    ``--config=configs/<name>.py:<arg>``.
    """
    path = ROOT / "configs" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"config_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def load_config(name: str, arg: str | None = "smoke", **train):
    """``experiment_config(name, arg)`` (the smoke variant by default) with quiet,
    fast ``config.train`` defaults and the given fields overridden."""
    config = experiment_config(name, arg)
    # Quiet, fast defaults for tests; each test states what it needs.
    defaults = dict(tensorboard=False, image_every=0, log_every=1000, checkpoint_every=1000)
    for key, value in (defaults | train).items():
        setattr(config.train, key, value)
    return config


# Compiled executables are shared by the tests' processes and runs (most tests
# compile the same smoke step): JAX's persistent compilation cache, keyed by
# the program, so a hit is the same executable a fresh compile would give.
COMPILATION_CACHE = pathlib.Path(tempfile.gettempdir()) / "arbitrary-style-tests-jax-cache"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(COMPILATION_CACHE))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# LLVM's optimisation passes dominate XLA:CPU compile time and the tests' steps
# are tiny: level 0 compiles the Inception smoke step ~2.5x faster (measured on
# the 2-core CI machine). XLA's own HLO optimisations and its float semantics
# are unchanged; set XLA_FLAGS yourself to override.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAGS}".strip()


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment of a test subprocess: the repo importable, tests/ too."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")])
    if "XLA_FLAGS" in extra:
        extra = dict(extra, XLA_FLAGS=f"{extra['XLA_FLAGS']} {TEST_XLA_FLAGS}")
    env.update(extra)
    return env


def run_python(code: str, *, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter (cwd: the repo); raises with its output on failure."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode:
        raise AssertionError(f"subprocess failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def leaves(tree) -> list[np.ndarray]:
    """A pytree's leaves as host NumPy arrays (for comparing states)."""
    import jax  # noqa: PLC0415  (deferred, see install_fake_data)

    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


@pytest.fixture(scope="module")
def nstyle_workdir(tmp_path_factory):
    """A workdir holding a random 3-style N-style model with distinct style
    rows (as training writes it), and no style record."""
    # Deferred: conftest loads for every test; most never build a model.
    from flax import nnx  # noqa: PLC0415

    from arbitrary_style import models  # noqa: PLC0415
    from arbitrary_style.training import checkpoints  # noqa: PLC0415

    config = experiment_config("nstyle", "smoke")
    workdir = tmp_path_factory.mktemp("nstyle")
    model = models.build_model(config.model, rngs=nnx.Rngs(0))
    rows = model.style_tables.expand.conv3.conv
    rows.beta[...] = rows.beta[...] + np.arange(3, dtype=np.float32)[:, None] * 0.3
    checkpoints.save_config(config, workdir)
    mngr = checkpoints.manager(workdir, max_to_keep=1)
    checkpoints.save(mngr, 1, nnx.state(model), {"step": np.int32(1)}, force=True)
    mngr.wait_until_finished()
    mngr.close()
    return workdir
