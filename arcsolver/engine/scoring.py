"""ARC scoring: a test output counts if any of the first k attempts matches it exactly; a task
scores the mean over its test outputs; a set scores the mean over its tasks."""

from __future__ import annotations

import numpy as np

from arcsolver.data.task import Grid


def same_grid(a: Grid | None, b: Grid | None) -> bool:
    return a is not None and b is not None and a.shape == b.shape and bool(np.array_equal(a, b))


def test_output_solved(attempts: list[Grid | None], answer: Grid, k: int = 2) -> bool:
    """Whether any of the first k attempts is exactly the answer."""
    return any(same_grid(a, answer) for a in attempts[:k])


def task_score(attempts: list[list[Grid | None]], answers: list[Grid], k: int = 2) -> float:
    """Mean over the task's test outputs of pass@k (attempts[i] are the attempts for output i)."""
    if len(attempts) != len(answers):
        raise ValueError(f"{len(attempts)} attempt lists for {len(answers)} test outputs")
    return sum(test_output_solved(a, t, k) for a, t in zip(attempts, answers)) / len(answers)


def cell_accuracy(attempt: Grid | None, answer: Grid) -> float:
    """Share of the answer's cells the attempt gets right; 0 when the shape is wrong."""
    if attempt is None or attempt.shape != answer.shape:
        return 0.0
    return float((attempt == answer).mean())
