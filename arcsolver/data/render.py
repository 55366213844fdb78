"""Drawing grids in a terminal, in ARC's ten colours."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from arcsolver.data.task import Grid, Task, task_label

# ARC's standard palette: black, blue, red, green, yellow, grey, magenta, orange, sky, maroon.
ARC_COLOURS = (
    "#000000",
    "#0074D9",
    "#FF4136",
    "#2ECC40",
    "#FFDC00",
    "#AAAAAA",
    "#F012BE",
    "#FF851B",
    "#7FDBFF",
    "#870C25",
)


def grid_text(grid: Grid) -> Text:
    """A grid as rich Text: two spaces per cell on the cell's colour."""
    text = Text()
    for r, row in enumerate(grid):
        if r:
            text.append("\n")
        for cell in row:
            text.append("  ", style=f"on {ARC_COLOURS[int(cell)]}")
    return text


def task_view(task: Task, show_answers: bool = True) -> Group:
    """A table per pair (input -> output) for every demonstration and test pair of a task."""
    table = Table(title=Text(f"task {task_label(task.id)}"), show_lines=True, title_justify="left")
    table.add_column("pair")
    table.add_column("input")
    table.add_column("output")
    for split, pairs in (("train", task.train), ("test", task.test)):
        for i, pair in enumerate(pairs):
            h, w = pair.input.shape
            label = f"{split} {i}\n{h}x{w}"
            if pair.output is None or (split == "test" and not show_answers):
                out = Text("?")
            else:
                out = grid_text(pair.output)
                label += f" -> {pair.output.shape[0]}x{pair.output.shape[1]}"
            table.add_row(label, grid_text(pair.input), out)
    return Group(table)
