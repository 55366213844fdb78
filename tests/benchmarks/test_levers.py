"""benchmarks/levers.py: the baseline and each lever over seeds at one FLOPs budget, resumable."""

import json
import subprocess
import sys
import time
from pathlib import Path

from helpers import TINY

ROOT = Path(__file__).resolve().parents[2]


def levers(out, *args):
    sets = [x for s in TINY for x in ("--set", s)]
    command = [sys.executable, str(ROOT / "benchmarks" / "levers.py"), "--out", str(out), *sets, *args]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def test_one_lever_over_two_seeds_at_one_budget_then_resumed(tmp_path):
    out = tmp_path / "levers"
    lever = ["--lever", "model.n_layers=1", "--lever", "model.no_such_setting=1", "--seeds", "2"]
    status, output = levers(out, "--flops", "1e9", *lever)
    assert status == 0, output
    assert "skipped model.no_such_setting=1: " in output
    runs = ["baseline-s0", "baseline-s1", "model.n_layers=1-s0", "model.n_layers=1-s1"]
    assert sorted(json.loads((out / "levers.json").read_text())["finished"]) == sorted(runs)
    for name in runs:
        records = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
        assert 0 < records[-1]["flops"] <= 1e9 and "heldout_loss" in records[-1]
        assert json.loads((out / name / "config.json").read_text())["run"]["flops"] == 1e9
    # One layer costs less: more steps within the same budget.
    steps = {name: json.loads((out / name / "metrics.jsonl").read_text().splitlines()[-1])["step"] for name in runs}
    assert steps["model.n_layers=1-s0"] > steps["baseline-s0"]
    assert "model.n_layers=1: held-out loss" in output and "baseline" in output
    assert (out / "compare.png").exists() or "no PNG" in output

    # Again: every run is finished already, and the comparison is printed again.
    status, again = levers(out, "--flops", "1e9", *lever)
    assert status == 0, again
    assert again.count("finished already") == 4 and "model.n_layers=1: held-out loss" in again


def test_the_budget_can_be_what_the_baseline_reaches_in_some_seconds(tmp_path):
    out = tmp_path / "levers"
    status, output = levers(out, "--baseline-seconds", "2", "--seeds", "1", "--lever", "model.n_layers=1")
    assert status == 0, output
    manifest = json.loads((out / "levers.json").read_text())
    baseline = [json.loads(line) for line in (out / "baseline-s0" / "metrics.jsonl").read_text().splitlines()]
    assert manifest["budget"] == baseline[-1]["flops"] > 0 and "baseline-s0 in 2 s" in manifest["budget_from"]
    lever = [json.loads(line) for line in (out / "model.n_layers=1-s0" / "metrics.jsonl").read_text().splitlines()]
    assert lever[-1]["flops"] <= manifest["budget"]


def test_a_baseline_whose_evaluation_the_clock_cut_is_evaluated_again(tmp_path, monkeypatch, capsys):
    # A loaded machine outruns the evaluation's estimate: here the 1 s run's evaluation is cut.
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import levers as lab

    from arcsolver.train import heldout

    real = heldout.evaluate_heldout

    def clocked(run, puzzles, tasks, max_versions, on_progress, deadline=None):
        soon = deadline is not None and deadline - time.monotonic() < 3600
        return real(run, puzzles, tasks, max_versions, on_progress, 0.0 if soon else deadline)

    monkeypatch.setattr(heldout, "evaluate_heldout", clocked)
    out = tmp_path / "levers"
    sets = [x for s in TINY for x in ("--set", s)]
    status = lab.main(["--out", str(out), *sets, "--baseline-seconds", "1", "--seeds", "1", "--no-levers"])
    output = capsys.readouterr().out
    assert "baseline-s0: its final evaluation was cut by the time limit; evaluating it again" in output
    records = [json.loads(line) for line in (out / "baseline-s0" / "metrics.jsonl").read_text().splitlines()]
    cut, again = [r for r in records if "heldout_tasks" in r][-2:]
    assert cut["heldout_cut"] == 3 and "heldout_cut" not in again and again["heldout_tasks"] == 3
    assert cut["step"] == again["step"] and again["flops"] == json.loads((out / "levers.json").read_text())["budget"]
    assert status == 1 and "fewer than two finished runs" in output  # the baseline alone: nothing to compare
