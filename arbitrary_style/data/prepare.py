r"""Prepares a TFDS source once, before training:

    python -m arbitrary_style.data.prepare painter_by_numbers --manual_dir=DIR [--data_dir=DIR]
    python -m arbitrary_style.data.prepare dtd [--data_dir=DIR]

The dataset is the one positional argument: ``painter_by_numbers``, ``dtd`` or
``imagenet2012`` (another name fails with the valid ones listed). Training
prepares a missing dataset on first use too; on several hosts sharing one data
dir, run this once first so they do not all write it at the same time.
``--data_dir`` is ``config.data.tfds_data_dir``, ``--manual_dir``
``config.data.manual_dir``. It ends with the examples per split.

A bad command line fails at once with one line on stderr and exit status 2,
and so does a dataset whose files must be downloaded by hand (Painter by
Numbers from Kaggle, ImageNet) when they are missing from the manual
directory: the line says where to get them and where to put them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from absl import flags

from arbitrary_style import command_line
from arbitrary_style.command_line import UsageError, UserError
from arbitrary_style.data import sources
from arbitrary_style.registry import lookup

# Datasets whose files TFDS cannot download: where to get them.
MANUAL_DOWNLOADS = {
    "painter_by_numbers": (
        "all_data_info.csv, train.zip and test.zip from "
        "https://www.kaggle.com/c/painter-by-numbers/data "
        "(`kaggle competitions download -c painter-by-numbers`)"
    ),
    "imagenet2012": (
        "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar from https://image-net.org "
        "(an account is needed)"
    ),
}


def tfds_names() -> list[str]:
    """The sources that are TFDS datasets, which this command prepares."""
    return sorted(n for n in sources.SOURCES if n in sources._TFDS_SPLITS)


def define_flags(flag_values: flags.FlagValues) -> None:
    """Defines the command's flags on ``flag_values``."""
    flags.DEFINE_string(
        "manual_dir", None,
        "Folder of hand-downloaded files (config.data.manual_dir; TFDS's default if unset).",
        flag_values=flag_values,
    )
    flags.DEFINE_string(
        "data_dir", None,
        "TFDS data dir (config.data.tfds_data_dir; TFDS's default if unset).",
        flag_values=flag_values,
    )


def dataset_name(words: Sequence[str]) -> str:
    """The one positional argument, checked against the TFDS sources."""
    names = tfds_names()
    if len(words) != 1:
        given = f"got {' '.join(words)}" if words else "none given"
        raise UsageError(f"give one dataset to prepare ({given}); one of: {', '.join(names)}")
    try:
        return lookup("dataset", words[0], {n: n for n in names})
    except ValueError as error:
        raise UsageError(str(error)) from None


def manual_dir(options: flags.FlagValues) -> str:
    """The manual directory TFDS will read: ``--manual_dir``, else ``<data dir>/downloads/manual``."""
    if options.manual_dir:
        return options.manual_dir
    data_dir = options.data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.expanduser(
        "~/tensorflow_datasets"
    )
    return os.path.join(data_dir, "downloads", "manual")


def check_manual_files(name: str, options: flags.FlagValues) -> None:
    """Raises UserError when ``name`` needs hand-downloaded files and their directory is
    missing or empty (checked here: TFDS asserts it, after setting up the builder)."""
    if name not in MANUAL_DOWNLOADS:
        return
    folder = manual_dir(options)
    if os.path.isdir(folder) and os.listdir(folder):
        return
    raise UserError(
        f"{name} needs files downloaded by hand, the manual directory {folder} does not "
        f"exist or is empty, download {MANUAL_DOWNLOADS[name]} into it (or give "
        "--manual_dir=DIR)"
    )


def prepare(options: flags.FlagValues, words: Sequence[str]) -> int:
    """Prepares the dataset named in ``words``; prints its splits; returns the exit status.

    Raises:
      UserError: a bad dataset name, or hand-downloaded files missing.
    """
    name = dataset_name(words)
    check_manual_files(name, options)
    source = sources.TFDSSource(name, "train", options.data_dir, options.manual_dir)
    try:
        builder = source.builder()  # prepares it if needed
    except (AssertionError, FileNotFoundError) as error:
        # Hand-downloaded files missing or incomplete: TFDS asserts that the
        # manual directory exists and is not empty, our Painter by Numbers
        # builder raises FileNotFoundError for a missing file; both messages
        # say where to get the files and where to put them.
        raise UserError(str(error)) from None
    for split, info in builder.info.splits.items():
        print(f"{name} {split}: {info.num_examples} examples in {builder.data_dir}")
    return 0


def run(argv: Sequence[str]) -> int:
    """The command in this process, on a fresh set of flags; returns the exit status."""
    return command_line.run_command(argv, define_flags, prepare)


if __name__ == "__main__":
    # TFDS's progress lines are INFO records: --verbose shows them.
    command_line.run_tool(define_flags, prepare)
