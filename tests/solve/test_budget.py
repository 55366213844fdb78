"""arcsolver/solve/budget.py and the time promises of solve and pretrain: a solve's budget is a
hard deadline however slow inference turns, shared anew among the tasks left as they finish;
measuring the inference rate is bounded; pretraining's time limit covers its final evaluation;
progress never reads past its total."""

import io
import json
import time

import pytest
import torch
from helpers import tiny_config
from helpers.solve import answered_by_the_model, quick, small_tasks, write_challenges
from rich.console import Console

from arcsolver.model.trm import TRM
from arcsolver.solve import solver
from arcsolver.solve.budget import InferencePace, safety_margin, solve_deadline


def slowed_after(monkeypatch, calls: int, seconds: float) -> None:
    """Every model.predict after the first `calls` (the rate's measurement) sleeps seconds first:
    inference turns slow mid-run."""
    real, seen = TRM.predict, [0]

    def predict(self, inputs, puzzle_ids, *levers):
        seen[0] += 1
        if seen[0] > calls:
            time.sleep(seconds)
        return real(self, inputs, puzzle_ids, *levers)

    monkeypatch.setattr(TRM, "predict", predict)


def solve_timed(tiny_run, tmp_path, n_tasks, *settings):
    challenges = tmp_path / "c.json"
    write_challenges(challenges, small_tasks(n_tasks))
    log = io.StringIO()
    began = time.monotonic()
    report = solver.solve(
        challenges, tmp_path / "s.json", str(tiny_run), quick(*settings), Console(file=log, width=300), started=began
    )
    return report, time.monotonic() - began, log.getvalue()


SLOW = ["adapt.steps=0", "data.n_augmentations=8", "infer.max_versions=8", "infer.batch_size=1"]


def test_a_solve_slowed_mid_inference_ends_within_its_budget(tiny_run, tmp_path, monkeypatch):
    # Each task's 8 versions run as 8 batches of 1, slowed to 0.6 s each once measured: 4.8 s a
    # task, longer than the 3 s the deadline leaves; checked between tasks only, the first
    # task would run past the budget.
    slowed_after(monkeypatch, 2, 0.6)
    report, took, log = solve_timed(tiny_run, tmp_path, 2, *SLOW, "run.time_budget_s=5", "run.safety_margin_s=2")
    assert took < 5.0, (took, log)
    sub = json.loads((tmp_path / "s.json").read_text())
    assert set(sub) == {t.id for t in small_tasks(2)}  # every task is in the file, its fallback at least
    assert report.fallbacks and all(r.startswith("time budget reached") for r in report.fallbacks.values())
    assert "time budget reached during its inference" in log


def test_the_time_left_is_shared_among_the_tasks_left_rather_than_given_up(tiny_run, tmp_path, monkeypatch):
    # 5 tasks of 8 versions at 0.25 s a batch need 10 s; the deadline leaves about 6: with the
    # share re-planned as tasks finish, every task is answered by the model, on fewer versions.
    slowed_after(monkeypatch, 2, 0.25)
    report, took, log = solve_timed(tiny_run, tmp_path, 5, *SLOW, "run.time_budget_s=8", "run.safety_margin_s=2")
    assert took < 8.0, (took, log)
    assert answered_by_the_model(report) == 5, log


def test_measuring_the_inference_rate_is_bounded_and_said(tiny_run, tmp_path, monkeypatch):
    slowed_after(monkeypatch, 0, 1.0)  # one query takes a second: a batch of 16 is not timed
    report, took, log = solve_timed(
        tiny_run, tmp_path, 1, "adapt.steps=0", "run.time_budget_s=10", "run.safety_margin_s=1"
    )
    line = next(line for line in log.splitlines() if line.startswith("inference estimate"))
    assert "measured in 1." in line, line
    assert took < 10.0 and answered_by_the_model(report) == 1, log


def test_each_checkpoint_of_an_ensemble_holds_its_share_of_the_time_as_a_deadline(tiny_run, tmp_path, monkeypatch):
    # A task's 8 versions take 9.6 s once slowed, more than the whole 8 s the deadline leaves.
    # Cut at its share (about half), the first checkpoint leaves the second the rest, in which
    # it answers on one version a task; cut only at the solve's deadline, the first would take
    # it all and the second would answer nothing.
    slowed_after(monkeypatch, 1, 1.2)
    challenges = tmp_path / "c.json"
    write_challenges(challenges, small_tasks(2))
    log = io.StringIO()
    began = time.monotonic()
    cfg = quick(*SLOW, "run.time_budget_s=10", "run.safety_margin_s=2")
    report = solver.solve(
        challenges, tmp_path / "s.json", [str(tiny_run)] * 2, cfg, Console(file=log, width=300), started=began
    )
    took = time.monotonic() - began
    assert took < 10.0, (took, log.getvalue())
    # The second checkpoint ran: it measured its pace and answered with what time was left.
    assert log.getvalue().count("inference estimate") == 2 and answered_by_the_model(report) >= 1, log.getvalue()
    assert set(json.loads((tmp_path / "s.json").read_text())) == {t.id for t in small_tasks(2)}


def test_rollouts_count_as_queries_of_their_own_in_the_pace():
    one_test = [t for t in small_tasks(20) if len(t.test) == 1][:5]
    plain, noisy = InferencePace(0.1), InferencePace(0.1, rollouts=2)  # a version and its 2 rollouts: 3 queries
    assert noisy.queries_of(2, 4) == 24 and plain.queries_of(2, 4) == 8
    deadline = time.monotonic() + 1.55  # 1.24 s planned for one task: 12 queries
    assert plain.versions_for(1, 8, 1, deadline) == 8
    assert noisy.versions_for(1, 8, 1, deadline) == 4
    deadline = time.monotonic() + 0.95
    assert len(one_test) == 5 and plain.tasks_within(one_test, deadline) == 5  # 0.1 s a task
    assert noisy.tasks_within(one_test, deadline) == 3  # 0.3 s a task


def test_a_margin_past_half_the_budget_keeps_half(monkeypatch):
    cfg = quick("run.time_budget_s=30")  # the default margin is 60 s
    assert safety_margin(cfg) == 15.0
    assert solve_deadline(cfg, started=100.0) == 115.0
    assert safety_margin(quick("run.time_budget_s=400")) == 60.0


def test_the_pace_gives_each_task_its_share_of_the_time_left():
    pace = InferencePace()
    assert pace.versions_for(2, 8, 10, None) == 8  # no budget: every version
    assert pace.versions_for(2, 8, 10, time.monotonic() + 1) == 8  # nothing measured yet
    pace.observe(queries=16, seconds=1.6)  # 0.1 s a query
    deadline = time.monotonic() + 5.05
    assert pace.versions_for(2, 8, 10, deadline) == 2  # 0.5 s a task, 0.4 s of it planned: 2 inputs x 2 versions
    assert pace.versions_for(2, 8, 1, deadline) == 8  # the last task may take them all
    assert pace.versions_for(2, 8, 1000, deadline) == 1  # never none: the deadline stops what runs over


def test_pretrains_time_limit_covers_its_final_evaluation_cut_short_when_slowed(tmp_path, monkeypatch):
    from arcsolver.train import loop

    # After the evaluation's length is measured (its first two predict calls), every batch of one
    # query takes 0.5 s: 14 queries, 7 s, more than the 6 s limit has left.
    slowed_after(monkeypatch, 2, 0.5)
    measured, real = [], loop.evaluation_seconds
    monkeypatch.setattr(loop, "evaluation_seconds", lambda *a: (real(*a), measured.append(time.monotonic()))[0])
    log = io.StringIO()
    cfg = tiny_config("run.steps=100000", "run.time_limit_s=6", "eval.batch_size=1")
    result = loop.pretrain(cfg, tmp_path / "run", console=Console(file=log, width=300))
    took = time.monotonic() - measured[0]  # the limit's clock starts just after the measurement
    lines = log.getvalue().splitlines()
    assert any(line.startswith("time limit 6s: the final held-out evaluation (") for line in lines), lines
    assert any("left for the final evaluation" in line for line in lines), lines
    assert any("held-out evaluation stopped at the time limit" in line for line in lines), lines
    assert took < 6 + 1, (took, lines)  # at most one batch and the last record past the limit
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["heldout_cut"] >= 1 and record["heldout_tasks"] == result.scores["tasks"]


def test_the_progress_line_never_reads_past_its_total_nor_a_negative_time_left(tmp_path, monkeypatch):
    import arcsolver.console
    from arcsolver.engine.distributed import Dist
    from arcsolver.train.logger import Logger

    monkeypatch.setattr(arcsolver.console, "HEARTBEAT_S", 0.0)
    log = io.StringIO()
    logger = Logger(tmp_path, 100, 0, Dist(), torch.device("cpu"), 8, 600.0, Console(file=log, width=300))
    logger.total = 27  # the last record's projection, which the steps since have passed
    logger.started -= 10.0
    logger.tick(29)
    line = log.getvalue().strip().splitlines()[-1]
    total = int(line.split("/")[1].split(";")[0].split(":")[0])
    assert line.startswith("pretrain step 29/") and total >= 29 and "-" not in line.split("about")[1], line


def test_twenty_thousand_tiny_tasks_end_within_a_short_budget(tiny_run, tmp_path):
    # What costs time per task before the model runs (reading, fallbacks, writing, building the
    # versions of tasks the budget cannot reach) must not outlast the budget.
    tasks = {
        f"{i:08x}": {"train": [{"input": [[i % 10]], "output": [[1]]}], "test": [{"input": [[2]]}]}
        for i in range(20_000)
    }
    challenges = tmp_path / "many.json"
    challenges.write_text(json.dumps(tasks))
    log = io.StringIO()
    began = time.monotonic()
    report = solver.solve(
        challenges,
        tmp_path / "s.json",
        str(tiny_run),
        quick("run.time_budget_s=20"),
        Console(file=log, width=300),
        started=began,
    )
    took = time.monotonic() - began
    assert took < 20, (took, log.getvalue()[-2000:])
    assert len(json.loads((tmp_path / "s.json").read_text())) == 20_000 and report.tasks == 20_000


def test_a_worker_gets_what_remains_of_the_budget():
    from arcsolver.solve.budget import budget_left

    cfg = quick("run.time_budget_s=30")
    assert budget_left(cfg, time.monotonic() - 10) == pytest.approx(20, abs=0.5)
    assert budget_left(cfg, time.monotonic() - 100) == 0.001  # spent: the worker writes its fallbacks
    assert budget_left(quick(), time.monotonic()) is None
