"""ARC scoring and its one aggregation: test outputs into tasks, tasks into a set."""

import json

import pytest

from arcsolver.data.task import Pair, Task, as_grid
from arcsolver.evaluation.scoring import heldout_scores, mean_scores, output_scores, task_scores
from arcsolver.evaluation.voting import Candidate
from arcsolver.solve.evaluate import evaluate_submission

A, B, C = as_grid([[1, 2], [3, 4]]), as_grid([[1, 2], [3, 5]]), as_grid([[7]])


def test_output_scores_count_either_attempt_for_pass2_and_the_first_for_cells():
    assert output_scores([B, A], A) == {"pass@1": 0.0, "pass@2": 1.0, "cell_accuracy": 0.75}
    assert output_scores([C, None], A) == {"pass@1": 0.0, "pass@2": 0.0, "cell_accuracy": 0.0}  # wrong shape
    assert output_scores([], A)["cell_accuracy"] == 0.0


def test_a_task_is_the_mean_of_its_outputs_and_a_set_the_mean_of_its_tasks():
    two_outputs = task_scores([[A, C], [C, A]], [A, A])
    assert two_outputs == {"pass@1": 0.5, "pass@2": 1.0, "cell_accuracy": 0.5}
    one_output = task_scores([[C, C]], [A])
    assert mean_scores([two_outputs, one_output]) == {"pass@1": 0.25, "pass@2": 0.5, "cell_accuracy": 0.25, "tasks": 2}
    with pytest.raises(ValueError):
        task_scores([[A]], [A, A])


def test_heldout_evaluation_and_evaluate_score_the_same_attempts_alike(tmp_path):
    tasks = {
        "t1": Task("t1", (Pair(A, A),), (Pair(A, A), Pair(A, B))),
        "t2": Task("t2", (Pair(A, A),), (Pair(A, C),)),
    }
    attempts = {("t1", 0): [B, A], ("t1", 1): [B, C], ("t2", 0): [A, B]}
    ranked = {key: [Candidate(g, 1, 0.5) for g in grids] for key, grids in attempts.items()}
    submission = {
        tid: [
            {"attempt_1": attempts[(tid, i)][0].tolist(), "attempt_2": attempts[(tid, i)][1].tolist()} for i in range(n)
        ]
        for tid, n in (("t1", 2), ("t2", 1))
    }
    solutions = {tid: [p.output.tolist() for p in task.test] for tid, task in tasks.items()}
    (tmp_path / "sub.json").write_text(json.dumps(submission))
    (tmp_path / "sol.json").write_text(json.dumps(solutions))
    result = evaluate_submission(tmp_path / "sub.json", tmp_path / "sol.json")
    heldout = heldout_scores(tasks, ranked)
    assert heldout == {"pass@1": 0.25, "pass@2": 0.5, "cell_accuracy": 0.4375, "tasks": 2}
    assert result.summary() == {**heldout, "solved_tasks": 1}
