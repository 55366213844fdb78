"""benchmarks/speedrun.py: each setting over seeds to one held-out target, and the record table."""

import json
import subprocess
import sys
from pathlib import Path

from helpers import TINY

ROOT = Path(__file__).resolve().parents[2]


def speedrun(out, *args):
    sets = [x for s in TINY for x in ("--set", s)]
    command = [sys.executable, str(ROOT / "benchmarks" / "speedrun.py"), "--out", str(out), *sets, *args]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def test_a_baseline_and_a_candidate_over_two_seeds_to_a_target(tmp_path):
    # A target any model reaches at its first check (step 2): one layer costs fewer FLOPs a step,
    # so it reaches it in fewer FLOPs at the same step.
    out = tmp_path / "speedrun"
    status, output = speedrun(
        out, "--target", "99", "--cap", "1e10", "--seeds", "2", "--check-every", "2",
        "--candidate", "model.n_layers=1", "--candidate", "model.no_such_setting=1",
    )  # fmt: skip
    assert status == 0, output
    assert "skipped model.no_such_setting=1: " in output
    assert "time to target: held-out loss 99" in output
    baseline = next(line for line in output.splitlines() if line.startswith("baseline  "))
    assert "never" not in baseline
    assert "model.n_layers=1: FLOPs to target -" in output and ": better" in output
    assert "baseline: " in output and " s to target (range " in output and "one run at a time" in output
    for seed in (0, 1):
        records = [json.loads(x) for x in (out / f"baseline-s{seed}" / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records if r.get("target_reached")] == [2]
    # Again: nothing runs, the table is printed again; another target needs another --out.
    status, again = speedrun(
        out, "--target", "99", "--cap", "1e10", "--seeds", "2", "--check-every", "2", "--candidate", "model.n_layers=1"
    )
    assert status == 0 and "done" not in again and "time to target" in again
    status, other = speedrun(out, "--target", "5", "--cap", "1e10")
    assert status == 1 and "give another --out" in other


def test_bad_arguments_are_one_line_before_any_run(tmp_path):
    for args in (["--target", "nan", "--cap", "1e9"], ["--target", "1", "--cap", "1e9", "--seeds", "0"]):
        status, output = speedrun(tmp_path / "s", *args)
        assert status == 2 and output.strip().startswith("error: --") and len(output.strip().splitlines()) == 1
