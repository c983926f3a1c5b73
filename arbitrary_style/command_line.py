"""Flag parsing and usage errors for the tools that take positional arguments.

``python -m arbitrary_style.stylize``, ``.data.prepare`` and ``.weights``
check their positional arguments and flag values before any work starts, and
report a bad command line the same way, whatever found it (absl's parser or
the tool's own checks): one line ``error: ...`` on stderr and exit status
``USAGE_ERROR_STATUS``. One line, because the line says what is wrong and
how to fix it; absl's ``app.UsageError`` would print the tool's docstring and
its flags above that line, and absl's own flags parser exits 1 with a
"FATAL Flags parsing error", which a script cannot tell from a failed run.

Each tool defines its flags in a ``define_flags(flag_values)`` function and
hands it to this module twice: to ``run_command`` for its ``run(argv)``,
which tests and other Python code call, and to ``flags_parser`` for
``app.run``, which puts the flags on ``flags.FLAGS`` where absl's ``--help``
finds them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from absl import flags

# 2, as argparse uses for a bad command line; each tool keeps 1 for a failure
# of the work itself (inputs that failed, a download, a dataset it cannot
# prepare), so a script can tell the two apart.
USAGE_ERROR_STATUS = 2

DefineFlags = Callable[[flags.FlagValues], None]


class UsageError(ValueError):
    """A bad command line: reported before any work starts."""


def parse(
    argv: Sequence[str], flag_values: flags.FlagValues, define_flags: DefineFlags
) -> list[str]:
    """Defines a tool's flags on ``flag_values`` and parses ``argv`` into them.

    Args:
      argv: the command line, ``argv[0]`` being the program.
      flag_values: where the flags go.
      define_flags: the tool's function that defines its flags.

    Returns:
      The positional arguments (without the program).

    Raises:
      UsageError: an unknown flag or a malformed value.
    """
    define_flags(flag_values)
    try:
        return flag_values(list(argv))[1:]
    except flags.Error as error:
        raise UsageError(f"{error}; --help lists the options") from None


def report_usage_error(error: Exception) -> int:
    """Prints one line on stderr, no usage dump; returns ``USAGE_ERROR_STATUS``."""
    print(f"error: {error}", file=sys.stderr)
    return USAGE_ERROR_STATUS


def run_command(
    argv: Sequence[str],
    define_flags: DefineFlags,
    command: Callable[[flags.FlagValues, list[str]], int],
) -> int:
    """Parses ``argv`` into a fresh ``flags.FlagValues`` and calls ``command``.

    absl flags are global: defining a flag twice on ``flags.FLAGS`` is an
    error, and a value parsed there stays for the next call. Tests call a
    tool's ``run`` many times in one process, so each call gets flags of its
    own, independent of the others and of ``flags.FLAGS``.

    Args:
      argv: the command line, ``argv[0]`` being the program.
      define_flags: the tool's function that defines its flags.
      command: the tool's work, given the parsed flags and the positional
        arguments; returns the exit status.

    Returns:
      The exit status: ``command``'s, or ``USAGE_ERROR_STATUS`` for a flag
      that does not parse (reported on stderr, ``command`` not called).
    """
    options = flags.FlagValues()
    try:
        words = parse(argv, options, define_flags)
    except UsageError as error:
        return report_usage_error(error)
    return command(options, words)


def flags_parser(define_flags: DefineFlags) -> Callable[[list[str]], list[str]]:
    """``app.run``'s ``flags_parser`` for a tool whose flags ``define_flags`` defines.

    The flags go on ``flags.FLAGS``, where absl's ``--help`` finds them; a bad
    one exits with one line and ``USAGE_ERROR_STATUS``. The parser returns the
    program and the positional arguments, the ``argv`` that ``main`` gets.
    """

    def parse_command_line(argv: list[str]) -> list[str]:
        try:
            return argv[:1] + parse(argv, flags.FLAGS, define_flags)
        except UsageError as error:
            sys.exit(report_usage_error(error))

    return parse_command_line
