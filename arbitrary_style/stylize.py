r"""Stylize photos or folders of photos from the command line.

    python -m arbitrary_style.stylize photo.jpg holidays/ -o out/ \
        --pretrained magenta-lite --style starry.jpg --strength 0.5,1

Model (one of): ``--workdir DIR [--step N]`` (a model we trained),
``--magenta_checkpoint PREFIX`` (Magenta's published checkpoint),
``--pretrained magenta-lite`` (the distilled lite pair; offline).

Arbitrary model: ``--style IMG [IMG ...]`` with ``--style_weights`` for a
blend of their embeddings. N-style model: ``--style_index i[,j,...]`` with
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
Bad options fail before any work starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import sys
import tempfile
import time
from collections.abc import Sequence

from arbitrary_style import compilation_cache
from arbitrary_style.data.decode import IMAGE_EXTENSIONS

# Content images the CLI reads: the training folders' extensions and TIFF.
IMAGE_SUFFIXES = IMAGE_EXTENSIONS + (".tif", ".tiff")
OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


class UsageError(ValueError):
    """A bad option: reported before any work starts."""


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


def style_choices(args, stylizer) -> list[StyleChoice]:
    """The styles to apply, checked against the model (before any work)."""
    weights = parse_floats(args.style_weights, "--style_weights") if args.style_weights else None
    if stylizer.num_styles is None:  # arbitrary model
        if args.style_index:
            raise UsageError("--style_index is for N-style models; this model takes --style IMG")
        if not args.style:
            raise UsageError("an arbitrary-style model needs --style IMG [IMG ...]")
        for path in args.style:
            if not pathlib.Path(path).is_file():
                raise UsageError(f"--style image {path!r} does not exist")
        items: list = list(args.style)
        names = [pathlib.Path(p).stem for p in args.style]
    else:
        if args.style:
            raise UsageError("--style is for arbitrary-style models; this N-style model takes --style_index")
        n = stylizer.num_styles
        indices = parse_indices(args.style_index) if args.style_index else list(range(n))
        bad = [i for i in indices if not 0 <= i < n]
        if bad:
            raise UsageError(f"--style_index {bad} out of range: this model has styles 0..{n - 1}")
        items, names = indices, [f"style{i}" for i in indices]
    if weights is None:
        # Styles without weights: one output each.
        return [StyleChoice(item, name) for item, name in zip(items, names)]
    if len(weights) != len(items):
        raise UsageError(
            f"--style_weights has {len(weights)} values for {len(items)} styles; give one per style"
        )
    if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise UsageError(f"--style_weights must be finite, >= 0 and not all 0; got {weights}")
    blend = [(item, w) for item, w in zip(items, weights)]
    name = "+".join(f"{n}x{w:g}" for n, w in zip(names, weights) if w)
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


def load_stylizer(args):
    from arbitrary_style.inference.stylizer import Stylizer

    if args.workdir:
        return Stylizer.from_workdir(args.workdir, args.step)
    if args.magenta_checkpoint:
        return Stylizer.from_magenta_checkpoint(args.magenta_checkpoint)
    return Stylizer.from_pretrained(args.pretrained)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m arbitrary_style.stylize",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("content", nargs="+", help="content images or folders of images")
    parser.add_argument("-o", "--output", required=True, help="output folder, or a file for one output")
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--workdir", help="training workdir of a model we trained")
    model.add_argument("--magenta_checkpoint", help="Magenta TF1 checkpoint prefix (.../model.ckpt)")
    model.add_argument("--pretrained", help="published weights by name, e.g. magenta-lite")
    parser.add_argument("--step", type=int, help="checkpoint step in --workdir (default: latest)")
    parser.add_argument("--style", nargs="+", help="style image(s) (arbitrary model)")
    parser.add_argument("--style_index", help="style index or indices i,j (N-style model)")
    parser.add_argument("--style_weights", help="blend weights w1,w2,... one per style")
    parser.add_argument("--strength", default="1", help="identity interpolation s1,s2,... (default 1)")
    parser.add_argument("--size", type=int, help="shorter side of the network input (default: native)")
    parser.add_argument("--tile", type=int, help="tile side in pixels (default: automatic)")
    parser.add_argument("--overlap", type=int, default=None, help="tile overlap in pixels")
    parser.add_argument(
        "--max_pixels", type=int, default=None, help="images above this many pixels go in tiles"
    )
    parser.add_argument("--preserve_color", action="store_true", help="keep the content's colours")
    parser.add_argument("--json", action="store_true", help="one JSON object per output on stdout")
    return parser


def check_numbers(args) -> None:
    for option in ("size", "tile", "max_pixels"):
        value = getattr(args, option)
        if value is not None and value <= 0:
            raise UsageError(f"--{option} must be positive, got {value}")
    if args.overlap is not None and args.overlap < 0:
        raise UsageError(f"--overlap must be >= 0, got {args.overlap}")
    if args.tile is not None and args.tile % 4:
        raise UsageError(f"--tile must be a multiple of 4 (the network's stride), got {args.tile}")
    if args.tile is not None and args.overlap is not None and args.overlap >= args.tile:
        raise UsageError(f"--overlap ({args.overlap}) must be smaller than --tile ({args.tile})")
    if args.step is not None and not args.workdir:
        raise UsageError("--step goes with --workdir")


def format_strength(strength: float) -> str:
    return f"{strength:g}"


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_numbers(args)
        strengths = parse_strengths(args.strength)
        contents, failures = collect_contents(args.content)
        stylizer = load_stylizer(args)
        styles = style_choices(args, stylizer)
        target, as_file = output_target(args.output, len(contents) * len(styles) * len(strengths))
    except (UsageError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    from tqdm import tqdm

    from arbitrary_style.inference.stylizer import load_image, save_image

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
                embedded[i] = (
                    stylizer.embed_style(style.style, resize=args.size)
                    if stylizer.kind == "arbitrary"
                    else style.style
                )
            for strength in strengths:
                start = time.perf_counter()
                out = stylizer.stylize(
                    image,
                    embedded[i],
                    strength=strength,
                    resize=args.size,
                    tile=args.tile,
                    overlap=args.overlap,
                    max_pixels=args.max_pixels,
                    preserve_color=args.preserve_color,
                )
                path = target if as_file else target / (
                    f"{content.stem}_{style.name}_{format_strength(strength)}.png"
                )
                save_image(out, path)
                if args.json:
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


def main() -> None:
    # Each new image size compiles the network again: kept across runs.
    compilation_cache.enable()
    sys.exit(run())


if __name__ == "__main__":
    main()
