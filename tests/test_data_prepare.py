"""``python -m arbitrary_style.data.prepare`` on the paths that need no network and no data."""

from __future__ import annotations

import subprocess
import sys

import pytest

from arbitrary_style.data import prepare

PROGRAM = [sys.executable, "-m", "arbitrary_style.data.prepare"]
KAGGLE_URL = "https://www.kaggle.com/c/painter-by-numbers/data"


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "give one dataset to prepare (none given); one of: dtd, imagenet2012, painter_by_numbers"),
        (["dtd", "painter_by_numbers"], "give one dataset to prepare (got dtd painter_by_numbers)"),
        (["wikiart"], "unknown dataset 'wikiart'; valid names: dtd, imagenet2012, painter_by_numbers"),
        (["image_folder"], "unknown dataset 'image_folder'"),  # a source, but not a TFDS one
        (["dtd", "--data_dri=/tmp"], "Unknown command line flag 'data_dri'. Did you mean: data_dir ?"),
        (["dtd", "--data_dir"], "Missing value for flag --data_dir"),
    ],
)
def test_bad_command_lines_fail_at_once_in_one_line(capsys, argv, message):
    assert prepare.run(["prepare", *argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and not captured.out, captured
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1


def test_missing_kaggle_csv_says_where_to_get_it(capsys, tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "train.zip").write_bytes(b"")  # not empty, but no all_data_info.csv
    argv = ["prepare", "painter_by_numbers", f"--manual_dir={manual}", f"--data_dir={tmp_path / 'data'}"]
    assert prepare.run(argv) == 2  # a user error: files to download by hand
    err = capsys.readouterr().err
    assert f"error: Painter by Numbers: expected all_data_info.csv in the manual directory {manual}" in err
    assert KAGGLE_URL in err and "test.zip" in err and err.count("\n") == 1


def test_command_line_empty_manual_dir_prints_instructions_without_traceback(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    result = subprocess.run(
        [*PROGRAM, "painter_by_numbers", f"--manual_dir={manual}", f"--data_dir={tmp_path / 'data'}"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        f"error: painter_by_numbers needs files downloaded by hand, the manual directory {manual} "
        "does not exist or is empty"
    )
    assert KAGGLE_URL in result.stderr and "all_data_info.csv" in result.stderr
    assert result.stderr.count("\n") == 1


def test_command_line_help_and_bad_name():
    shown = subprocess.run([*PROGRAM, "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert "Prepares a TFDS source once" in shown.stdout
    assert "--data_dir" in shown.stdout and "--manual_dir" in shown.stdout
    bad = subprocess.run([*PROGRAM, "wikiart"], capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2 and not bad.stdout
    assert bad.stderr == (
        "error: unknown dataset 'wikiart'; valid names: dtd, imagenet2012, painter_by_numbers\n"
    )
