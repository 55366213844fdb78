"""Scoring a submission file against a Kaggle solutions file the way the competition does
(pass@2), with pass@1 and per-cell accuracy beside it to show how near the misses are."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from arcsolver.atomic import atomic_write_text
from arcsolver.data.loaders import first_of
from arcsolver.data.task import Grid, GridError, as_grid
from arcsolver.errors import DataError, SubmissionRejected
from arcsolver.evaluation.scoring import mean_scores, output_scores, same_grid, task_scores
from arcsolver.reader import read_json
from arcsolver.solve.submission import coverage_problems, parse_submission


@dataclass(frozen=True)
class EvaluationResult:
    """A submission's scores. Each score is a mean over tasks of the task's mean over its test outputs."""

    pass_at_2: float  # the competition's score: either attempt exactly right
    pass_at_1: float  # attempt_1 alone
    cell_accuracy: float  # attempt_1's share of right cells; 0 where its shape is wrong
    n_tasks: int
    solved_tasks: int  # tasks whose every test output is solved by one of the two attempts
    per_test: pd.DataFrame  # one row per (task_id, test_index)
    per_task: pd.DataFrame  # one row per task_id: its test outputs and their mean scores
    # With a sources record beside the submission: the test outputs whose attempt_1 the model
    # gave, and those whose attempt_1 is a fallback, each with its pass@2 and cell accuracy
    # (means over those test outputs).
    by_source: dict[str, dict] | None = None

    def summary(self) -> dict:
        """The headline numbers, as plain Python values (for JSON)."""
        return {
            "pass@2": self.pass_at_2,
            "pass@1": self.pass_at_1,
            "cell_accuracy": self.cell_accuracy,
            "tasks": self.n_tasks,
            "solved_tasks": self.solved_tasks,
            **({"by_source": self.by_source} if self.by_source is not None else {}),
        }

    def write_csv(self, path) -> None:
        """Write the per-test-output table as CSV, atomically, with text cells safe to open in a spreadsheet."""
        try:
            atomic_write_text(path, spreadsheet_safe(self.per_test).to_csv(index=False))
        except OSError as e:
            raise DataError(f"{path}: cannot write the scores: {e.strerror or e}; choose another --csv") from None


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs a cell starting so as a formula


def spreadsheet_safe(table: pd.DataFrame) -> pd.DataFrame:
    """A copy whose text cells (task ids from the input files) cannot start a formula: such a cell
    gets a leading single quote. Numbers are left alone, so -1 stays a number."""
    safe = table.copy()
    for column in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[column]):
            safe[column] = [f"'{v}" if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v for v in safe[column]]
    return safe


def _shape(grid: Grid | None) -> str:
    return "" if grid is None else f"{grid.shape[0]}x{grid.shape[1]}"


def read_solutions(path) -> dict[str, list[Grid]]:
    """Read a Kaggle solutions file (task id -> output grids in test order), strictly."""
    path = Path(path)
    obj = read_json(path)
    if not isinstance(obj, dict):
        raise DataError(
            f"{path}: expected an object mapping task ids to lists of output grids, got {type(obj).__name__}"
        )
    solutions, problems = {}, []
    for task_id, outputs in obj.items():
        if not isinstance(outputs, list) or not outputs:
            problems.append(f"{path}: task {task_id}: expected a non-empty list of output grids")
            continue
        grids = []
        for i, output in enumerate(outputs):
            try:
                grids.append(as_grid(output))
            except GridError as e:
                problems.append(f"{path}: task {task_id}: output {i}: {e}")
        solutions[task_id] = grids
    if problems:
        raise DataError(first_of(problems))
    if not solutions:
        raise DataError(f"{path}: holds no tasks, so there is nothing to score")
    return solutions


def evaluate_submission(submission_path, solutions_path) -> EvaluationResult:
    """Score a submission file against a solutions file.

    Raises DataError if either file is unreadable, or if the competition would reject the
    submission for the tasks of the solutions file.
    """
    submission_path = Path(submission_path)
    obj = read_json(submission_path)
    solutions = read_solutions(solutions_path)
    source = str(submission_path)
    submission, problems = parse_submission(obj, source)
    problems += coverage_problems(obj, {task_id: len(outputs) for task_id, outputs in solutions.items()}, source)
    if problems:
        raise SubmissionRejected(source, problems)

    sources = read_sources(submission_path)
    rows, per_task = [], []
    for task_id, answers in solutions.items():
        attempts = [list(pair) for pair in submission[task_id][: len(answers)]]
        for i, (answer, (attempt_1, attempt_2)) in enumerate(zip(answers, attempts)):
            scores = output_scores([attempt_1, attempt_2], answer)
            rows.append(
                {
                    "task_id": task_id,
                    "test_index": i,
                    "attempt_1_correct": scores["pass@1"] == 1.0,
                    "attempt_2_correct": same_grid(attempt_2, answer),
                    "solved": scores["pass@2"] == 1.0,
                    "cell_accuracy": scores["cell_accuracy"],
                    "answer_shape": _shape(answer),
                    "attempt_1_shape": _shape(attempt_1),
                    **(
                        {
                            "attempt_1_source": source_of(sources, task_id, i, "attempt_1"),
                            "attempt_2_source": source_of(sources, task_id, i, "attempt_2"),
                        }
                        if sources is not None
                        else {}
                    ),
                }
            )
        per_task.append({"task_id": task_id, "test_outputs": len(answers), **task_scores(attempts, answers)})
    overall = mean_scores(per_task)
    table = pd.DataFrame(rows)
    return EvaluationResult(
        pass_at_2=overall["pass@2"],
        pass_at_1=overall["pass@1"],
        cell_accuracy=overall["cell_accuracy"],
        n_tasks=overall["tasks"],
        solved_tasks=sum(t["pass@2"] == 1.0 for t in per_task),
        per_test=table,
        per_task=pd.DataFrame(per_task),
        by_source=None if sources is None else scores_by_source(table),
    )


def read_sources(submission_path: Path) -> dict | None:
    """The sources record solve wrote beside a submission (<stem>.sources.json), or None where
    there is none or it is not one (the scores are then not split by source)."""
    path = submission_path.with_name(f"{submission_path.stem}.sources{submission_path.suffix}")
    try:
        obj = read_json(path)
    except DataError:
        return None
    return obj if isinstance(obj, dict) else None


def source_of(sources: dict, task_id: str, test_index: int, attempt: str) -> str:
    """An attempt's source in the record: "fallback: ...", "model" with the votes each checkpoint
    cast for it ("model; ckpt-0: DIR 5 votes; 2 of them from rollouts"), or "unknown"."""
    try:
        record = sources[task_id][test_index][attempt]
        source = record["source"]
    except (KeyError, IndexError, TypeError):
        return "unknown"
    if not isinstance(source, str):
        return "unknown"
    checkpoints = record.get("checkpoints")
    if source != "model" or not isinstance(checkpoints, dict):
        return source
    parts = [source, *(f"{name} {votes} votes" for name, votes in checkpoints.items())]
    if record.get("rollout_votes"):
        parts.append(f"{record['rollout_votes']} of them from rollouts")
    return "; ".join(str(p) for p in parts)


def scores_by_source(per_test: pd.DataFrame) -> dict[str, dict]:
    """pass@2 and cell accuracy of the test outputs whose attempt_1 is the model's, and of those
    whose attempt_1 is a fallback (means over those test outputs)."""
    kinds = per_test["attempt_1_source"].map(
        lambda s: "model" if s.startswith("model") else "fallback" if s.startswith("fallback") else "unknown"
    )
    out = {}
    for kind in ("model", "fallback"):
        mine = per_test[kinds == kind]
        out[kind] = {
            "test_outputs": len(mine),
            "pass@2": float(mine["solved"].mean()) if len(mine) else 0.0,
            "cell_accuracy": float(mine["cell_accuracy"].mean()) if len(mine) else 0.0,
        }
    return out
