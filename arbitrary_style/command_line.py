"""User errors, flag parsing and logging for every command-line tool.

One place decides how a tool ends on bad input. ``python -m
arbitrary_style.train``, ``.eval``, ``.summary``, ``.demo``, ``.stylize``,
``.data.prepare`` and ``.weights`` report a user error (a bad flag, a bad
config, a missing file, a value the code cannot use) as one line on stderr,

    error: <what>, <why>, <what to do>

and exit status ``USAGE_ERROR_STATUS``, with no traceback: the line says
what is wrong and how to fix it. ``--verbose`` (or
``ARBITRARY_STYLE_TRACEBACK=1``) prints the traceback above it. Anything
else is a bug and keeps its traceback.

Library code raises ``UserError`` (or another type ``is_user_error`` accepts) with
that message; the tools turn it into the line (``run_main`` for tools on
absl's global flags, ``run_command`` / ``flags_parser`` for the tools that
take positional arguments). absl's own ways to fail are routed here too:
``app.UsageError`` prints the tool's whole docstring and flag list above the
message; a bad flag exits 1 with "FATAL Flags parsing error", which a script
cannot tell from a failed run; ml_collections' ``config_flags`` raises a
chained traceback for a misspelt ``--config.key`` and defers a missing config
file to the first use of the config.

Logs: library INFO records (orbax's checkpoint bookkeeping, TFDS) are off
unless ``--verbose`` (or absl's ``--verbosity``) asks for them, and so are
the native TensorFlow / XLA logs (``quiet_native_logs``).
"""

from __future__ import annotations

import logging as std_logging
import os
import pathlib
import re
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence

from absl import app, flags, logging
from tqdm import tqdm

# 2, as argparse uses for a bad command line; each tool keeps 1 for a failure
# of the work itself (inputs that failed, a download), so a script can tell
# the two apart.
USAGE_ERROR_STATUS = 2
# Set to 1 to see the traceback behind an ``error: ...`` line.
TRACEBACK_ENV = "ARBITRARY_STYLE_TRACEBACK"
VERBOSE_FLAG = "verbose"

DefineFlags = Callable[[flags.FlagValues], None]


class UserError(Exception):
    """Bad input from the user; the message reads ``<what>, <why>, <what to do>``.

    Raised by library code that finds the problem; the command-line tools
    print it as one ``error: ...`` line, without a traceback.
    """


class UsageError(UserError, ValueError):
    """A bad command line: reported before any work starts."""


def _user_error_types() -> tuple[type[BaseException], ...]:
    # Missing files the user names (a weights file, an image folder, a
    # workdir) surface as FileNotFoundError from the libraries that open
    # them; the weights package's errors (missing, damaged or mismatched
    # files) name the file and the command that fixes it.
    return (UserError, FileNotFoundError, _weights_error_type(), _checkpoint_error_type())


def _weights_error_type() -> type[BaseException]:
    # Deferred: the weights package imports JAX and Flax, which must not load
    # before ``quiet_native_logs`` has run (at this module's import).
    from arbitrary_style.weights.core import WeightsError  # noqa: PLC0415

    return WeightsError


def _checkpoint_error_type() -> type[BaseException]:
    # Deferred for the same reason (orbax and JAX). A damaged or unsavable
    # checkpoint is the user's disk or files, reported with what to do.
    from arbitrary_style.training.checkpoints import CheckpointError  # noqa: PLC0415

    return CheckpointError


def verbose_requested(argv: Sequence[str] | None = None) -> bool:
    """Whether ``--verbose`` is on ``argv`` (default ``sys.argv``) or TRACEBACK_ENV is set.

    Read from the raw command line because the answer is needed before the
    flags parse (native log levels, a flag that does not parse).
    """
    argv = sys.argv if argv is None else argv
    if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
        return True
    words = list(argv[1:])
    if "--" in words:
        words = words[: words.index("--")]
    return any(word in ("--verbose", "--verbose=true", "--verbose=1") for word in words)


def quiet_native_logs(argv: Sequence[str] | None = None) -> None:
    """Silences TensorFlow's and XLA's C++ logs unless ``--verbose`` is given.

    Must run before JAX or TensorFlow is imported: both read
    ``TF_CPP_MIN_LOG_LEVEL`` once, when their native library loads (measured
    with jaxlib 0.10: set after ``import jax``, it has no effect). Level 3
    keeps only fatal records. Level 2 would not do: XLA logs its slow
    constant-folding alarm ("Constant folding an instruction is taking >
    1s", xla/service/slow_operation_alarm.cc) as an ERROR record, although it
    is advice for XLA developers and not an error of the run, and no XLA flag
    turns the alarm off. A real XLA failure still reaches Python as an
    exception. A value the user set is kept.
    """
    if not verbose_requested(argv):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


# At import: every tool imports this module before anything that imports JAX
# or TensorFlow (see quiet_native_logs for why it cannot wait for the flags).
quiet_native_logs()


def one_line(message: str) -> str:
    """``message`` with its line breaks and runs of spaces folded into single spaces."""
    return re.sub(r"\s+", " ", message).strip()


def error_message(error: BaseException) -> str:
    """The text of ``error`` as the user should read it, on one line."""
    if isinstance(error, FileNotFoundError) and error.filename and error.strerror:
        # OSError's own str() is "[Errno 2] No such file or directory: 'x'".
        return one_line(f"{error.filename}: {error.strerror.lower()}, check the path")
    if isinstance(error, KeyError) and error.args:
        return one_line(str(error.args[0]))
    return one_line(str(error))


def report_user_error(error: BaseException, *, verbose: bool | None = None) -> int:
    """Prints ``error: <message>`` on one line on stderr (the traceback above it
    when verbose); returns ``USAGE_ERROR_STATUS``."""
    if verbose_requested() if verbose is None else verbose:
        traceback.print_exception(error, file=sys.stderr)
    print(f"error: {error_message(error)}", file=sys.stderr, flush=True)
    return USAGE_ERROR_STATUS


# The name the tools with positional arguments have used.
report_usage_error = report_user_error


def is_user_error(error: BaseException) -> bool:
    """Whether ``error`` is bad input (reported in one line) rather than a bug."""
    return isinstance(error, _user_error_types())


def define_verbose(flag_values: flags.FlagValues) -> None:
    """Defines ``--verbose`` on ``flag_values`` unless it is there already."""
    if VERBOSE_FLAG not in flag_values:
        flags.DEFINE_boolean(
            VERBOSE_FLAG, False,
            f"Library INFO logs, native TF/XLA logs and the traceback behind an error "
            f"(also {TRACEBACK_ENV}=1).",
            flag_values=flag_values,
        )


# What a user waits for (compiling a network for a new image size: seconds on
# a CPU) is logged here by the libraries and shown by every tool, one plain
# line on stderr each, whatever the log level.
PROGRESS_LOGGER = "arbitrary_style.progress"


class _AboveProgressBars(std_logging.Handler):
    """Writes records on stderr above any tqdm progress bar (``tqdm.write``
    clears the bar, prints the line and redraws it), not into its line."""

    def emit(self, record: std_logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001  (logging's contract: report, never raise)
            self.handleError(record)


def show_progress() -> None:
    """Prints the records of ``PROGRESS_LOGGER`` on stderr as plain lines (once per process)."""
    logger = std_logging.getLogger(PROGRESS_LOGGER)
    if any(getattr(handler, "_arbitrary_style_progress", False) for handler in logger.handlers):
        return
    handler = _AboveProgressBars()
    handler.setFormatter(std_logging.Formatter("%(message)s"))
    handler._arbitrary_style_progress = True
    logger.addHandler(handler)
    logger.setLevel(std_logging.INFO)
    logger.propagate = False  # not again through absl's handler


def configure_logging(flag_values: flags.FlagValues) -> None:
    """Library INFO logs off (absl WARNING) unless ``--verbose`` or ``--verbosity`` is given.

    The tools' own output goes to stdout; INFO records of the libraries
    (orbax's checkpoint bookkeeping was 106 of the 156 lines of ``make
    demo``) would bury it. Warnings (a skipped image, a damaged checkpoint)
    still show.
    """
    show_progress()
    verbose = VERBOSE_FLAG in flag_values and flag_values[VERBOSE_FLAG].value
    verbosity_given = "verbosity" in flag_values and flag_values["verbosity"].present
    if verbose and not verbosity_given:
        logging.set_verbosity(logging.INFO)
        # Orbax's records are filtered at the library boundary; --verbose wants them.
        from arbitrary_style.training import checkpoints  # noqa: PLC0415  (orbax, JAX: see above)

        checkpoints.set_orbax_log_level(std_logging.INFO)  # Python's level, not absl's
    elif not verbosity_given:
        logging.set_verbosity(logging.WARNING)


# --- tools with positional arguments (flags in a define_flags function) -----


def parse(
    argv: Sequence[str], flag_values: flags.FlagValues, define_flags: DefineFlags
) -> list[str]:
    """Defines a tool's flags (and ``--verbose``) on ``flag_values`` and parses ``argv``.

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
    define_verbose(flag_values)
    try:
        return flag_values(list(argv))[1:]
    except flags.Error as error:
        raise UsageError(f"{error}; --help lists the options") from None


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
      that does not parse or a user error ``command`` raised (reported on
      stderr in one line).
    """
    options = flags.FlagValues()
    try:
        words = parse(argv, options, define_flags)
    except UsageError as error:
        return report_user_error(error, verbose=verbose_requested(argv))
    verbose = bool(options[VERBOSE_FLAG].value) or verbose_requested(argv)
    try:
        return command(options, words)
    except Exception as error:
        if not is_user_error(error):
            raise
        return report_user_error(error, verbose=verbose)


def flags_parser(define_flags: DefineFlags) -> Callable[[list[str]], list[str]]:
    """``app.run``'s ``flags_parser`` for a tool whose flags ``define_flags`` defines.

    The flags go on ``flags.FLAGS``, where absl's ``--help`` finds them; a bad
    one exits with one line and ``USAGE_ERROR_STATUS``. The parser returns the
    program and the positional arguments, the ``argv`` that ``main`` gets, and
    sets the log level (``configure_logging``).
    """

    def parse_command_line(argv: list[str]) -> list[str]:
        try:
            words = argv[:1] + parse(argv, flags.FLAGS, define_flags)
        except UsageError as error:
            sys.exit(report_user_error(error))
        configure_logging(flags.FLAGS)
        return words

    return parse_command_line


def run_tool(
    define_flags: DefineFlags, command: Callable[[flags.FlagValues, list[str]], int]
) -> None:
    """``app.run`` for a tool with positional arguments; user errors end in one line."""

    def main(argv: list[str]) -> int:
        return guarded(command)(flags.FLAGS, argv[1:])

    app.run(main, flags_parser=flags_parser(define_flags))


def guarded(function: Callable) -> Callable:
    """``function`` with its user errors (and absl's ``app.UsageError``) reported in
    one line and ``USAGE_ERROR_STATUS`` as the exit status (``sys.exit``)."""

    def call(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except app.UsageError as error:
            # absl would print the whole docstring and flag list above it.
            sys.exit(report_user_error(error))
        except Exception as error:
            if not is_user_error(error):
                raise
            sys.exit(report_user_error(error))

    return call


# --- tools on absl's global flags with an ml_collections --config -----------


def _config_argument(argv: Sequence[str], name: str) -> str | None:
    """The value given to ``--name`` on ``argv`` (the last one), or None."""
    value = None
    for k, word in enumerate(argv):
        if word == "--":
            break
        if word.startswith(f"--{name}="):
            value = word.split("=", 1)[1]
        elif word == f"--{name}" and k + 1 < len(argv):
            value = argv[k + 1]
    return value


def check_config_file_argument(argv: Sequence[str], name: str = "config") -> None:
    """Raises UsageError when ``--name=FILE[:VARIANT]`` names a file that is not there.

    ml_collections defers this failure to the first use of the config (and
    then raises it as a chained OSError); checked here, it is one line.
    """
    value = _config_argument(argv, name)
    if not value:
        return
    path = value.split(":", 1)[0]
    if not os.path.isfile(path):
        why = "is a directory" if os.path.isdir(path) else "does not exist"
        raise UsageError(
            f"--{name}={value}: the config file {path} {why}, "
            f"give a Python config file such as --{name}=configs/demo.py"
        )


def _override_message(argv: Sequence[str], error: BaseException) -> str:
    """One line for a ``--config.a.b=v`` override that names no config field."""
    text = one_line(str(error.args[0]) if error.args else str(error)).replace("\\'", "'")
    field = re.search(r"'(\w+)'", text)
    suggestion = re.search(r'Did you mean "(\w+)"', text)
    overrides = [w for w in argv[1:] if w.startswith("--") and "." in w.split("=", 1)[0]]
    culprit = next(
        (w for w in overrides if field and field.group(1) in w.split("=", 1)[0].split(".")),
        None,
    )
    where = culprit or "a --config.* override"
    missing = f"'{field.group(1)}'" if field else text
    fix = (
        f"did you mean '{suggestion.group(1)}'?" if suggestion
        else "fix the field's name (the config file lists its fields)"
    )
    return f"{where} names no config field, the config has no {missing}, {fix}"


def parse_global_flags(
    argv: list[str], config_flag_names: Sequence[str] = ("config",)
) -> list[str]:
    """Parses ``argv`` into ``flags.FLAGS`` (``app.run``'s parser for the config tools).

    Raises:
      UsageError: an unknown or malformed flag, a config file that is not
        there, an unknown variant, an override of a field the config lacks.
    """
    define_verbose(flags.FLAGS)
    for name in config_flag_names:
        check_config_file_argument(argv, name)
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        text = str(error)
        if "Error whilst parsing config file" in text:
            # ml_collections puts the config's traceback into the message;
            # its last line is the exception the config file raised.
            lines = [line for line in text.splitlines() if line.strip()]
            reason = re.sub(r"^\w+(Error|Exception): ", "", lines[-1].strip())
            flag = text.split(":", 1)[0].removeprefix("flag ")
            raise UsageError(f"{flag}: {reason}") from None
        required = re.search(r"Flag --(\w+) must have a value other than None", text)
        if required:
            name = required.group(1)
            raise UsageError(f"--{name} is required, it has no default, give --{name}=...") from None
        raise UsageError(f"{one_line(text)}; --help lists the options") from None
    except (AttributeError, KeyError) as error:
        # A --config.a.b=v whose path the config does not have.
        raise UsageError(_override_message(argv, error)) from None
    except (TypeError, ValueError, OSError) as error:
        raise UsageError(f"{one_line(str(error))}, check the --config.* overrides") from None


def run_main(main: Callable[[list[str]], object], config_flag_names: Sequence[str] = ("config",)):
    """``app.run(main)`` with user errors in one line and logging as the flags say.

    For the tools whose flags are on ``flags.FLAGS`` (train, eval, summary,
    demo). ``main`` raises ``UserError`` (or another type ``is_user_error``
    accepts) for bad input.
    """

    def parse_command_line(argv: list[str]) -> list[str]:
        try:
            words = parse_global_flags(argv, config_flag_names)
        except UsageError as error:
            sys.exit(report_user_error(error))
        configure_logging(flags.FLAGS)
        return words

    app.run(guarded(main), flags_parser=parse_command_line)


def config_value(holder, name: str = "--config"):
    """The config a ``config_flags`` holder parsed; UsageError when it could not load."""
    value = holder.value
    if type(value).__name__ == "_ErrorConfig":  # ml_collections' stand-in for a failed load
        try:
            value.missing  # noqa: B018 (any attribute raises the load error)
        except Exception as error:  # noqa: BLE001 (the load error, whatever it was)
            raise UsageError(f"{name}: {one_line(str(error))}") from None
    return value


def unwritable_reason(folder: pathlib.Path) -> str | None:
    """Why ``folder`` cannot be made and written to, or None when it can.

    Creates the folder (and its parents) and a temporary file in it: the only
    check that holds for permissions, read-only mounts and full disks alike.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        return str(error.strerror or error)
    return None
