"""The command line of the experiment scripts: absl flags, in a process of their own or in another.

Each script under ``experiments/`` defines its flags in a
``define_flags(flag_values)`` function, does its work in a function of the
parsed flags and the positional arguments, and has two entry points:

* ``main(argv)``: the script in this process (the tests call it), ``argv``
  the arguments after the program name. The flags go into a fresh
  ``flags.FlagValues`` on each call (``parse_flags``): absl flags are global,
  and a second call would otherwise redefine them or see the first call's
  values. A bad command line raises ``arbitrary_style.command_line.UsageError``.
* ``python -m experiments.<folder>.<script>``: ``run_as_script``, which is
  ``app.run`` with the flags on ``flags.FLAGS`` (where absl's ``--help`` finds
  them). A bad command line stops before any work, with one line on stderr
  and exit status 2, as the package's tools do (``arbitrary_style.command_line``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from absl import app, flags, logging

from arbitrary_style import command_line
from arbitrary_style.command_line import DefineFlags, UsageError

# define_sides defines flags for the scripts: absl then attributes them to the
# script that calls it (listed under it by --help), not to this module.
flags.disclaim_key_flags()


def parse_flags(
    argv: Sequence[str],
    define_flags: DefineFlags,
    positional: Sequence[str] = (),
    flag_values: flags.FlagValues | None = None,
) -> tuple[flags.FlagValues, list[str]]:
    """Parses a script's command line into its flags.

    Args:
      argv: the command line, ``argv[0]`` being the program.
      define_flags: the script's function that defines its flags.
      positional: the names of the positional arguments the script takes.
      flag_values: where the flags go; a fresh ``flags.FlagValues`` if None.

    Returns:
      The flags and the positional arguments.

    Raises:
      UsageError: an unknown flag, a malformed value, or positional arguments
        other than ``positional``.
    """
    options = flags.FlagValues() if flag_values is None else flag_values
    words = command_line.parse(argv, options, define_flags)
    if len(words) != len(positional):
        expected = " ".join(positional) if positional else "no positional arguments"
        raise UsageError(f"expected {expected}, got {words}; --help lists the options")
    return options, words


def run_as_script(
    work: Callable[[flags.FlagValues, list[str]], object],
    define_flags: DefineFlags,
    positional: Sequence[str] = (),
) -> None:
    """``app.run`` of a script: its flags on ``flags.FLAGS``, then ``work(flags.FLAGS, positional)``.

    What ``work`` returns (the results ``main`` hands to its caller) is not
    the exit status: the script exits 0 once the work is done.
    """

    def parse_command_line(argv: list[str]) -> list[str]:
        try:
            return argv[:1] + parse_flags(argv, define_flags, positional, flags.FLAGS)[1]
        except UsageError as error:
            sys.exit(command_line.report_usage_error(error))

    def app_main(argv: list[str]) -> None:
        if not flags.FLAGS["verbosity"].present:
            # app.run logs at INFO (JAX probing for backends, above the
            # script's own output); warnings only, unless --verbosity.
            logging.set_verbosity(logging.WARNING)
        work(flags.FLAGS, argv[1:])

    app.run(app_main, flags_parser=parse_command_line)


def recorded_command(
    module: str, options: flags.FlagValues, define_flags: DefineFlags, words: Sequence[str] = ()
) -> str:
    """``python -m module`` with the flags given (``--name=value``, in the order defined) and ``words``.

    The command that repeats a run, stored with its results, the same
    whichever entry point parsed the flags.
    """
    defined = flags.FlagValues()
    define_flags(defined)
    given = [
        options[name].serialize()
        for name in defined
        if defined[name].name == name and options[name].present  # long names only
    ]
    return " ".join(["python -m", module, *given, *words])


class _SidesParser(flags.ListParser):
    def parse(self, argument: str | list) -> list[int]:
        try:
            sides = [int(side) for side in super().parse(argument) if str(side).strip()]
        except ValueError:
            raise ValueError(f"{argument!r} is not a list of integers such as 256,512") from None
        if any(side <= 0 for side in sides):
            raise ValueError(f"{argument!r}: image sides must be positive")
        return sides

    def flag_type(self) -> str:
        return "comma-separated list of image sides"


def define_sides(name: str, default: str | None, help: str, flag_values: flags.FlagValues) -> None:
    """A flag of image sides in pixels, comma-separated (``--sizes=256,512``), parsed to ``list[int]``."""
    flags.DEFINE(
        _SidesParser(), name, default, help, flag_values=flag_values, serializer=flags.CsvListSerializer(",")
    )
