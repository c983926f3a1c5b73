r"""Stylize photos or folders of photos from the command line.

    python -m arbitrary_style.stylize photo.jpg holidays/ -o out/ \
        --pretrained magenta-lite --style starry.jpg --strength 0.5,1

Content images and folders are the positional arguments; flags may come
before, between or after them (``--`` ends the flags).

Model (one of): ``--workdir DIR [--step N]`` (a model we trained),
``--magenta_checkpoint PREFIX`` (Magenta's published checkpoint),
``--pretrained magenta-lite`` (the distilled lite pair; offline).

Arbitrary model: ``--style IMG`` or ``--style FOLDER`` (every image in it,
recursively, in sorted order), repeated for several styles (``--style a.jpg
--style b.jpg``); each style image is one output, or ``--style_weights`` (one
weight per style image, in that order, a folder's images in their sorted
order) blends their embeddings into one. N-style model: ``--style_index
i[,j,...]`` with ``--style_weights``; all styles, one output each, when
omitted (as Turi Create's ``stylize(style=None)``). ``--strength s1,s2``
gives one output per value (identity interpolation,
docs/reference-model.md §6).

Sizes, of the content and the style separately, as the reference's script
(``--image_size``, ``--style_image_size``): ``--size N`` resizes the content
(shorter side of the network input, result resized back; default native, and
the output always has the input's size); ``--style_size N`` resizes each style
image (shorter side, aspect kept, no crop; default 256, the reference's
``--style_image_size``; 0 keeps the native size), arbitrary models only.
``--size`` does not touch the styles: ``--size N --style_size N`` is what
``--size N`` alone did before styles had a size of their own.
Images over ``--max_pixels`` are stylized in tiles (``--tile``, ``--overlap``)
with the instance-norm statistics of the whole image, so tiles do not change
the look. ``--preserve_color`` keeps the content's colours (luminance-only
transfer, see arbitrary_style/inference/color.py).

Outputs are ``OUT/<content>_<style>_<strength>.png``, or ``OUT`` itself when
it names an image file and there is one output. ``--sheet`` writes instead
one contact sheet per content, ``OUT/<content>_sheet.png`` (or ``OUT``, a
file, for one content): the photo, its longer side shrunk to
``--sheet_cell`` pixels, then every style (every ``--style`` image, or every
style of an N-style model unless ``--style_index`` picks some) at every
strength, each captioned with its name (arbitrary_style/inference/sheet.py). ``--json`` prints one JSON
object per output. A missing or corrupt content image is reported and the rest
are still processed; the exit status is then 1 and the failures are listed.
Bad options fail before any work starts, with one line on stderr
(``error: <what>, <why>, <what to do>``) and exit status 2.

Folders are searched recursively for ``.jpg .jpeg .png .webp .bmp .gif .tif
.tiff`` files (any case; a GIF or multi-page TIFF gives its first frame);
other files in them are skipped and named on stderr, one line per folder
(hidden files are not). An image file named on the command line is read
whatever its extension, if Pillow reads it.

Output names are fixed from the whole set of inputs before any work starts,
so they do not depend on the order of the work or on which inputs fail:

``<content>`` is the content file's stem and ``<style>`` the style image's
(for an N-style model, the name its workdir's ``styles.json`` gives the
style, or ``style<i>``); where two inputs would share a name, the full file
name or the path tells them apart (``ok.bmp`` and ``ok.webp`` give
``ok.bmp_<style>_1.png`` and ``ok.webp_<style>_1.png``). The complete rule is
in ``arbitrary_style/inference/files.py``. A file, style or strength given
twice is used once.

An output file that already exists is an error before any work, unless
``--overwrite``; an output that would replace one of the inputs is always one.

Video: a content file with a video suffix (``.mp4 .m4v .mov .mkv .webm
.avi``), or another file that Pillow cannot read and FFmpeg can, is a video
(folders are searched for images only). It is stylized frame by frame with the
same model, style and strength options and written as a video:
``OUT/<content>_<style>_<strength><suffix>`` (the input's suffix, ``.mp4``
when FFmpeg cannot write that one), or ``OUT`` itself when it has a suffix
other than an image's and there is one output; frame count, timestamps, size
and audio are kept (arbitrary_style/inference/video.py). Flicker:
``--smooth D`` averages the instance-norm statistics over frames (decay D, 0
for each frame's own), ``--denoise W`` and ``--blend W`` filter the input and
the output frames along the optical flow (0 for none); ``--smooth 0
--denoise 0 --blend 0`` stylizes each frame as a photo. A video that cannot
be read, has no video stream, or an output FFmpeg cannot write is an error
before any work.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import math
import pathlib
import sys
import time
from collections.abc import Sequence

from absl import app, flags
from tqdm import tqdm

from arbitrary_style import command_line
from arbitrary_style.command_line import UsageError, report_usage_error
from arbitrary_style.inference import PRETRAINED, files

# The defaults of inference.stylizer.DEFAULT_STYLE_SIZE and
# inference.sheet.DEFAULT_CELL (tests/test_usability_stylize.py keeps them
# equal), here so that --help and option checks need no JAX.
DEFAULT_STYLE_SIZE = 256
DEFAULT_CELL = 256
# A side every style predictor this project builds takes (Inception-v3's
# VALID layers need 43 pixels, MobileNetV2 any); smaller --style_size and
# --size values are checked against the model's own minimum.
FITS_EVERY_PREDICTOR = 64
# inference.video's DEFAULT_SMOOTHING, DEFAULT_DENOISE, DEFAULT_BLEND and
# VIDEO_SUFFIXES (tests/test_video_cli.py keeps them equal), here for the same reason.
DEFAULT_SMOOTHING = 0.9
DEFAULT_DENOISE = 0.8
DEFAULT_BLEND = 0.5
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")

MODEL_FLAGS = ("workdir", "magenta_checkpoint", "pretrained")
MODEL_CHOICES = "--workdir DIR, --magenta_checkpoint PREFIX or --pretrained NAME"


def define_flags(flag_values: flags.FlagValues) -> None:
    """Defines the command's flags on ``flag_values``."""
    flags.DEFINE_string(
        "output", None, "Output folder, or a file for one output (required).",
        short_name="o", flag_values=flag_values,
    )
    flags.DEFINE_string(
        "workdir", None, "Training workdir of a model we trained.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "magenta_checkpoint", None, "Magenta TF1 checkpoint prefix (.../model.ckpt).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "pretrained", None, f"Published weights by name: {', '.join(PRETRAINED)}.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "step", None, "Checkpoint step in --workdir (default: latest).", flag_values=flag_values
    )
    flags.DEFINE_multi_string(
        "style", None,
        "Style image, or folder of style images (recursive, sorted), for an arbitrary model; repeatable.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "style_size", DEFAULT_STYLE_SIZE,
        "Shorter side of each style image at the style predictor (arbitrary model; as the reference's "
        "--style_image_size); 0 keeps the native size.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "style_index", None, "Style index or indices i,j (N-style model).", flag_values=flag_values
    )
    flags.DEFINE_string(
        "style_weights", None,
        "Blend weights w1,w2,... one per style image (a folder's images in sorted order).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "strength", "1", "Identity interpolation s1,s2,...; one output per value.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "size", None, "Shorter side of the content at the network (default: native); styles: --style_size.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "tile", None, "Tile side in pixels (default: automatic).", flag_values=flag_values
    )
    flags.DEFINE_integer("overlap", None, "Tile overlap in pixels.", flag_values=flag_values)
    flags.DEFINE_integer(
        "max_pixels", None, "Images above this many pixels go in tiles.", flag_values=flag_values
    )
    flags.DEFINE_boolean(
        "preserve_color", False, "Keep the content's colours.", flag_values=flag_values
    )
    flags.DEFINE_boolean(
        "overwrite", False, "Replace output files that already exist (default: refuse, before any work).",
        flag_values=flag_values,
    )
    flags.DEFINE_boolean(
        "json", False, "One JSON object per output on stdout.", flag_values=flag_values
    )
    flags.DEFINE_boolean(
        "sheet", False, "Write one contact sheet per content: every style on the photo, captioned.",
        flag_values=flag_values,
    )
    flags.DEFINE_float(
        "smooth", DEFAULT_SMOOTHING,
        "Video: decay of the running average of the instance-norm statistics over frames, in [0, 1); "
        "0 uses each frame's own (per-frame stylization).",
        flag_values=flag_values,
    )
    flags.DEFINE_float(
        "denoise", DEFAULT_DENOISE,
        "Video: weight in [0, 1) of the motion-compensated temporal filter on the input frames "
        "(removes sensor noise the network would turn into flicker); 0 for none.",
        flag_values=flag_values,
    )
    flags.DEFINE_float(
        "blend", DEFAULT_BLEND,
        "Video: weight in [0, 1) of the same filter on the output frames (carries texture along the "
        "motion); 0 for none.",
        flag_values=flag_values,
    )
    flags.DEFINE_multi_string(
        "mask", None,
        "Styles by region: one greyscale mask per style (white: that style), in the order of the styles, "
        "or one label image (its distinct values, ascending, stand for the styles); any size. One output "
        "with every style in its region.",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "strength_map", None,
        "Greyscale image (any size): the strength per pixel, white --strength, black the content's own "
        "style (arbitrary model).",
        flag_values=flag_values,
    )
    flags.DEFINE_float(
        "feather", None,
        "Blur of --mask and --strength_map in pixels at the network (default: 1% of the shorter side; "
        "0: hard edges).",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "sheet_cell", DEFAULT_CELL, "Longer side of the photo in a --sheet (never enlarged).",
        flag_values=flag_values,
    )


def parse_floats(text: str, option: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is not a list of numbers, a value does not parse, "
            "give comma-separated numbers such as 0.5,1"
        ) from None
    if not values:
        raise UsageError(f"{option} is empty, it needs at least one value, give comma-separated numbers")
    return values


def parse_strengths(text: str) -> list[float]:
    """The --strength values, each once, in the order given."""
    values = parse_floats(text, "--strength")
    bad = [v for v in values if not math.isfinite(v) or v < 0]
    if bad:
        raise UsageError(
            f"--strength {bad} out of range, values must be finite and >= 0, "
            "give 0 (the content's own style) to 1 (the full style) or above 1 to extrapolate"
        )
    return list(dict.fromkeys(values))


def parse_indices(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(
            f"--style_index {text!r} is not a list of integers, a value does not parse, "
            "give comma-separated style indices such as 0,2"
        ) from None


@dataclasses.dataclass(frozen=True)
class Styles:
    """The styles to apply, and what choosing them found."""

    choices: list[files.StyleChoice]
    files: list[pathlib.Path]  # style image files read (inputs that outputs must not replace)
    notes: list[str]  # skipped non-image files in --style folders, for stderr


def style_choices(options: flags.FlagValues, stylizer, strengths: Sequence[float] = (1.0,)) -> Styles:
    """The styles to apply, checked against the model (before any work)."""
    weights = (
        parse_floats(options.style_weights, "--style_weights") if options.style_weights else None
    )
    style_files: list[pathlib.Path] = []
    notes: list[str] = []
    if stylizer.num_styles is None:  # arbitrary model
        if options.style_index:
            raise UsageError(
                "--style_index is for N-style models, this model predicts a style from an image, "
                "give --style IMG instead"
            )
        if not options.style:
            raise UsageError(
                "no style given, an arbitrary-style model needs a style image, "
                "give --style IMG or --style FOLDER (repeated for several)"
            )
        style_files, notes = files.collect_styles(options.style)
        items: list = [str(path) for path in style_files]
        if weights is None:
            # Without weights each style is one output: a style given twice, once.
            once: dict[pathlib.Path, str] = {}
            for path in items:
                once.setdefault(pathlib.Path(path).resolve(), path)
            items = list(once.values())
        distinct = list(dict.fromkeys(items))
        labels = dict(zip(distinct, files.unique_labels(distinct), strict=True))
        names = [labels[path] for path in items]
        # min_style_side traces the predictor (0.3 s); every trunk takes
        # images of FITS_EVERY_PREDICTOR pixels (Inception-v3 needs 43).
        if (
            options.style_size
            and options.style_size < FITS_EVERY_PREDICTOR
            and options.style_size < (minimum := stylizer.min_style_side())
        ):
            raise UsageError(
                f"--style_size {options.style_size} too small, this model's style predictor needs style "
                f"images of at least {minimum} pixels a side, give --style_size {minimum} or more"
            )
        # --strength != 1 embeds the content as a style image (--style_size), or
        # with --style_size 0 as the network sees it (--size).
        embeds_content = any(s != 1.0 for s in strengths) and not options.style_size
        if (
            embeds_content
            and options.size
            and options.size < FITS_EVERY_PREDICTOR
            and options.size < (minimum := stylizer.min_style_side())
        ):
            raise UsageError(
                f"--size {options.size} too small for --strength other than 1, the style predictor "
                f"embeds the content at that size and needs at least {minimum} pixels a side, "
                f"give --size {minimum} or more"
            )
    else:
        if options.style:
            raise UsageError(
                "--style is for arbitrary-style models, this N-style model has a fixed set of styles, "
                f"give --style_index with values in 0..{stylizer.num_styles - 1}"
            )
        if options["style_size"].present:
            raise UsageError(
                "--style_size is for arbitrary-style models, this N-style model reads no style images, "
                "leave --style_size out"
            )
        n = stylizer.num_styles
        indices = parse_indices(options.style_index) if options.style_index else list(range(n))
        bad = [i for i in indices if not 0 <= i < n]
        if bad:
            raise UsageError(
                f"--style_index {bad} out of range, this model has styles 0..{n - 1}, "
                "give indices in that range"
            )
        items = indices if weights is not None else list(dict.fromkeys(indices))
        labels = files.style_labels(stylizer.style_names or [None] * n)
        names = [labels[i] for i in items]
    if options.mask:
        # One output: every style in its region (Stylizer.stylize(mask=)).
        return Styles([files.StyleChoice(list(items), "+".join(names))], style_files, notes)
    if weights is None:
        # Styles without weights: one output each.
        choices = [files.StyleChoice(item, name) for item, name in zip(items, names, strict=True)]
        return Styles(choices, style_files, notes)
    if len(weights) != len(items):
        folders = " (a --style folder gives one style per image in it)" if stylizer.num_styles is None else ""
        raise UsageError(
            f"--style_weights has {len(weights)} values for {len(items)} styles{folders}, "
            "a blend takes one weight per style, give one per style"
        )
    if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise UsageError(
            f"--style_weights {weights} out of range, weights must be finite, >= 0 and not all 0, "
            "give weights such as 1,1"
        )
    blend = [(item, w) for item, w in zip(items, weights, strict=True)]
    name = "+".join(f"{n}x{w:g}" for n, w in zip(names, weights, strict=True) if w)
    return Styles([files.StyleChoice(blend, name)], style_files, notes)


def load_stylizer(options: flags.FlagValues, *, enable_compilation_cache: bool):
    # JAX and the model are imported only here, once the options have passed
    # their checks: importing them takes about 1.5 s on a 2-core CPU, and
    # --help or a bad option should answer at once.
    from arbitrary_style import compilation_cache  # noqa: PLC0415
    from arbitrary_style.inference.stylizer import Stylizer  # noqa: PLC0415

    if enable_compilation_cache:
        # Each new image size compiles the network again: kept across runs.
        # Before the model loads, which may already compile.
        compilation_cache.enable()
    if options.workdir is not None:
        return Stylizer.from_workdir(options.workdir, options.step)
    if options.magenta_checkpoint is not None:
        return Stylizer.from_magenta_checkpoint(options.magenta_checkpoint)
    return Stylizer.from_pretrained(options.pretrained)


def style_codes(options: flags.FlagValues, stylizer, styles: Sequence[files.StyleChoice]) -> list:
    """Each style's code, once for all contents and strengths; a bad style image is a UsageError."""
    codes = []
    for style in styles:
        try:
            if options.mask:
                codes.append(
                    [stylizer.style_code(item, style_size=options.style_size or None) for item in style.style]
                )
                continue
            codes.append(stylizer.style_code(style.style, style_size=options.style_size or None))
        except ValueError as error:  # an unreadable or too small image, named in the message
            raise UsageError(f"--style {error}") from None
    return codes


def check_options(options: flags.FlagValues, paths: Sequence[str]) -> None:
    """The checks that need no model and no files."""
    if not paths:
        raise UsageError(
            "no content images, stylize needs images to work on, give image files or folders as arguments"
        )
    if not options.output:
        raise UsageError(
            "-o/--output is required, the outputs need a place, "
            "give an output folder or a file for one output"
        )
    chosen = [f"--{name}" for name in MODEL_FLAGS if getattr(options, name) is not None]
    if len(chosen) != 1:
        given = f"{' and '.join(chosen)} given" if chosen else "no model given"
        raise UsageError(f"{given}, stylize runs one model, give one of {MODEL_CHOICES}")
    if options.pretrained is not None and options.pretrained not in PRETRAINED:
        raise UsageError(
            f"--pretrained {options.pretrained!r} unknown, there are no published weights by that name, "
            f"give one of {', '.join(PRETRAINED)}"
        )
    for option in ("size", "tile", "max_pixels", "sheet_cell"):
        value = getattr(options, option)
        if value is not None and value <= 0:
            raise UsageError(f"--{option} {value} out of range, it must be positive, give a number > 0")
    if options.style_size < 0:
        raise UsageError(
            f"--style_size {options.style_size} out of range, it is a shorter side in pixels, "
            "give a number > 0, or 0 for the native size"
        )
    if options.overlap is not None and options.overlap < 0:
        raise UsageError(f"--overlap {options.overlap} out of range, it must be >= 0, give 0 or more")
    if options.tile is not None and options.tile % 4:
        raise UsageError(
            f"--tile {options.tile} not a multiple of 4, the network's stride is 4, "
            f"give {options.tile // 4 * 4 or 4} or {options.tile // 4 * 4 + 4}"
        )
    if options.tile is not None and options.overlap is not None and options.overlap >= options.tile:
        raise UsageError(
            f"--overlap {options.overlap} not smaller than --tile {options.tile}, "
            "tiles must advance, give a smaller --overlap"
        )
    if options.feather is not None and not (math.isfinite(options.feather) and options.feather >= 0):
        raise UsageError(
            f"--feather {options.feather} out of range, it is a blur in pixels, give 0 or more"
        )
    if options.mask and (options.style_weights or options.sheet):
        other = "--style_weights" if options.style_weights else "--sheet"
        raise UsageError(
            f"--mask with {other}, --mask places each style in its own region of one output, "
            f"leave {other} out"
        )
    if options.step is not None and options.workdir is None:
        raise UsageError("--step without --workdir, it selects a checkpoint of a workdir, give --workdir DIR")
    for option in ("smooth", "denoise", "blend"):
        value = getattr(options, option)
        if not (math.isfinite(value) and 0 <= value < 1):
            raise UsageError(
                f"--{option} {value} out of range, it is a weight in [0, 1), "
                f"give e.g. --{option} 0.5, or 0 for none"
            )


def check_regions(options: flags.FlagValues, stylizer, styles: Sequence[files.StyleChoice], videos) -> None:
    """--mask and --strength_map files readable and fitting the styles, before any work."""
    if not (options.mask or options.strength_map):
        return
    from arbitrary_style.inference import regions  # noqa: PLC0415  (see load_stylizer)

    option = "--mask" if options.mask else "--strength_map"
    if videos:
        raise UsageError(
            f"{option} with the video {next(iter(videos))}, regions are for photos, "
            f"leave {option} out for videos"
        )
    if options.strength_map and stylizer.num_styles is not None:
        raise UsageError(
            "--strength_map needs a model with a style predictor, this N-style model has no style "
            "of the content to blend towards, leave --strength_map out"
        )
    try:
        if options.mask:
            regions.region_weights(options.mask, len(styles[0].style), (4, 4), 0)
        if options.strength_map:
            regions.load_grey(options.strength_map)
    except (OSError, ValueError) as error:
        raise UsageError(f"{option} {error}") from None


def split_videos(contents: Sequence[pathlib.Path]) -> tuple[list[pathlib.Path], set[pathlib.Path]]:
    """(contents, the videos among them); each video probed, an unreadable one is a UsageError."""
    # Deferred with the Stylizer (see load_stylizer): PyAV, OpenCV and JAX.
    from arbitrary_style.inference import video  # noqa: PLC0415

    videos = {path for path in contents if video.is_video(path)}
    for path in videos:
        video.probe(path)  # VideoError (a UserError) names the file and the fix
    return list(contents), videos


def video_output_path(content: pathlib.Path, planned: pathlib.Path) -> pathlib.Path:
    """A planned ``<name>.png`` in a folder, as a video file: the content's suffix, or .mp4."""
    from arbitrary_style.inference import video  # noqa: PLC0415  (see split_videos)

    suffix = content.suffix.lower()
    try:
        video.output_format(planned.with_suffix(suffix))
    except video.VideoError:
        suffix = ".mp4"
    return planned.with_name(planned.stem + suffix)


def plan_with_videos(
    options: flags.FlagValues,
    contents: Sequence[pathlib.Path],
    videos: set[pathlib.Path],
    styles: Sequence[files.StyleChoice],
    strengths: Sequence[float],
) -> list[files.Output]:
    """``files.plan_outputs`` with the videos' outputs as video files (see the module docstring)."""
    count = len(contents) * len(styles) * len(strengths)
    target = pathlib.Path(options.output)
    suffix = target.suffix.lower()
    if videos and suffix and suffix not in files.OUTPUT_SUFFIXES and not target.is_dir():
        # A file name that is not an image's: one video output.
        if count != 1:
            raise UsageError(
                f"-o {options.output} names one file, there are {count} outputs, give a folder"
            )
        reason = command_line.unwritable_reason(target.parent)
        if reason is not None:
            raise UsageError(
                f"output folder {target.parent} is not writable, {reason}, give -o a folder you can write to"
            )
        return [files.Output(contents[0], 0, strengths[0], target)]
    target, as_file = files.output_target(options.output, count)
    if as_file and videos:
        raise UsageError(
            f"-o {options.output} names an image file, the input {next(iter(videos))} is a video, "
            "give -o a video file such as out.mp4, or a folder"
        )
    outputs = files.plan_outputs(contents, styles, strengths, target, as_file)
    return [
        dataclasses.replace(output, path=video_output_path(output.content, output.path))
        if output.content in videos
        else output
        for output in outputs
    ]


def plan_programs(options: flags.FlagValues, stylizer, outputs: Sequence[files.Output], videos) -> None:
    """Tells the Stylizer the size of every photo it is about to stylize, once
    per output, so that sizes share compiled programs where that saves time
    (inference/buckets.py). Sizes come from the file headers; an unreadable
    file is left out here and reported when it is stylized."""
    # Deferred with the Stylizer (see load_stylizer).
    from arbitrary_style.images import image_size, shorter_side_shape  # noqa: PLC0415

    sizes = []
    for output in outputs:
        if output.content in videos:
            continue
        size = image_size(output.content)
        if size is not None:
            sizes.append(size if not options.size else shorter_side_shape(*size, options.size))
    stylizer.plan(sizes, max_pixels=options.max_pixels)


def stylize_inputs(
    options: flags.FlagValues, paths: Sequence[str], *, enable_compilation_cache: bool = False
) -> int:
    """Checks the options, then stylizes every content with every style and strength.

    Args:
      options: parsed flags (see ``define_flags``).
      paths: content images and folders.
      enable_compilation_cache: turn on JAX's persistent compilation cache
        (``arbitrary_style.compilation_cache``) before the model loads; the
        command line does, callers in a process of their own choose.

    Returns:
      The exit status: 0; 1 when some inputs failed (listed on stderr); 2 for
      a bad option (one line on stderr, nothing written).
    """
    try:
        check_options(options, paths)
        strengths = parse_strengths(options.strength)
        contents, failures, notes = files.collect_contents(paths)
        contents, videos = split_videos(contents)
        if videos and options.sheet:
            raise UsageError(
                f"--sheet with the video {next(iter(videos))}, a contact sheet is of one photo, "
                "leave --sheet out for videos or give photos"
            )
        stylizer = load_stylizer(options, enable_compilation_cache=enable_compilation_cache)
        styles = style_choices(options, stylizer, strengths)
        if options.sheet:
            target, as_file = files.output_target(options.output, len(contents))
            sheets = files.plan_sheets(contents, target, as_file)
            outputs = []
            paths_out = sheets
        else:
            outputs = plan_with_videos(options, contents, videos, styles.choices, strengths)
            paths_out = [output.path for output in outputs]
        files.check_overwrites(paths_out, [*contents, *styles.files], options.overwrite)
        if videos:
            from arbitrary_style.inference import video  # noqa: PLC0415  (see split_videos)

            # A format FFmpeg cannot write, or one that cannot hold the audio: before any work.
            for output in outputs:
                if output.content in videos:
                    video.choose_encoder(output.path, output.content)
        # After the output checks (an error there costs no predictor pass);
        # unreadable and too small style images are refused here.
        codes = style_codes(options, stylizer, styles.choices)
        check_regions(options, stylizer, styles.choices, videos)
    except (UsageError, FileNotFoundError) as error:
        return report_usage_error(error)
    if not options.sheet:
        plan_programs(options, stylizer, outputs, videos)
    for note in [*notes, *styles.notes]:
        print(note, file=sys.stderr)

    # Deferred with the Stylizer (see load_stylizer), which has loaded by now.
    from arbitrary_style.inference.stylizer import load_image, save_image  # noqa: PLC0415

    def stylize_one(image, code, strength):
        return stylizer.stylize(
            image,
            code,
            strength=strength,
            mask=options.mask or None,
            strength_map=options.strength_map,
            feather=options.feather,
            **network_options(options),
        )

    by_content: dict[pathlib.Path, list[files.Output]] = collections.defaultdict(list)
    for output in outputs:
        by_content[output.content].append(output)
    writer = BackgroundWriter(save_image, failures)
    progress = tqdm(contents, desc="stylize", unit="image", file=sys.stderr, disable=len(contents) < 2)
    for k, content in enumerate(progress):
        if content in videos:
            stylize_video_outputs(options, stylizer, by_content[content], styles, codes, failures)
            continue
        try:
            image = load_image(content)
        except (OSError, ValueError) as error:
            failures.append((str(content), str(error)))
            print(f"skipped {content}: {error}", file=sys.stderr)
            continue
        if options.sheet:
            start = time.perf_counter()
            try:
                sheet = contact_sheet(
                    image, styles.choices, codes, strengths, stylize_one, options.sheet_cell
                )
            except ValueError as error:  # a content too small for its own style (strength != 1)
                failures.append((str(content), str(error)))
                print(f"skipped {sheets[k]}: {error}", file=sys.stderr)
                continue
            save_image(sheet, sheets[k])
            if options.json:
                record = {
                    "input": str(content),
                    "output": str(sheets[k]),
                    "styles": [style.name for style in styles.choices],
                    "strengths": strengths,
                    "size": [int(sheet.shape[0]), int(sheet.shape[1])],
                    "seconds": round(time.perf_counter() - start, 3),
                }
                print(json.dumps(record), flush=True)
            continue
        for output in by_content[content]:
            start = time.perf_counter()
            try:
                out = stylize_one(image, codes[output.style], output.strength)
            except ValueError as error:  # a content too small for its own style (strength != 1)
                failures.append((str(content), str(error)))
                print(f"skipped {output.path}: {error}", file=sys.stderr)
                continue
            record = None
            if options.json:
                record = {
                    "input": str(content),
                    "output": str(output.path),
                    "style": styles.choices[output.style].name,
                    "strength": output.strength,
                    "size": [int(out.shape[0]), int(out.shape[1])],
                    "seconds": round(time.perf_counter() - start, 3),
                }
            writer.write(out, output.path, record)
    writer.finish()
    if failures:
        print(f"{len(failures)} input(s) failed:", file=sys.stderr)
        for name, why in failures:
            print(f"  {name}: {why}", file=sys.stderr)
        return 1
    return 0


class BackgroundWriter:
    """Writes stylized images in a thread while the next one is stylized.

    Encoding a PNG (Pillow releases the GIL) took 90 ms for an 800x600
    image, as long as the lite network's pass over it on a 2-core CPU. At
    most ``MAX_PENDING`` images wait, in order; a failed write is listed
    with the other failures. A JSON record is printed once its file is written.
    """

    MAX_PENDING = 2

    def __init__(self, save, failures: list):
        self._save = save
        self._failures = failures
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="writer")
        self._pending: collections.deque = collections.deque()

    def _write(self, image, path, record) -> None:
        self._save(image, path)
        if record is not None:
            print(json.dumps(record), flush=True)

    def write(self, image, path: pathlib.Path, record: dict | None) -> None:
        while len(self._pending) >= self.MAX_PENDING:
            self._collect(self._pending.popleft())
        self._pending.append((path, self._pool.submit(self._write, image, path, record)))

    def _collect(self, item) -> None:
        path, future = item
        try:
            future.result()
        except (OSError, ValueError) as error:
            self._failures.append((str(path), f"cannot be written, {error}"))
            print(f"skipped {path}: cannot be written, {error}", file=sys.stderr)

    def finish(self) -> None:
        while self._pending:
            self._collect(self._pending.popleft())
        self._pool.shutdown()


def network_options(options: flags.FlagValues) -> dict:
    """The options photos and video frames share, as ``Stylizer.stylize`` keywords."""
    return dict(
        resize=options.size,
        # P(content) for strength != 1 is preprocessed as the styles are.
        style_size=options.style_size or None,
        tile=options.tile,
        overlap=options.overlap,
        max_pixels=options.max_pixels,
        preserve_color=options.preserve_color,
    )


def stylize_video_outputs(options, stylizer, outputs, styles: Styles, codes, failures) -> None:
    """Writes each output of one video content (inference/video.py), a JSON record each."""
    from arbitrary_style.inference import video  # noqa: PLC0415  (see split_videos)

    for output in outputs:
        try:
            result = video.stylize_video(
                stylizer,
                output.content,
                output.path,
                codes[output.style],
                strength=output.strength,
                smoothing=options.smooth,
                denoise=options.denoise,
                blend=options.blend,
                **network_options(options),
            )
        except (ValueError, video.VideoError) as error:  # e.g. a frame too small for strength != 1
            failures.append((str(output.content), str(error)))
            print(f"skipped {output.path}: {error}", file=sys.stderr)
            continue
        if options.json:
            record = {
                "input": str(output.content),
                "output": str(output.path),
                "style": styles.choices[output.style].name,
                "strength": output.strength,
                "size": [result.info.height, result.info.width],
                "frames": result.frames,
                "seconds": round(result.seconds, 3),
                "frames_per_second": round(result.frames / max(result.seconds, 1e-9), 2),
            }
            print(json.dumps(record), flush=True)


def contact_sheet(image, styles: Sequence[files.StyleChoice], codes, strengths, stylize_one, cell: int):
    """The photo (longer side shrunk to ``cell``) and its stylization by every style at
    every strength, as one captioned sheet (arbitrary_style/inference/sheet.py)."""
    # Deferred with the Stylizer (see load_stylizer): the sheet module resizes with JAX.
    from arbitrary_style.inference import sheet  # noqa: PLC0415

    small = sheet.thumbnail(image, cell)
    cells = [("original", small)]
    for style, code in zip(styles, codes, strict=True):
        for strength in strengths:
            caption = style.name if len(strengths) == 1 else f"{style.name} {files.format_strength(strength)}"
            cells.append((caption, stylize_one(small, code, strength)))
    return sheet.contact_sheet(cells)


def run(argv: Sequence[str]) -> int:
    """The command in this process: ``argv`` as on the command line (``argv[0]``: the program).

    The flags go into a fresh ``flags.FlagValues`` (``command_line.run_command``),
    so calls are independent of each other and of ``flags.FLAGS``. Returns the
    exit status (see ``stylize_inputs``); the compilation cache is left as the
    caller set it.
    """
    return command_line.run_command(argv, define_flags, stylize_inputs)


def main(argv: list[str]) -> int:
    # The log level was set by the flags parser (command_line.configure_logging).
    return command_line.guarded(stylize_inputs)(flags.FLAGS, argv[1:], enable_compilation_cache=True)


if __name__ == "__main__":
    app.run(main, flags_parser=command_line.flags_parser(define_flags))
