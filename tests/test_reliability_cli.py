"""Bad configs and flags end in one ``error: ...`` line, exit status 2, before heavy work.

Each command runs as ``python -m arbitrary_style.<tool>`` in a subprocess (the
tools' own start-up and error path, as a user meets them), all of them at
once on a thread pool. "Before heavy work" is checked by time: each fails
within START_UP_SECONDS of starting, where the 'batch_size -2' case used to
fail after 57 s of model building and compilation, and ``--verbose`` shows
the traceback that the plain run hides.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from configs import demo as demo_config

ROOT = Path(__file__).resolve().parents[1]
SMOKE = "--config=configs/demo.py:smoke"
# Imports (JAX, Flax, TensorFlow for some tools) take 2-5 s on a 2-core CPU,
# more when the other tests run beside these; building the smoke model and
# compiling its step takes far longer than this.
START_UP_SECONDS = 30


def cases(tmp: Path) -> dict[str, tuple[list[str], dict[str, str], str]]:
    """name -> (command line after ``python -m``, extra environment, part of the error line)."""
    (tmp / "a_file").write_text("not a directory\n")
    readonly = Path("/sys/arbitrary_style_workdir") if os.geteuid() == 0 else tmp / "readonly"
    if os.geteuid() != 0:
        readonly.mkdir()
        readonly.chmod(0o555)
    workdir = tmp / "eval_workdir"
    (workdir / "checkpoints").mkdir(parents=True)
    (workdir / "config.json").write_text(json.dumps(demo_config.get_config("smoke").to_dict()))
    train = ["arbitrary_style.train", SMOKE, f"--workdir={tmp / 'run'}"]
    return {
        "typo'd key": ([*train, "--config.train.batch_sze=3"], {}, "did you mean 'batch_size'?"),
        "missing config file": (
            ["arbitrary_style.train", "--config=configs/nope.py", f"--workdir={tmp}/run"], {},
            "the config file configs/nope.py does not exist",
        ),
        "wrong variant": (
            ["arbitrary_style.train", "--config=configs/demo.py:bogus", f"--workdir={tmp}/run"], {},
            "unknown config variant 'bogus', valid variants: smoke",
        ),
        "workdir under a file": (
            ["arbitrary_style.train", SMOKE, f"--workdir={tmp / 'a_file' / 'run'}"], {},
            "which is a file",
        ),
        "read-only workdir": (
            ["arbitrary_style.train", SMOKE, f"--workdir={readonly / 'run'}"], {}, "is not writable",
        ),
        "batch size 0": ([*train, "--config.train.batch_size=0"], {}, "batch_size=0 is not a positive"),
        "batch size -2": ([*train, "--config.train.batch_size=-2"], {}, "batch_size=-2 is not a positive"),
        "batch not divisible": (
            [*train, "--config.train.batch_size=3"],
            {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
            "batch_size=3 does not divide over the 2 devices",
        ),
        "unknown source": (
            [*train, "--config.data.style_sources=('wikiart',)"], {}, "'wikiart', which is no known source",
        ),
        "missing image folder": (
            [*train, "--config.data.style_sources=('image_folder',)",
             f"--config.data.image_folder.style_dir={tmp / 'no_styles'}"], {},
            "style_dir=",
        ),
        "missing loss-network file": (
            [*train, "--config.loss.network=vgg16", f"--config.weights.loss_network={tmp / 'vgg.h5'}"],
            {}, "nor an existing file",
        ),
        "offline vgg_16": (
            [*train, "--config.loss.network=vgg16", "--config.weights.loss_network=vgg_16"],
            {"ARBITRARY_STYLE_CACHE": str(tmp / "empty_cache")},
            "run `python -m arbitrary_style.weights download vgg_16`",
        ),
        "summary nstyle without num_styles": (
            ["arbitrary_style.summary", "--config=configs/nstyle.py"], {}, "pass --config.model.num_styles=N",
        ),
        "data.prepare painter_by_numbers": (
            ["arbitrary_style.data.prepare", "painter_by_numbers", f"--data_dir={tmp / 'tfds'}"], {},
            "https://www.kaggle.com/c/painter-by-numbers/data",
        ),
        "eval --step 7": (
            ["arbitrary_style.eval", f"--workdir={workdir}", "--step=7"], {}, "step 7",
        ),
    }


def run(argv: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    environment.pop("ARBITRARY_STYLE_TRACEBACK", None)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", *argv], cwd=ROOT, env=environment,
        capture_output=True, text=True, timeout=300, check=False,
    )
    return proc, time.perf_counter() - start


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reliability")
    table = cases(tmp)
    # One verbose rerun: the same failure, with its traceback.
    argv, env, _ = table["batch size -2"]
    jobs = {name: (argv, env) for name, (argv, env, _) in table.items()}
    jobs["verbose"] = ([*argv, "--verbose"], env)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run, *job) for name, job in jobs.items()}
        done = {name: future.result() for name, future in futures.items()}
    return table, done


CASE_NAMES = sorted([
    "typo'd key", "missing config file", "wrong variant", "workdir under a file",
    "read-only workdir", "batch size 0", "batch size -2", "batch not divisible",
    "unknown source", "missing image folder", "missing loss-network file", "offline vgg_16",
    "summary nstyle without num_styles", "data.prepare painter_by_numbers", "eval --step 7",
])


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input_is_one_line_status_2_before_heavy_work(results, name):
    table, done = results
    _, _, expected = table[name]
    proc, seconds = done[name]
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert expected in lines[0], lines[0]
    assert seconds < START_UP_SECONDS, (name, seconds)


def test_verbose_shows_the_traceback(results):
    _, done = results
    proc, _ = done["verbose"]
    assert proc.returncode == 2
    assert "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.splitlines()[-1].startswith("error: config.train.batch_size=-2")
