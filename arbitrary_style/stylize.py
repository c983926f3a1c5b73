r"""Stylize photos or folders of photos from the command line.

    python -m arbitrary_style.stylize photo.jpg holidays/ -o out/ \
        --pretrained magenta-lite --style starry.jpg --strength 0.5,1

Content images and folders are the positional arguments; flags may come
before, between or after them (``--`` ends the flags).

Model (one of): ``--workdir DIR [--step N]`` (a model we trained),
``--magenta_checkpoint PREFIX`` (Magenta's published checkpoint),
``--pretrained magenta-lite`` (the distilled lite pair; offline).

Arbitrary model: ``--style IMG``, repeated for several styles
(``--style a.jpg --style b.jpg``), with ``--style_weights`` for a blend of
their embeddings. N-style model: ``--style_index i[,j,...]`` with
``--style_weights``; all styles, one output each, when omitted (as Turi
Create's ``stylize(style=None)``). ``--strength s1,s2`` gives one output per
value (identity interpolation, docs/reference-model.md §6).

Sizes: native resolution by default, or ``--size N`` (shorter side of the
network input, result resized back); the output always has the input's size.
Images over ``--max_pixels`` are stylized in tiles (``--tile``, ``--overlap``)
with the instance-norm statistics of the whole image, so tiles do not change
the look. ``--preserve_color`` keeps the content's colours (luminance-only
transfer, see arbitrary_style/inference/color.py).

Outputs are ``OUT/<content>_<style>_<strength>.png``, or ``OUT`` itself when
it names an image file and there is one output. ``--json`` prints one JSON
object per output. A missing or corrupt content image is reported and the rest
are still processed; the exit status is then 1 and the failures are listed.
Bad options fail before any work starts, with one line on stderr and exit
status 2.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import sys
import tempfile
import time
from collections.abc import Sequence

from absl import app, flags, logging
from tqdm import tqdm

from arbitrary_style import command_line
from arbitrary_style.command_line import UsageError, report_usage_error
from arbitrary_style.data.decode import IMAGE_EXTENSIONS

# Content images the CLI reads: the training folders' extensions and TIFF.
IMAGE_SUFFIXES = IMAGE_EXTENSIONS + (".tif", ".tiff")
OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
MODEL_FLAGS = ("workdir", "magenta_checkpoint", "pretrained")


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
        "pretrained", None, "Published weights by name, e.g. magenta-lite.", flag_values=flag_values
    )
    flags.DEFINE_integer(
        "step", None, "Checkpoint step in --workdir (default: latest).", flag_values=flag_values
    )
    flags.DEFINE_multi_string(
        "style", None, "Style image for an arbitrary model",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "style_index", None, "Style index or indices i,j (N-style model).", flag_values=flag_values
    )
    flags.DEFINE_string(
        "style_weights", None, "Blend weights w1,w2,... one per style.", flag_values=flag_values
    )
    flags.DEFINE_string(
        "strength", "1", "Identity interpolation s1,s2,...; one output per value.",
        flag_values=flag_values,
    )
    flags.DEFINE_integer(
        "size", None, "Shorter side of the network input (default: native).", flag_values=flag_values
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
        "json", False, "One JSON object per output on stdout.", flag_values=flag_values
    )


def parse_floats(text: str, option: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{option} takes comma-separated numbers, got {text!r}") from None
    if not values:
        raise UsageError(f"{option} is empty")
    return values


def parse_strengths(text: str) -> list[float]:
    values = parse_floats(text, "--strength")
    bad = [v for v in values if not math.isfinite(v) or v < 0]
    if bad:
        raise UsageError(
            f"--strength values must be finite and >= 0 (0 = content's own style, "
            f"1 = full style, > 1 extrapolates); got {bad}"
        )
    return values


def parse_indices(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--style_index takes comma-separated integers, got {text!r}") from None


def collect_contents(paths: Sequence[str]) -> tuple[list[pathlib.Path], list[tuple[str, str]]]:
    """Image files named or found (recursively, sorted) in folders; missing paths as failures."""
    files, failures = [], []
    for raw in paths:
        path = pathlib.Path(raw)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                failures.append((raw, "folder holds no images (" + ", ".join(IMAGE_SUFFIXES) + ")"))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            failures.append((raw, "no such file or folder"))
    return files, failures


@dataclasses.dataclass(frozen=True)
class StyleChoice:
    """One style to apply: what the Stylizer takes, and a name for files."""

    style: object
    name: str


def style_choices(options: flags.FlagValues, stylizer) -> list[StyleChoice]:
    """The styles to apply, checked against the model (before any work)."""
    weights = (
        parse_floats(options.style_weights, "--style_weights") if options.style_weights else None
    )
    if stylizer.num_styles is None:  # arbitrary model
        if options.style_index:
            raise UsageError("--style_index is for N-style models; this model takes --style IMG")
        if not options.style:
            raise UsageError("an arbitrary-style model needs --style IMG (repeated for several)")
        for path in options.style:
            if not pathlib.Path(path).is_file():
                raise UsageError(f"--style image {path!r} does not exist")
        items: list = list(options.style)
        names = [pathlib.Path(p).stem for p in options.style]
    else:
        if options.style:
            raise UsageError("--style is for arbitrary-style models; this N-style model takes --style_index")
        n = stylizer.num_styles
        indices = parse_indices(options.style_index) if options.style_index else list(range(n))
        bad = [i for i in indices if not 0 <= i < n]
        if bad:
            raise UsageError(f"--style_index {bad} out of range: this model has styles 0..{n - 1}")
        items, names = indices, [f"style{i}" for i in indices]
    if weights is None:
        # Styles without weights: one output each.
        return [StyleChoice(item, name) for item, name in zip(items, names, strict=True)]
    if len(weights) != len(items):
        raise UsageError(
            f"--style_weights has {len(weights)} values for {len(items)} styles; give one per style"
        )
    if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise UsageError(f"--style_weights must be finite, >= 0 and not all 0; got {weights}")
    blend = [(item, w) for item, w in zip(items, weights, strict=True)]
    name = "+".join(f"{n}x{w:g}" for n, w in zip(names, weights, strict=True) if w)
    return [StyleChoice(blend, name)]


def output_target(output: str, num_outputs: int) -> tuple[pathlib.Path, bool]:
    """(path, is_file); checks that the place is writable before any work."""
    path = pathlib.Path(output)
    as_file = path.suffix.lower() in OUTPUT_SUFFIXES and not path.is_dir()
    if as_file and num_outputs != 1:
        raise UsageError(f"-o {output} names one file but there are {num_outputs} outputs; give a folder")
    folder = path.parent if as_file else path
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UsageError(f"output folder {folder} is not writable: {error}") from None
    return path, as_file


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
    try:
        return Stylizer.from_pretrained(options.pretrained)
    except ValueError as error:  # an unknown name: the message lists the known ones
        raise UsageError(f"--pretrained: {error}") from None


def check_options(options: flags.FlagValues, paths: Sequence[str]) -> None:
    """The checks that need no model and no files."""
    if not paths:
        raise UsageError("no content images: give image files or folders as arguments")
    if not options.output:
        raise UsageError("-o/--output is required: an output folder, or a file for one output")
    chosen = [f"--{name}" for name in MODEL_FLAGS if getattr(options, name) is not None]
    if len(chosen) != 1:
        given = f"{' and '.join(chosen)} given" if chosen else "no model given"
        raise UsageError(
            f"{given}; give one of --workdir DIR, --magenta_checkpoint PREFIX, --pretrained NAME"
        )
    for option in ("size", "tile", "max_pixels"):
        value = getattr(options, option)
        if value is not None and value <= 0:
            raise UsageError(f"--{option} must be positive, got {value}")
    if options.overlap is not None and options.overlap < 0:
        raise UsageError(f"--overlap must be >= 0, got {options.overlap}")
    if options.tile is not None and options.tile % 4:
        raise UsageError(f"--tile must be a multiple of 4 (the network's stride), got {options.tile}")
    if options.tile is not None and options.overlap is not None and options.overlap >= options.tile:
        raise UsageError(f"--overlap ({options.overlap}) must be smaller than --tile ({options.tile})")
    if options.step is not None and options.workdir is None:
        raise UsageError("--step goes with --workdir")


def format_strength(strength: float) -> str:
    return f"{strength:g}"


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
      a bad option (one line on stderr, nothing done).
    """
    try:
        check_options(options, paths)
        strengths = parse_strengths(options.strength)
        contents, failures = collect_contents(paths)
        stylizer = load_stylizer(options, enable_compilation_cache=enable_compilation_cache)
        styles = style_choices(options, stylizer)
        target, as_file = output_target(options.output, len(contents) * len(styles) * len(strengths))
    except (UsageError, FileNotFoundError) as error:
        return report_usage_error(error)

    # Deferred with the Stylizer (see load_stylizer), which has loaded by now.
    from arbitrary_style.inference.stylizer import load_image, save_image  # noqa: PLC0415

    # An arbitrary model's style embeddings, computed once (on first use, so
    # that a bad style image fails where it did) for all contents and strengths.
    embedded: dict[int, object] = {}
    progress = tqdm(contents, desc="stylize", unit="image", file=sys.stderr, disable=len(contents) < 2)
    for content in progress:
        try:
            image = load_image(content)
        except (OSError, ValueError) as error:
            failures.append((str(content), str(error)))
            print(f"skipped {content}: {error}", file=sys.stderr)
            continue
        for i, style in enumerate(styles):
            if i not in embedded:
                # The style's code once per style (an embedding costs a
                # predictor pass), reused for every content and strength.
                embedded[i] = stylizer.style_code(style.style, resize=options.size)
            for strength in strengths:
                start = time.perf_counter()
                out = stylizer.stylize(
                    image,
                    embedded[i],
                    strength=strength,
                    resize=options.size,
                    tile=options.tile,
                    overlap=options.overlap,
                    max_pixels=options.max_pixels,
                    preserve_color=options.preserve_color,
                )
                path = target if as_file else target / (
                    f"{content.stem}_{style.name}_{format_strength(strength)}.png"
                )
                save_image(out, path)
                if options.json:
                    record = {
                        "input": str(content),
                        "output": str(path),
                        "style": style.name,
                        "strength": strength,
                        "size": [int(out.shape[0]), int(out.shape[1])],
                        "seconds": round(time.perf_counter() - start, 3),
                    }
                    print(json.dumps(record), flush=True)
    if failures:
        print(f"{len(failures)} input(s) failed:", file=sys.stderr)
        for name, why in failures:
            print(f"  {name}: {why}", file=sys.stderr)
        return 1
    return 0


def run(argv: Sequence[str]) -> int:
    """The command in this process: ``argv`` as on the command line (``argv[0]``: the program).

    The flags go into a fresh ``flags.FlagValues`` (``command_line.run_command``),
    so calls are independent of each other and of ``flags.FLAGS``. Returns the
    exit status (see ``stylize_inputs``); the compilation cache is left as the
    caller set it.
    """
    return command_line.run_command(argv, define_flags, stylize_inputs)


def main(argv: list[str]) -> int:
    if not flags.FLAGS["verbosity"].present:
        # app.run logs at INFO; here that is JAX probing for backends and the
        # weight loader, above the outputs. Warnings only, unless --verbosity.
        logging.set_verbosity(logging.WARNING)
    return stylize_inputs(flags.FLAGS, argv[1:], enable_compilation_cache=True)


if __name__ == "__main__":
    app.run(main, flags_parser=command_line.flags_parser(define_flags))
