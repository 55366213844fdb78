"""Which canvas a query runs on. The canvases themselves (one fixed side, or the sides of a
grid-sized layout) come from `canvas_sides`, as in training; a query's output is unknown, so its
side holds the input and the output its task's demonstrations suggest."""

from __future__ import annotations

from collections.abc import Sequence

from arcsolver.data.encoding import canvas_sides, fitting_side
from arcsolver.data.task import MAX_SIDE, Task
from arcsolver.model.config import TRMConfig


def model_canvases(config: TRMConfig) -> int | tuple[int, ...]:
    """The canvases a model can run: with rope2d positions every grid-sized side up to the largest
    ARC grid, whatever it was trained on; with rope1d its one canvas."""
    return canvas_sides(config.positions, MAX_SIDE) or config.canvas


def inference_side(task: Task, test_index: int, sides: Sequence[int]) -> int:
    """The canvas side for a test input on grid-sized canvases: it must hold the input and the
    output, whose size is unknown. The demonstrations guess it: outputs the size of their inputs,
    or all of one size; otherwise the largest grid of the task."""
    grid = task.test[test_index].input
    demos = task.train
    if all(p.output.shape == p.input.shape for p in demos):
        output = grid.shape
    elif len({p.output.shape for p in demos}) == 1:
        output = demos[0].output.shape
    else:
        output = (max(max(g.shape) for p in demos for g in (p.input, p.output)),) * 2
    return fitting_side([grid.shape, output], sides)


def query_sides(tasks: dict[str, Task], queries: list, canvas: int | Sequence[int]) -> list[int]:
    """Each query's canvas side: the fixed canvas, or (given the sides of a grid-sized layout)
    inference_side of its test input (augmentations keep a grid's longest side)."""
    if isinstance(canvas, int):
        return [canvas] * len(queries)
    memo: dict[tuple[str, int], int] = {}
    for q in queries:
        key = (q.task_id, q.test_index)
        if key not in memo:
            memo[key] = inference_side(tasks[q.task_id], q.test_index, canvas)
    return [memo[(q.task_id, q.test_index)] for q in queries]
