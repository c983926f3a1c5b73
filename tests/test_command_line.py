"""arbitrary_style.command_line: flag parsing, one-line usage errors, fresh flags per run."""

from __future__ import annotations

import pytest
from absl import flags

from arbitrary_style import command_line


def define_flags(flag_values: flags.FlagValues) -> None:
    flags.DEFINE_integer("count", 1, "A number.", flag_values=flag_values)
    flags.DEFINE_multi_string("name", None, "Repeatable.", flag_values=flag_values)


def record(seen: list):
    def command(options: flags.FlagValues, words: list[str]) -> int:
        seen.append((options.count, options.name, words))
        return 7

    return command


def test_run_command_parses_flags_anywhere_and_returns_the_commands_status():
    seen = []
    argv = ["tool", "a", "--count=3", "b", "--name", "x", "--name=y", "--", "--c"]
    assert command_line.run_command(argv, define_flags, record(seen)) == 7
    assert seen == [(3, ["x", "y"], ["a", "b", "--c"])]


def test_each_run_gets_fresh_flags_and_leaves_the_global_ones_alone():
    seen = []
    command_line.run_command(["tool", "--count=5", "--name=x"], define_flags, record(seen))
    # Defining the same flags again raises nothing, and nothing carries over.
    command_line.run_command(["tool"], define_flags, record(seen))
    assert seen == [(5, ["x"], []), (1, None, [])]
    assert "count" not in flags.FLAGS


@pytest.mark.parametrize(
    "argv, message",
    [
        (["tool", "--colour=red"], "error: Unknown command line flag 'colour'; --help lists the options\n"),
        (
            ["tool", "--count=many"],
            (
                "error: flag --count=many: invalid literal for int() with base 10: 'many'; "
                "--help lists the options\n"
            ),
        ),
    ],
)
def test_a_bad_flag_is_one_line_and_status_2(capsys, argv, message):
    seen = []
    assert command_line.run_command(argv, define_flags, record(seen)) == 2
    out, err = capsys.readouterr()
    assert (out, err, seen) == ("", message, [])


def test_flags_parser_exits_with_the_same_line(capsys, monkeypatch):
    monkeypatch.setattr(flags, "FLAGS", flags.FlagValues())
    parse = command_line.flags_parser(define_flags)
    with pytest.raises(SystemExit) as exit_:
        parse(["tool", "--count=x"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_flags_parser_puts_the_flags_on_the_global_ones(monkeypatch):
    monkeypatch.setattr(flags, "FLAGS", flags.FlagValues())
    parse = command_line.flags_parser(define_flags)
    assert parse(["tool", "a", "--count=4", "b"]) == ["tool", "a", "b"]
    assert flags.FLAGS.count == 4
