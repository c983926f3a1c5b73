"""Evaluation of observed vs unobserved styles (arbitrary_style.evaluation.evaluator / .eval).

One smoke run trains 2 steps with a periodic evaluation at step 2 (the
trainer's hook), then ``evaluator.run`` (what the command line calls)
evaluates the same workdir twice and the lite weights once; checks exact
pair counts, every file, byte-identical CSV/JSON across runs, and the errors
for bad input (the command line itself in a subprocess, for its flags).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from arbitrary_style import data
from arbitrary_style.evaluation import evaluator
from arbitrary_style.evaluation import pairs as eval_pairs
from arbitrary_style.training import trainer
from arbitrary_style.training.observe import NullWriter

from conftest import ROOT, fake_num_styles, fake_train_batches, load_config

SMOKE_PAIRS = 5  # configs/demo.py:smoke config.eval.num_pairs (batch 2: one padded batch)
FILES = ("observed.csv", "unobserved.csv", "summary.json", "losses.png", "samples.png")


def smoke_config(num_steps=2, eval_every=2, **eval_fields):
    config = load_config(
        "demo", "smoke", num_steps=num_steps, eval_every=eval_every, checkpoint_every=num_steps
    )
    if eval_fields:
        config.unlock()
        for key, value in eval_fields.items():
            setattr(config.eval, key, value)
        config.lock()
    return config


class RecordingWriter(NullWriter):
    """The trainer's writer, keeping the scalars."""

    def __init__(self):
        self.scalars_written = {}

    def scalars(self, step, values):
        self.scalars_written.setdefault(step, {}).update(values)


def make_workdir(workdir, *, train_steps: int = 2):
    """A demo:smoke workdir trained ``train_steps`` steps on the fake data
    (conftest), with the trainer's periodic evaluation at the last step.

    Returns:
      {file name: bytes} of the periodic evaluation's files, and the scalars
      the trainer logged.
    """
    config = smoke_config(num_steps=train_steps, eval_every=train_steps)
    writer = RecordingWriter()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(data, "train_batches", fake_train_batches)
        mp.setattr(data, "num_styles", fake_num_styles)
        mp.setattr(trainer.observe, "make_writer", lambda *a, **k: writer)
        trainer.train_and_evaluate(
            config, workdir, eval_fn=evaluator.make_eval_fn(config, workdir)
        )
    out = workdir / "eval" / str(train_steps)
    return {name: (out / name).read_bytes() for name in FILES}, writer.scalars_written


@pytest.fixture(scope="module")
def smoke_workdir(tmp_path_factory):
    # Compiling the smoke train step takes ~30 s of a 2-core CPU: one run per module.
    workdir = tmp_path_factory.mktemp("smoke")
    periodic, scalars = make_workdir(workdir, train_steps=2)
    return workdir, periodic, scalars


def run_eval(**kwargs):
    """What ``python -m arbitrary_style.eval`` does, in this process (no flags)."""
    summary, out_dir = evaluator.run(progress=False, **kwargs)
    return out_dir


def check_outputs(out, *, pairs, sets=("observed", "unobserved")):
    for name in FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_pairs"] == pairs
    columns = {}
    for which in sets:
        rows = list(csv.DictReader((out / f"{which}.csv").open()))
        assert len(rows) == pairs
        # Distinct pairs, in the fixed order.
        assert len({(r["content_id"], r["style_id"]) for r in rows}) == pairs
        terms = summary["sets"][which]
        assert set(terms) == set(rows[0]) - {"pair", "content_id", "style_id"}
        # The summary describes the rows written: NumPy's statistics of each
        # CSV column (every pair once, the padding dropped).
        for key in ("content/conv3", "style/conv1", "style/conv4", "total_variation", "total",
                    "weighted/style/conv2", "weighted/content"):
            assert terms[key]["count"] == pairs
            values = np.array([float(r[key]) for r in rows])
            columns.setdefault(which, {})[key] = values
            expected = {"mean": values.mean(), "median": np.median(values),
                        "q10": np.quantile(values, 0.1), "q90": np.quantile(values, 0.9)}
            for stat, value in expected.items():
                np.testing.assert_allclose(terms[key][stat], value, rtol=1e-6, err_msg=f"{key} {stat}")
    # Each term's value and weight against the training loss: test_eval_losses.py.
    if set(sets) == {"observed", "unobserved"}:
        for key, ratio in summary["unobserved_over_observed"].items():
            if key in columns["observed"]:
                np.testing.assert_allclose(
                    ratio, columns["unobserved"][key].mean() / columns["observed"][key].mean(),
                    rtol=1e-6, err_msg=key,
                )
    return summary


def assert_same_rows(a: bytes, b: bytes):
    rows_a = list(csv.DictReader(a.decode().splitlines()))
    rows_b = list(csv.DictReader(b.decode().splitlines()))
    assert len(rows_a) == len(rows_b)
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert ra.keys() == rb.keys()
        for key in ("pair", "content_id", "style_id"):
            assert ra[key] == rb[key]
        for key in set(ra) - {"pair", "content_id", "style_id"}:
            np.testing.assert_allclose(
                float(ra[key]), float(rb[key]), rtol=1e-4, atol=1e-10, err_msg=key
            )


def test_pair_list_is_exact_distinct_and_balanced():
    pairs = eval_pairs.pair_indices(48, 8, 6)
    assert len({tuple(p) for p in pairs}) == 48  # all 8 x 6 pairs
    pairs = eval_pairs.pair_indices(24, 4, 6)  # gcd 2: the shift reaches the other class
    assert len({tuple(p) for p in pairs}) == 24
    pairs = eval_pairs.pair_indices(18, 4, 6)
    assert np.bincount(pairs[:, 1]).tolist() == [3] * 6
    np.testing.assert_array_equal(eval_pairs.pair_indices(18, 4, 6), pairs)  # fixed
    with pytest.raises(ValueError, match="num_pairs=25 exceeds the 24 distinct"):
        eval_pairs.pair_indices(25, 4, 6)
    batches = eval_pairs.padded_batches(5, 2)
    assert [m.tolist() for _, m in batches] == [[True, True], [True, True], [True, False]]
    assert sum(int(m.sum()) for _, m in batches) == 5


def check_workdir_eval(workdir, periodic, scalars, step, tmp_path):
    out = workdir / "eval" / str(step)
    check_outputs(out, pairs=SMOKE_PAIRS)
    # The trainer's hook logs the means and ratios; its writer adds 'eval/'.
    assert scalars[step]["eval/observed/total"] == pytest.approx(
        json.loads(periodic["summary.json"])["sets"]["observed"]["total"]["mean"]
    )
    assert "eval/unobserved_over_observed/style/conv2" in scalars[step]

    assert run_eval(workdir=str(workdir), step=step) == out
    first = {n: (out / n).read_bytes() for n in ("observed.csv", "unobserved.csv", "summary.json")}
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    run_eval(workdir=str(workdir), output=str(tmp_path))  # latest step
    second = {n: (tmp_path / "eval" / str(step) / n).read_bytes() for n in first}
    assert first == second  # the same command twice: identical files
    # The restored checkpoint gives the numbers the trainer's in-memory state
    # gave (up to float rounding: the two models' graphs flatten their
    # variables differently, so XLA may order reductions differently).
    for name in ("observed.csv", "unobserved.csv"):
        assert_same_rows(first[name], periodic[name])
    check_outputs(tmp_path / "eval" / str(step), pairs=SMOKE_PAIRS)


def test_periodic_and_command_line_eval_of_a_smoke_trained_workdir(smoke_workdir, tmp_path):
    workdir, periodic, scalars = smoke_workdir
    check_workdir_eval(workdir, periodic, scalars, 2, tmp_path)


def test_lite_weights(tmp_path):
    out = run_eval(pretrained="magenta-lite", config=smoke_config(), output=str(tmp_path))
    assert out == tmp_path / "eval" / "0"
    summary = check_outputs(out, pairs=SMOKE_PAIRS)
    assert summary["step"] == 0
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def eval_command(*args):
    return subprocess.run(
        [sys.executable, "-m", "arbitrary_style.eval", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )


def test_command_line_flags_and_usage_errors(tmp_path):
    # Bad input fails before any model is built, with a message and no traceback.
    proc = eval_command(f"--workdir={tmp_path / 'nope'}")
    assert proc.returncode != 0
    assert f"workdir {tmp_path / 'nope'} does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = eval_command("--config=configs/demo.py:smoke", "--pretrained=magenta-lite",
                        f"--workdir={tmp_path}")
    assert proc.returncode != 0 and "give exactly one of" in proc.stderr


def test_missing_and_empty_workdir(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluator.model_to_evaluate(workdir=str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="is empty"):
        evaluator.model_to_evaluate(workdir=str(tmp_path))
    with pytest.raises(ValueError, match="exactly one of"):
        evaluator.model_to_evaluate(workdir=str(tmp_path), pretrained="magenta-lite")
    with pytest.raises(ValueError, match="--config is required"):
        evaluator.model_to_evaluate(pretrained="magenta-lite")


def test_step_without_checkpoint(smoke_workdir):
    workdir, _, _ = smoke_workdir
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at step 7 .*steps there: \[2\]"):
        evaluator.model_to_evaluate(workdir=str(workdir), step=7)


def test_style_set_with_fewer_images_than_asked():
    # The demo holds 6 held-out styles.
    config = smoke_config(num_styles=7)
    with pytest.raises(ValueError, match=r"unobserved style set .* has 6 readable images; "
                                         r"config.eval.num_styles asks for 7"):
        eval_pairs.EvalData(config, ("observed", "unobserved"))
    config = smoke_config(num_contents=9)  # the demo has 8 photos
    with pytest.raises(ValueError, match="asks for 9 content images .* only 8"):
        eval_pairs.EvalData(config, ("observed",))
