"""Which files a stylization reads and what its outputs are called.

Content images come from files and folders (``collect_contents``), and so do
style images (``collect_styles``); folders are searched recursively for
``.jpg .jpeg .png .webp .bmp .gif .tif .tiff`` files (any case; a GIF or
multi-page TIFF gives its first frame), in sorted order, and other files in
them are reported as skipped. An image file named directly is read whatever
its extension, if Pillow reads it.

Output names (``plan_outputs``) are fixed from the whole set of inputs before
any work starts, so they do not depend on the order of the work or on which
inputs fail:

* ``<content>`` is the content file's stem. Where several contents would share
  a name (ignoring case, as the file systems of macOS and Windows do), each of
  them is named by its file name with the extension instead (``ok.bmp`` and
  ``ok.webp`` give ``ok.bmp_<style>_1.png`` and ``ok.webp_<style>_1.png``);
  where those still clash (the same name in different folders), by its path
  from the clashing files' common folder, ``/`` written as ``-``
  (``a/x.png``, ``b/x.png`` give ``a-x.png``, ``b-x.png``). A file given twice
  (by name and in a folder) is stylized once.
* ``<style>`` is the same for style images; for an N-style model's style
  ``i``, its name in the workdir's style record (``styles.json``, see
  arbitrary_style/inference/style_record.py; ``/`` and ``\\`` written as
  ``-``, names that clash ignoring case numbered ``-1``, ``-2``, ... in index
  order: ``style_labels``), or ``style<i>`` without a record; a blend is
  ``<style>x<weight>`` joined by ``+``.
* ``<strength>`` is the shortest decimal that reads back as the value
  (``1``, ``0.5``, ``1e-05``).
* As a last resort, names that still clash (e.g. content ``a_b`` with style
  ``c`` and content ``a`` with style ``b_c``) each get ``-1``, ``-2``, ... in
  the order of their full paths (for labels) or of the work (for whole names).

An output file that already exists is an error before any work, unless
overwriting is asked for; an output that would replace one of the inputs is
always one (``check_overwrites``).
"""

from __future__ import annotations

import collections
import dataclasses
import os
import pathlib
from collections.abc import Callable, Sequence

from arbitrary_style import command_line
from arbitrary_style.command_line import UsageError

OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")



def collect_contents(paths: Sequence[str]) -> tuple[list[pathlib.Path], list[tuple[str, str]], list[str]]:
    """The content images: files named, and images found in folders (recursively, sorted).

    Returns:
      (images, failures, notes): each file once, in the order found; the
      paths that are neither a file nor a folder, or folders without images,
      with the reason; one line per folder naming the files in it that are
      not images (skipped), for stderr.
    """
    # Deferred: importing arbitrary_style.data loads the training pipeline and
    # JAX (about 1.5 s on a 2-core CPU), and the checks before this need neither.
    from arbitrary_style.data.decode import IMAGE_EXTENSIONS, list_folder  # noqa: PLC0415

    files, failures, notes = [], [], []
    for raw in paths:
        path = pathlib.Path(raw)
        if path.is_dir():
            found, others = list_folder(path)
            if others:
                shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
                notes.append(
                    f"skipped {len(others)} file(s) in {raw} that are not images by their extension "
                    f"({' '.join(IMAGE_EXTENSIONS)}): {shown}"
                )
            if not found:
                failures.append((raw, "folder holds no images (" + " ".join(IMAGE_EXTENSIONS) + ")"))
            files.extend(pathlib.Path(p) for p in found)
        elif path.is_file():
            files.append(path)
        else:
            failures.append((raw, "no such file or folder"))
    unique = {}
    for file in files:
        unique.setdefault(file.resolve(), file)
    return list(unique.values()), failures, notes



def collect_styles(paths: Sequence[str]) -> tuple[list[pathlib.Path], list[str]]:
    """The style images of ``--style`` entries: files as given, folders expanded.

    A folder gives every image in it (recursively, sorted by path, as
    ``collect_contents``), in place of the folder: a blend's weights follow
    that order. Returns (images, notes), the notes naming skipped non-image
    files, one line per folder.

    Raises:
      UsageError: an entry that is neither a file nor a folder, or a folder
        without images.
    """
    # Deferred as in collect_contents.
    from arbitrary_style.data.decode import IMAGE_EXTENSIONS, list_folder  # noqa: PLC0415

    found_all: list[pathlib.Path] = []
    notes = []
    for raw in paths:
        path = pathlib.Path(raw)
        if path.is_dir():
            found, others = list_folder(path)
            if not found:
                raise UsageError(
                    f"--style folder {raw} holds no images, none has an image extension "
                    f"({' '.join(IMAGE_EXTENSIONS)}), give a folder of style images or an image file"
                )
            if others:
                notes.append(
                    f"skipped {len(others)} file(s) in --style folder {raw} that are not images "
                    f"by their extension: {', '.join(others[:5])}"
                    + (f" and {len(others) - 5} more" if len(others) > 5 else "")
                )
            found_all.extend(pathlib.Path(p) for p in found)
        elif path.is_file():
            found_all.append(path)
        else:
            raise UsageError(
                f"--style {raw} not found, no such file or folder, "
                "give an image file or a folder of style images"
            )
    return found_all, notes


def style_labels(names: Sequence[str | None]) -> list[str]:
    """File-name parts for an N-style model's styles: the recorded names, made safe and unique.

    ``names[i]`` is style ``i``'s recorded name, or None (``style<i>``).
    Path separators become ``-``; an empty name is ``style<i>``; names
    that clash ignoring case get ``-1``, ``-2``, ... in index order.
    """
    labels = []
    for i, name in enumerate(names):
        safe = "" if name is None else name.replace("/", "-").replace("\\", "-").strip()
        labels.append(safe if safe and safe not in (".", "..") else f"style{i}")
    return _number_clashes(labels, order=lambda i: i)



def _clashes(labels: Sequence[str]) -> list[list[int]]:
    """Groups of indices whose labels are equal ignoring case, in order of first index."""
    groups: dict[str, list[int]] = collections.defaultdict(list)
    for i, label in enumerate(labels):
        groups[label.casefold()].append(i)
    return [group for group in groups.values() if len(group) > 1]



def _number_clashes(labels: Sequence[str], order: Callable[[int], object]) -> list[str]:
    """Labels that still clash get -1, -2, ... (in ``order``), skipping labels already taken."""
    labels = list(labels)
    taken = {label.casefold() for label in labels}
    for group in _clashes(labels):
        number = 0
        for i in sorted(group, key=order):
            while True:
                number += 1
                candidate = f"{labels[i]}-{number}"
                if candidate.casefold() not in taken:
                    break
            taken.add(candidate.casefold())
            labels[i] = candidate
    return labels



def unique_labels(paths: Sequence[pathlib.Path | str]) -> list[str]:
    """A name for each file, different for different files (see the module docstring).

    The stem; for files whose stems clash (ignoring case), the file name; for
    those whose names still clash, the path from their common folder with
    ``-`` for ``/``; then numbers. A function of the set of paths: the labels
    do not depend on their order.
    """
    absolute = [pathlib.Path(os.path.abspath(p)) for p in paths]
    labels = [p.stem for p in absolute]
    for group in _clashes(labels):
        for i in group:
            labels[i] = absolute[i].name
    for group in _clashes(labels):
        common = os.path.commonpath([absolute[i].parent for i in group])
        for i in group:
            labels[i] = "-".join(absolute[i].relative_to(common).parts)
    return _number_clashes(labels, order=lambda i: str(absolute[i]))



def output_target(output: str, num_outputs: int) -> tuple[pathlib.Path, bool]:
    """(path, is_file); checks that the place is writable before any work."""
    path = pathlib.Path(output)
    as_file = path.suffix.lower() in OUTPUT_SUFFIXES and not path.is_dir()
    if as_file and num_outputs != 1:
        raise UsageError(
            f"-o {output} names one file, there are {num_outputs} outputs, give a folder"
        )
    folder = path.parent if as_file else path
    reason = command_line.unwritable_reason(folder)
    if reason is not None:
        raise UsageError(
            f"output folder {folder} is not writable, {reason}, give -o a folder you can write to"
        )
    return path, as_file



def format_strength(strength: float) -> str:
    """The shortest decimal that reads back as ``strength`` (``1``, ``0.5``): one name per value."""
    return str(int(strength)) if strength.is_integer() and abs(strength) < 1e16 else repr(strength)



@dataclasses.dataclass(frozen=True)
class Output:
    """One output file: which content, style and strength make it."""

    content: pathlib.Path
    style: int  # index into the style choices
    strength: float
    path: pathlib.Path



def plan_outputs(
    contents: Sequence[pathlib.Path],
    styles: Sequence[StyleChoice],
    strengths: Sequence[float],
    target: pathlib.Path,
    as_file: bool,
) -> list[Output]:
    """Every output, with its unique path (the module docstring's naming rule), content-major."""
    combinations = [
        (content, label, i, strength)
        for content, label in zip(contents, unique_labels(contents), strict=True)
        for i in range(len(styles))
        for strength in strengths
    ]
    if as_file:
        return [Output(c, i, strength, target) for c, _, i, strength in combinations]
    names = [
        f"{label}_{styles[i].name}_{format_strength(strength)}"
        for _, label, i, strength in combinations
    ]
    names = _number_clashes(names, order=lambda k: k)
    return [
        Output(c, i, strength, target / f"{name}.png")
        for (c, _, i, strength), name in zip(combinations, names, strict=True)
    ]



def plan_sheets(contents: Sequence[pathlib.Path], target: pathlib.Path, as_file: bool) -> list[pathlib.Path]:
    """The contact sheet of each content: ``target`` itself, or ``target/<content>_sheet.png``."""
    if as_file:
        return [target]
    return [target / f"{label}_sheet.png" for label in unique_labels(contents)]


def check_overwrites(
    outputs: Sequence[pathlib.Path], inputs: Sequence[pathlib.Path], overwrite: bool
) -> None:
    """Refuses output paths that would replace an input, a folder, or (without --overwrite) a file."""
    input_files = {pathlib.Path(p).resolve() for p in inputs}
    for path in outputs:
        if path.resolve() in input_files:
            raise UsageError(
                f"output {path} is one of the inputs, writing it would replace that input, "
                "give -o another folder"
            )
        if path.is_dir():
            raise UsageError(
                f"output {path} is a folder, a file cannot replace it, give -o another folder"
            )
    existing = [path for path in outputs if path.exists()]
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more output file(s)" if len(existing) > 1 else ""
        raise UsageError(
            f"output {existing[0]}{more} already exist, stylize would overwrite them, "
            "give --overwrite to replace them or -o another folder"
        )


@dataclasses.dataclass(frozen=True)
class StyleChoice:
    """One style to apply: what the Stylizer takes, and a name for files."""

    style: object
    name: str
