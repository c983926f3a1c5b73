r"""Input-pipeline throughput: images/s per CPU core, style and content, at 256 px.

From the repository root (the figures in experiments/benchmarks/README.md):

    .venv/bin/python -m experiments.benchmarks.input_pipeline --source=folder --batches=60
    .venv/bin/python -m experiments.benchmarks.input_pipeline --source=folder --batches=60 \
        --augment_after_crop
    .venv/bin/python -m experiments.benchmarks.input_pipeline --source=demo --batches=60

Times ``arbitrary_style.data.train_batches(..., parts=('style',))`` and
``parts=('content',)`` separately, after a warm-up, with the paper's
preprocessing (docs/reference-model.md §4: style augmentation, random resize and
crop, per-batch random size; content resize and centre crop).

--source=folder (default): the demo images written as JPEG files to a
  temporary image folder, so decoding (Pillow) is timed too. Content: the 8
  scikit-image photos at their own sizes (300 to 1411 px). Styles: the 24
  generated training styles upscaled to 768 px, closer to paintings than
  their native 256 px.
--source=demo: the in-memory demo arrays (no decoding).

Per core is reported two ways: images/s divided by the cores visible to the
process (an uncontended machine's figure), and images per CPU-second that
the process used (robust when other jobs share the cores). Prints a summary
with the machine (lscpu model name, cores), library versions and the date,
then one JSON line.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Sequence

import numpy as np
import PIL
from absl import flags
from PIL import Image

from arbitrary_style.config import base_config
from arbitrary_style.data import demo, train_batches
from arbitrary_style.data._tf import tf as _tf
from arbitrary_style.data._tf import tfds as _tfds
from experiments import script
from experiments.benchmarks import common

COMMAND = "experiments.benchmarks.input_pipeline"


def _write_folder(root: str) -> tuple[str, str]:
    content_dir, style_dir = os.path.join(root, "content"), os.path.join(root, "style")
    os.makedirs(content_dir)
    os.makedirs(style_dir)
    for name, image in zip(demo.CONTENT_NAMES, demo.content_images(), strict=True):
        Image.fromarray(image).save(os.path.join(content_dir, f"{name}.jpg"), quality=90)
    for k, image in enumerate(demo.style_images("train")):
        big = Image.fromarray(image).resize((768, 768), Image.BICUBIC)
        big.save(os.path.join(style_dir, f"style_{k:02d}.jpg"), quality=90)
    return content_dir, style_dir


def _time(config, part: str, batches: int, warmup: int) -> tuple[float, float]:
    """(images per wall-clock second, images per CPU-second of this process).

    CPU-seconds (user + system, all threads) measure the work per image even
    when other jobs share the cores, where wall-clock rates drop.
    """
    iterator = train_batches(config, parts=(part,))
    for _ in range(warmup):
        next(iterator)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(iterator)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    images = batches * int(config.train.batch_size)
    return images / elapsed, images / cpu


def define_flags(flag_values: flags.FlagValues) -> None:
    flags.DEFINE_enum(
        "source", "folder", ("folder", "demo"),
        "folder: the demo images as JPEG files in a temporary folder; demo: the in-memory arrays",
        flag_values=flag_values,
    )
    flags.DEFINE_integer("size", 256, "training image side, px", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("batch", 8, "batch size", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("batches", 40, "timed batches per half", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("warmup", 5, "untimed batches first", lower_bound=0, flag_values=flag_values)
    flags.DEFINE_boolean(
        "augment_after_crop", False,
        "config.data.style_augment_before_resize=False (cheaper colour jitter)",
        flag_values=flag_values,
    )


def main(argv: Sequence[str]) -> dict:
    """The benchmark in this process; ``argv``: the arguments after the program name."""
    return measure(*script.parse_flags([COMMAND, *argv], define_flags))


def measure(args: flags.FlagValues, words: Sequence[str] = ()) -> dict:
    """Times the two halves of the pipeline as ``args`` say; prints and returns the figures."""
    config = base_config()
    config.train.batch_size = args.batch
    config.data.image_size = args.size
    config.data.style_augment_before_resize = not args.augment_after_crop
    cores = common.cores()
    with tempfile.TemporaryDirectory() as root:
        if args.source == "folder":
            content_dir, style_dir = _write_folder(root)
            config.data.style_sources = ("image_folder",)
            config.data.content_sources = ("image_folder",)
            config.data.image_folder.style_dir = style_dir
            config.data.image_folder.content_dir = content_dir
        else:
            config.data.style_sources = ("demo",)
            config.data.content_sources = ("demo",)
        load_before = common.load_average()[0]
        style, style_cpu = _time(config, "style", args.batches, args.warmup)
        content, content_cpu = _time(config, "content", args.batches, args.warmup)
        load_after = common.load_average()[0]

    result = {
        "source": args.source,
        "size": args.size,
        "batch": args.batch,
        "batches_timed": args.batches,
        "style_augment_before_resize": not args.augment_after_crop,
        "style_images_per_s": round(style, 1),
        "content_images_per_s": round(content, 1),
        "cores": cores,
        "style_images_per_s_per_core": round(style / cores, 1),
        "content_images_per_s_per_core": round(content / cores, 1),
        "style_images_per_cpu_second": round(style_cpu, 1),
        "content_images_per_cpu_second": round(content_cpu, 1),
        "cpu": common.cpu_model(),
        "load_average_1min": [round(load_before, 2), round(load_after, 2)],
        "python": platform.python_version(),
        "tensorflow": _tf().__version__,
        "tensorflow_datasets": _tfds().__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "date": common.utc_now(),
        "command": script.recorded_command(COMMAND, args, define_flags, words),
    }
    print(
        f"{args.source} data, {args.size} px, batch {args.batch}, {cores} cores ({result['cpu']}):\n"
        f"  style   {style:8.1f} images/s = {style / cores:7.1f} per core; "
        f"{style_cpu:7.1f} images per CPU-second\n"
        f"  content {content:8.1f} images/s = {content / cores:7.1f} per core; "
        f"{content_cpu:7.1f} images per CPU-second\n"
        f"  1-min load average before/after: {load_before:.2f}/{load_after:.2f}"
    )
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    script.run_as_script(measure, define_flags)
