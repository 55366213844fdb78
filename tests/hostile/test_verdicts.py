"""Verdicts and summaries that would say more than their data: one run counted as two seeds, a
verdict on one seed or on NaN, a checkpoint voting twice, a solve's last line that disagrees with
its sources record. Each mechanism, and where it lives:

- runs and checkpoints are identified by their resolved directory (inputs.distinct), so each
  counts once: in `compare` (report/compare.py) and `evaluate-run --checkpoints`
  (train/evaluate_run.py);
- a verdict needs MIN_SEEDS distinct seeds in both groups and a finite metric in every run of them
  (report/compare.py's verdict); short of that the line says what it lacks;
- the solve's last line counts the sources record of the main rule (writer.Submissions.source_counts),
  the very record <stem>.sources.json is written from.
"""

import json
import math
import re
import shutil

import pytest
from helpers import error_line
from helpers.compare import fake_run
from helpers.solve import sources_counts
from typer.testing import CliRunner

from arcsolver.cli import app
from arcsolver.report.compare import compare_runs

runner = CliRunner()


# --- runs and checkpoints counted once, by their resolved directory ------------------------------


def test_one_run_named_twice_and_through_a_link_is_one_seed_and_gets_no_verdict(tmp_path):
    r1 = fake_run(tmp_path / "r1", 0, [2.0, 1.5])
    (tmp_path / "link").symlink_to(r1)
    lever = fake_run(tmp_path / "lever", 0, [2.0, 1.18], model__n_layers=4)
    groups, lines = compare_runs([r1, tmp_path / "link", r1, lever])
    assert [len(g.runs) for g in groups] == [1, 1]
    assert lines[0].startswith("2 of the runs given name a run given before") and "counts once" in lines[0]
    assert lines[-1] == (
        "model.n_layers=4: held-out loss -0.3200: no verdict: the first group lacks 1 seed and this group "
        "lacks 1 seed (a verdict needs 2 distinct seeds in each)"
    )
    result = runner.invoke(app, ["compare", str(r1), str(tmp_path / "link"), "--png", str(tmp_path / "c.png")])
    assert result.exit_code == 1
    error_line(result.output, r1, "compare needs two runs or more", "one directory")


def test_a_copy_of_a_run_is_not_a_second_seed(tmp_path):
    r1 = fake_run(tmp_path / "r1", 0, [2.0, 1.5])
    shutil.copytree(r1, tmp_path / "copy")
    lever = [fake_run(tmp_path / f"lever{s}", s, [2.0, 1.2 + s / 100], model__n_layers=4) for s in (0, 1)]
    groups, lines = compare_runs([r1, tmp_path / "copy", *lever])
    assert [len(g.runs) for g in groups] == [2, 2]  # two directories, but one seed
    assert lines[-1].endswith("no verdict: the first group lacks 1 seed (a verdict needs 2 distinct seeds in each)")
    baseline = next(line for line in lines if line.startswith("baseline"))
    assert "1.5000 (1 seed)" in baseline  # no spread of 0 from one seed


def test_a_group_of_one_seed_against_a_group_of_two_gets_no_verdict(tmp_path):
    base = [fake_run(tmp_path / f"b{s}", s, [2.0, 1.5 + s / 100]) for s in (0, 1)]
    lever = fake_run(tmp_path / "lever", 0, [2.0, 1.0], model__n_layers=4)
    _, lines = compare_runs([*base, lever])
    assert lines[-1].endswith("no verdict: this group lacks 1 seed (a verdict needs 2 distinct seeds in each)")


def test_evaluate_run_counts_a_checkpoint_named_twice_or_linked_once(tiny_run, tmp_path):
    from arcsolver.train.evaluate_run import pick_checkpoints

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (last,) = sorted((run / "checkpoints").glob("step_*"))
    step = int(last.name.removeprefix("step_"))
    alias = run / "checkpoints" / f"step_{step + 1:07d}"
    alias.symlink_to(last.name)  # a checkpoint linked to another is the same checkpoint
    assert pick_checkpoints(run, f"{step},{step}") == [last]
    assert pick_checkpoints(run, f"{step},{step + 1}") == [last]
    assert pick_checkpoints(run, "all") == [last] and pick_checkpoints(run, "last:2") == [last]
    alias.unlink()

    result = runner.invoke(app, ["evaluate-run", str(run), "--checkpoints", f"{step},{step}"], terminal_width=300)
    assert result.exit_code == 0, result.output
    assert "voting together" not in result.output and f"held-out ({last.name}; " in result.output
    record = json.loads((run / "evaluations.jsonl").read_text().splitlines()[-1])
    assert record["checkpoints"] == [last.name] and list(record["alone"]) == [last.name]


# --- no verdict on a metric that is not finite ---------------------------------------------------


@pytest.mark.parametrize("bad", [[math.nan, math.nan], [math.inf, 1.2], [math.nan, 1.2]])
def test_a_metric_that_is_not_finite_is_never_a_verdict(tmp_path, bad):
    base = [fake_run(tmp_path / f"b{s}", s, [2.0, 1.5 + s / 100]) for s in (0, 1)]
    lever = [fake_run(tmp_path / f"l{s}", s, [2.0, loss], model__n_layers=4) for s, loss in enumerate(bad)]
    _, lines = compare_runs([*base, *lever])
    n = sum(not math.isfinite(v) for v in bad)
    assert lines[-1] == f"model.n_layers=4: held-out loss not finite in {n} of the 2 runs of this group: no verdict"
    row = next(line for line in lines if line.startswith("model.n_layers=4"))
    assert f"not finite ({n} of 2)" in row and "nan" not in row
    # And against it as the first group.
    _, lines = compare_runs([*lever, *base])
    assert (
        lines[-1] == f"model.n_layers=2: held-out loss not finite in {n} of the 2 runs of the first group: no verdict"
    )


# --- the solve's last line counts what its sources record says ----------------------------------


def solve_with_answers(tmp_path, monkeypatch, tiny_run, no_grid: set[str]):
    """A solve of three small tasks and one that does not parse, where the model's answers to the
    tasks in no_grid decode to no grid at all (an untrained model's often do): (its output, the
    sources record it wrote)."""
    import numpy as np

    from arcsolver.evaluation.voting import Candidate
    from arcsolver.solve import answer

    def rank(task, answers, cfg):
        ranked = [[] if task.id in no_grid else [Candidate(np.array([[7]], dtype=np.uint8), 2, 0.5)] for _ in task.test]
        return {"votes": ranked, "likelihood": ranked}

    monkeypatch.setattr(answer, "rank_answers", rank)
    tasks = {tid: {"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[1, 2]]}]} for tid in "abc"}
    challenges = tmp_path / "challenges.json"
    challenges.write_text(json.dumps({**tasks, "broken": {"train": "no"}}))
    out = tmp_path / "submission.json"
    sets = ["adapt.steps=0", "infer.max_versions=2", "run.threads=1", "run.device='cpu'"]
    args = ["solve", str(challenges), "--checkpoint", str(tiny_run), "--out", str(out)]
    result = runner.invoke(app, [*args, *(x for s in sets for x in ("--set", s))], terminal_width=400)
    assert result.exit_code == 0, result.output
    sources = json.loads(out.with_name("submission.sources.json").read_text())
    return result.output, sources


@pytest.mark.parametrize(
    "no_grid, expected",
    [(set(), (3, 1)), (set("abc"), (0, 4)), ({"b"}, (2, 2))],
    ids=["model answers", "fallbacks", "a mix"],
)
def test_the_last_line_of_a_solve_agrees_with_its_sources_record(tmp_path, monkeypatch, tiny_run, no_grid, expected):
    output, sources = solve_with_answers(tmp_path, monkeypatch, tiny_run, no_grid)
    last = output.strip().splitlines()[-1]
    assert sources_counts(sources) == expected
    for tid in no_grid:  # and why, as for every task that keeps its fallbacks
        assert f"fallback task {tid}: the model's answers hold no valid grid" in output
    if expected[0] == 0:
        assert "4 tasks, fallbacks only: the model answered none of them" in last, last
    else:
        counts = re.search(r"(\d+) tasks, (\d+) from the model, (\d+) fallbacks", last)
        assert counts and tuple(map(int, counts.groups())) == (4, *expected), last
