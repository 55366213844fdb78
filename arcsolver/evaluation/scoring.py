"""ARC scoring: a test output counts if any of the first k attempts matches it exactly; a task
scores the mean over its test outputs; a set scores the mean over its tasks. The one aggregation
(`task_scores`, `mean_scores`) serves pretraining's held-out evaluation and `arcsolver evaluate`."""

from __future__ import annotations

import numpy as np

from arcsolver.data.task import Grid, Task
from arcsolver.evaluation.voting import Candidate

# What a task and a set of tasks score: pass@1, pass@2 and the first attempt's per-cell accuracy.
SCORES = ("pass@1", "pass@2", "cell_accuracy")


def same_grid(a: Grid | None, b: Grid | None) -> bool:
    return a is not None and b is not None and a.shape == b.shape and bool(np.array_equal(a, b))


def test_output_solved(attempts: list[Grid | None], answer: Grid, k: int = 2) -> bool:
    """Whether any of the first k attempts is exactly the answer."""
    return any(same_grid(a, answer) for a in attempts[:k])


def cell_accuracy(attempt: Grid | None, answer: Grid) -> float:
    """Share of the answer's cells the attempt gets right; 0 when the shape is wrong."""
    if attempt is None or attempt.shape != answer.shape:
        return 0.0
    return float((attempt == answer).mean())


def output_scores(attempts: list[Grid | None], answer: Grid) -> dict[str, float]:
    """One test output's SCORES: pass@1, pass@2, and the per-cell accuracy of its first attempt."""
    first = attempts[0] if attempts else None
    return {
        "pass@1": float(test_output_solved(attempts, answer, k=1)),
        "pass@2": float(test_output_solved(attempts, answer, k=2)),
        "cell_accuracy": cell_accuracy(first, answer),
    }


def task_scores(attempts: list[list[Grid | None]], answers: list[Grid]) -> dict[str, float]:
    """A task's SCORES: the mean over its test outputs (attempts[i] are the attempts for output i)."""
    if len(attempts) != len(answers):
        raise ValueError(f"{len(attempts)} attempt lists for {len(answers)} test outputs")
    per_output = [output_scores(a, t) for a, t in zip(attempts, answers)]
    return {k: sum(o[k] for o in per_output) / len(answers) for k in SCORES}


def mean_scores(per_task: list[dict[str, float]]) -> dict:
    """A set's SCORES, each the mean over its tasks (every task counts once), and its "tasks"."""
    n = len(per_task)
    return {**{k: sum(t[k] for t in per_task) / max(n, 1) for k in SCORES}, "tasks": n}


def heldout_scores(tasks: dict[str, Task], ranked: dict[tuple[str, int], list[Candidate]]) -> dict:
    """mean_scores of the voted candidates' first two attempts over the tasks whose every test
    output was queried and has a known answer."""
    per_task = []
    for task in tasks.values():
        keys = [(task.id, i) for i in range(len(task.test))]
        if not task.has_solutions or any(k not in ranked for k in keys):
            continue
        attempts = [[c.grid for c in ranked[k][:2]] for k in keys]
        per_task.append(task_scores(attempts, [p.output for p in task.test]))
    return mean_scores(per_task)
