"""A scored submission as one self-contained HTML page: per task its demonstration pairs, each test
input, both attempts and the answer, drawn in ARC's colours, with the scores on top.

The page needs nothing but a browser: inline CSS, inline SVG for the grids and a few lines of
inline JavaScript to sort and filter the tasks (the style and the script are in html_assets.py).
Nothing is fetched, so it can be mailed or archived.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from arcsolver.atomic import atomic_write_text
from arcsolver.data.loaders import challenges_path_for, read_challenges
from arcsolver.data.render import ARC_COLOURS
from arcsolver.data.task import Grid, Task, TaskSet
from arcsolver.errors import DataError
from arcsolver.reader import read_json
from arcsolver.report.html_assets import CSS, JS
from arcsolver.solve.evaluate import EvaluationResult, read_solutions
from arcsolver.solve.submission import Submission, parse_submission

GRID_PX = 150  # a task's largest grid is drawn about this wide...
CELL_PX = (4, 20)  # ...with cells no smaller or larger than these


def _runs(row: np.ndarray):
    """(start, length, colour) of each stretch of equal cells in a row."""
    start = 0
    for c in range(1, len(row) + 1):
        if c == len(row) or row[c] != row[start]:
            yield start, c - start, int(row[start])
            start = c


def grid_svg(grid: Grid, cell: int, answer: Grid | None = None) -> str:
    """A grid as inline SVG, one path per colour. Given an answer of the same shape, the cells
    that differ from it get a white dot, to show how near a miss is."""
    h, w = grid.shape
    paths: dict[int, list[str]] = {}
    for r, row in enumerate(grid):
        for c, n, colour in _runs(row):
            paths.setdefault(colour, []).append(f"M{c} {r}h{n}v1h-{n}z")
    parts = [f'<path fill="{ARC_COLOURS[colour]}" d="{"".join(d)}"/>' for colour, d in sorted(paths.items())]
    lines = "".join(f"M0 {r}h{w}" for r in range(1, h)) + "".join(f"M{c} 0v{h}" for c in range(1, w))
    if lines:
        parts.append(f'<path class="lines" d="{lines}"/>')
    if answer is not None and answer.shape == grid.shape:
        wrong = np.argwhere(grid != answer)
        if len(wrong):
            marks = "".join(f"M{c + 0.32} {r + 0.32}h.36v.36h-.36z" for r, c in wrong)
            parts.append(f'<path class="wrong" d="{marks}"/>')
    return (
        f'<svg viewBox="0 0 {w} {h}" width="{w * cell}" height="{h * cell}" role="img" '
        f'aria-label="{h}x{w} grid">{"".join(parts)}</svg>'
    )


def _figure(grid: Grid | None, caption: str, cell: int, css: str = "", answer: Grid | None = None) -> str:
    if grid is None:
        drawing, size = '<div class="missing">no grid</div>', ""
    else:
        drawing, size = grid_svg(grid, cell, answer), f" {grid.shape[0]}x{grid.shape[1]}"
    return f'<figure class="{css}">{drawing}<figcaption>{caption}<small>{size}</small></figcaption></figure>'


def _cell_px(grids: list[Grid]) -> int:
    side = max(max(g.shape) for g in grids)
    return max(CELL_PX[0], min(CELL_PX[1], GRID_PX // side))


def task_section(
    task_id: str,
    order: int,
    tests: pd.DataFrame,
    attempts: list[list[Grid | None]],
    answers: list[Grid],
    task: Task | None,
) -> str:
    """One task's card. tests: its rows of the per-test table; task: its challenge (None: unknown)."""
    demos = task.train if task is not None else ()
    inputs = [p.input for p in task.test] if task is not None else []
    shown = [g for g in (*answers, *inputs, *(g for p in demos for g in (p.input, p.output))) if g is not None]
    cell = _cell_px(shown + [a for pair in attempts for a in pair if a is not None])
    n_solved = int(tests["solved"].sum())
    solved = n_solved == len(tests)
    if solved:
        badge = '<span class="badge yes">&#10003; solved</span>'
    elif n_solved:
        badge = f'<span class="badge part">&#10007; {n_solved} of {len(tests)} tests solved</span>'
    else:
        badge = '<span class="badge no">&#10007; unsolved</span>'
    answer_cells = sum(a.size for a in answers)
    accuracy = float(tests["cell_accuracy"].mean())
    meta = f"pass@1 {tests['attempt_1_correct'].mean():.2f} &middot; cell accuracy {accuracy:.2f} &middot; answer cells {answer_cells}"
    body = []
    if demos:
        pairs = "".join(
            f'<div class="pair">{_figure(p.input, f"in {i}", cell)}<span class="arrow">&rarr;</span>'
            f"{_figure(p.output, f'out {i}', cell)}</div>"
            for i, p in enumerate(demos)
        )
        body.append(f'<div class="row"><h3>demonstrations</h3><div class="grids">{pairs}</div></div>')
    for (_, row), (attempt_1, attempt_2), answer in zip(tests.iterrows(), attempts, answers):
        i = int(row["test_index"])
        figures = []
        if i < len(inputs):
            figures.append(_figure(inputs[i], "test input", cell))
        for n, (attempt, correct) in enumerate(
            ((attempt_1, row["attempt_1_correct"]), (attempt_2, row["attempt_2_correct"])), 1
        ):
            mark = " &#10003;" if correct else ""
            source = str(row.get(f"attempt_{n}_source", ""))
            css = " ".join(
                c for c in ("hit" if correct else "", "fallback" if source.startswith("fallback") else "") if c
            )
            caption = f"attempt {n}{mark}" + (
                f' <small class="source" title="{escape(source)}">{escape(source.split(";")[0])}</small>'
                if source
                else ""
            )
            figures.append(_figure(attempt, caption, cell, css, answer))
        figures.append(_figure(answer, "answer", cell, "answer"))
        body.append(f'<div class="row"><h3>test {i}</h3><div class="grids">{"".join(figures)}</div></div>')
    if task is None:
        body.append('<p class="note">no challenge for this task: demonstrations and test inputs not shown</p>')
    tid = escape(task_id)
    return (
        f'<section class="task {"solved" if solved else "unsolved"}" data-id="{tid}" data-order="{order}" '
        f'data-solved="{int(solved)}" data-cells="{answer_cells}" data-acc="{accuracy:.4f}">'
        f'<header><h2>{tid}</h2>{badge}<span class="meta">{meta}</span></header>{"".join(body)}</section>'
    )


def evaluation_page(
    result: EvaluationResult,
    submission: Submission,
    solutions: dict[str, list[Grid]],
    tasks: TaskSet | None = None,
    sources: dict[str, str] | None = None,
) -> str:
    """The whole HTML page. tasks supplies demonstrations and test inputs where it holds the task;
    sources (label -> file name) is listed under the scores."""
    sections = [
        task_section(
            task_id,
            order,
            tests,
            submission[task_id],
            solutions[task_id],
            tasks[task_id] if tasks is not None and task_id in tasks else None,
        )
        for order, (task_id, tests) in enumerate(result.per_test.groupby("task_id", sort=False))
    ]
    cells = [sum(a.size for a in solutions[t]) for t in result.per_task["task_id"]]
    scores = [
        ("pass@2", f"{result.pass_at_2:.4f}", "the competition's score"),
        ("pass@1", f"{result.pass_at_1:.4f}", "attempt_1 alone"),
        ("per-cell accuracy", f"{result.cell_accuracy:.4f}", "attempt_1's right cells"),
        ("tasks solved", f"{result.solved_tasks} of {result.n_tasks}", "every test output right"),
    ]
    if result.by_source is not None:
        for kind, what in (("model", "the model's answers"), ("fallback", "fallbacks")):
            part = result.by_source[kind]
            scores.append(
                (
                    f"pass@2 of {what}",
                    f"{part['pass@2']:.4f}",
                    f"{part['test_outputs']} test outputs whose attempt_1 is one; cells {part['cell_accuracy']:.4f}",
                )
            )
        named = checkpoint_names(result.per_test)
        if named:
            sources = {**(sources or {}), "checkpoints": "; ".join(named)}
    score_html = "".join(
        f'<div class="score"><b>{v}</b><span>{k}</span><small>{note}</small></div>' for k, v, note in scores
    )
    source_html = " &middot; ".join(f"{escape(k)}: <code>{escape(v)}</code>" for k, v in (sources or {}).items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>arcsolver evaluation: pass@2 {result.pass_at_2:.4f}</title>
<style>{CSS}</style></head>
<body>
<header class="top"><h1>arcsolver evaluation</h1><div class="scores">{score_html}</div><p class="sources">{source_html}</p></header>
<nav class="controls">
<label>show <select id="show"><option value="all">all tasks</option><option value="solved">solved</option><option value="unsolved">unsolved</option></select></label>
<label>sort by <select id="sort"><option value="order">file order</option><option value="id">task id</option>
<option value="cells">answer cells, fewest first</option><option value="-cells">answer cells, most first</option>
<option value="acc">cell accuracy, lowest first</option><option value="-acc">cell accuracy, highest first</option></select></label>
<label>answer cells from <input id="min-cells" type="number" min="0" value="{min(cells)}" size="4"> to <input id="max-cells" type="number" min="0" value="{max(cells)}" size="4"></label>
<span id="count">{len(sections)} tasks</span>
<span class="legend"><i class="key hit"></i>attempt equals the answer <i class="key wrong"></i>cell differs from the answer <i class="key fallback"></i>a fallback, not the model's answer</span>
</nav>
<main id="tasks">{"".join(sections)}</main>
<script>{JS}</script>
</body></html>
"""


def checkpoint_names(per_test: pd.DataFrame) -> list[str]:
    """The checkpoints (ckpt-<k>: DIR) that cast votes for the attempts, as the sources columns of
    the per-test table name them."""
    names: set[str] = set()
    for column in ("attempt_1_source", "attempt_2_source"):
        for source in per_test.get(column, []):
            for part in str(source).split("; ")[1:]:
                if part.startswith("ckpt-") and part.endswith(" votes"):
                    names.add(part.rsplit(" ", 2)[0])
    return sorted(names)


def write_evaluation_page(
    path, result: EvaluationResult, submission_path, solutions_path, challenges_path=None
) -> Path | None:
    """Write the page for a submission scored by `evaluate_submission`. The demonstrations come from
    challenges_path, else from the `*_challenges.json` beside the solutions; returns the file used."""
    submission_path, solutions_path = Path(submission_path), Path(solutions_path)
    submission, _ = parse_submission(read_json(submission_path), str(submission_path))
    solutions = read_solutions(solutions_path)
    challenges = Path(challenges_path) if challenges_path is not None else challenges_path_for(solutions_path)
    tasks = None
    sources = {"submission": submission_path.name, "solutions": solutions_path.name}
    if challenges is not None:
        tasks, _ = read_challenges(
            challenges, solutions_path
        )  # a task that does not parse shows without demonstrations
        sources["challenges"] = challenges.name
    else:
        sources["challenges"] = "none found (pass --challenges for the demonstrations)"
    try:
        atomic_write_text(path, evaluation_page(result, submission, solutions, tasks, sources))
    except OSError as e:
        raise DataError(f"{path}: cannot write: {e}") from None
    return challenges
