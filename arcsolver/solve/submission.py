"""The Kaggle submission file: task id -> one entry per test input, in order, each
{"attempt_1": grid, "attempt_2": grid}.

The competition rejects the whole file for one bad entry, so the checks here report every
problem, one line each, naming the file, the task, the test index (from 0) and the attempt.
Every task id of a challenges file starts with fallback attempts, parsed or not, so that a
whole file can be written before the model answers anything.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from arcsolver.atomic import atomic_write_json
from arcsolver.data.loaders import parse_challenges_only
from arcsolver.data.task import N_COLOURS, Grid, GridError, Task, TaskSet, as_grid, grid_to_list
from arcsolver.errors import DataError
from arcsolver.reader import read_json

ATTEMPT_KEYS = ("attempt_1", "attempt_2")

# task id -> per test input -> [attempt_1, attempt_2]; None stands for an attempt that is missing
# or not a valid grid, so a lenient reader can still score the rest (None never matches).
Submission = dict[str, list[list[Grid | None]]]


def _parse_entry(entry, where: str) -> tuple[list[Grid | None], list[str]]:
    if not isinstance(entry, dict):
        return [None, None], [f"{where}: not an object with attempt_1 and attempt_2, got {type(entry).__name__}"]
    attempts, problems = [], []
    for key in ATTEMPT_KEYS:
        if key not in entry:
            attempts.append(None)
            problems.append(f"{where}: {key} missing")
            continue
        try:
            attempts.append(as_grid(entry[key]))
        except GridError as e:
            attempts.append(None)
            problems.append(f"{where}: {key}: {e}")
    return attempts, problems


def parse_submission(obj, source: str) -> tuple[Submission, list[str]]:
    """Read a loaded submission leniently: the grids it holds, and one line per malformed part.

    A task whose value is not a list is left out; a missing or invalid attempt becomes None.
    """
    if not isinstance(obj, dict):
        return {}, [f"{source}: expected an object mapping task ids to lists of attempts, got {type(obj).__name__}"]
    submission: Submission = {}
    problems: list[str] = []
    for task_id, entries in obj.items():
        if not isinstance(entries, list):
            problems.append(f"{source}: task {task_id}: not a list of attempts, got {type(entries).__name__}")
            continue
        submission[task_id] = []
        for i, entry in enumerate(entries):
            attempts, entry_problems = _parse_entry(entry, f"{source}: task {task_id}: test {i}")
            submission[task_id].append(attempts)
            problems += entry_problems
    return submission, problems


def coverage_problems(obj, test_counts: Mapping[str, int], source: str) -> list[str]:
    """Task ids and entry counts that do not match the expected tasks (task id -> test inputs)."""
    if not isinstance(obj, dict):
        return []  # parse_submission already says the top level is wrong
    problems = []
    for task_id, n_tests in test_counts.items():
        if task_id not in obj:
            problems.append(f"{source}: task {task_id}: missing (every task of the challenges needs an entry)")
        elif isinstance(obj[task_id], list) and len(obj[task_id]) != n_tests:
            problems.append(f"{source}: task {task_id}: {len(obj[task_id])} test entries for {n_tests} test inputs")
    for task_id in obj:
        if task_id not in test_counts:
            problems.append(f"{source}: task {task_id}: not a task of the challenges")
    return problems


def check_submission(submission_obj, tasks: TaskSet | None, source: str) -> list[str]:
    """Every reason the competition would reject this submission (empty if it would accept it).

    Without tasks only the file's own structure and grids are checked.
    """
    _, problems = parse_submission(submission_obj, source)
    if tasks is not None:
        problems += coverage_problems(submission_obj, {t.id: len(t.test) for t in tasks}, source)
    return problems


def attempts_entry(attempt_1: Grid, attempt_2: Grid) -> dict:
    """One test input's entry, with plain Python ints; raises GridError on an invalid grid."""
    return {"attempt_1": grid_to_list(as_grid(attempt_1)), "attempt_2": grid_to_list(as_grid(attempt_2))}


def submission_json(entries: dict[str, list[tuple[Grid, Grid]]]) -> dict:
    """A submission object from task id -> (attempt_1, attempt_2) per test input."""
    return {task_id: [attempts_entry(a1, a2) for a1, a2 in attempts] for task_id, attempts in entries.items()}


def write_submission(path, obj: dict) -> None:
    """Write a submission object atomically, so a killed run never leaves half a file."""
    atomic_write_json(path, obj)


def fallback_attempts(task: Task) -> list[tuple[Grid, Grid]]:
    """Cheap valid guesses per test input for a task the model could not solve.

    attempt_1 is the test input itself (many ARC outputs are edits of it); attempt_2 is the most
    common demonstration output shape filled with the most common output colour, or the input
    again where that guess is the same grid.
    """
    outputs = [p.output for p in task.train if p.output is not None]
    constant = None
    if outputs:  # one bincount of all outputs' cells: a task costs microseconds, 100,000 of them a second
        shape = Counter(o.shape for o in outputs).most_common(1)[0][0]
        colours = np.bincount(np.concatenate([o.ravel() for o in outputs]), minlength=N_COLOURS)
        constant = np.full(shape, int(np.argmax(colours)), dtype=np.uint8)
    attempts = []
    for pair in task.test:
        first = pair.input.copy()
        same = constant is not None and constant.shape == first.shape and bool((constant == first).all())
        second = constant if constant is not None and not same else first
        attempts.append((first, second.copy()))
    return attempts


def raw_fallback(obj) -> list[tuple[Grid, Grid]]:
    """Attempts for a task that did not even parse: its test inputs where they are grids, else [[0]]."""
    tests = obj.get("test") if isinstance(obj, dict) else None
    entries = []
    for item in tests if isinstance(tests, list) and tests else [None]:
        try:
            grid = as_grid(item["input"])
        except (GridError, TypeError, KeyError):
            grid = np.zeros((1, 1), dtype=np.uint8)
        entries.append((grid, grid))
    return entries


def read_for_submission(challenges: Path):
    """(raw task map, parsed tasks, problems, fallback attempts of every task id in the file).

    Only a file that cannot be read at all, or is not a task map, is an error: every id it
    holds gets an entry, parsed or not.
    """
    raw = read_json(Path(challenges))
    if not isinstance(raw, dict):
        raise DataError(f"{challenges}: expected an object mapping task ids to tasks, got {type(raw).__name__}")
    tasks, problems = parse_challenges_only(raw, challenges)  # the file is read once: 100,000 tasks take seconds
    fallbacks = {tid: fallback_attempts(tasks[tid]) if tid in tasks else raw_fallback(obj) for tid, obj in raw.items()}
    return raw, tasks, problems, fallbacks
