"""`arcsolver solve` (a submission for new tasks) and `arcsolver evaluate` (its scores)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

import arcsolver
from arcsolver.console import console, err_console, one_line, user_errors
from arcsolver.errors import ArcsolverError


@user_errors
def solve(
    challenges: Path = typer.Argument(..., help="A Kaggle challenges file (task id -> train pairs and test inputs)."),
    out: Path = typer.Option(Path("submission.json"), "--out", help="Where to write the submission."),
    checkpoint: list[str] = typer.Option(
        [],
        help="A checkpoint or run directory (default: the newest run under runs/). Repeated: an ensemble, "
        "each adapting and answering every task, all voting together.",
    ),
    recipe: str = typer.Option("cpu-small", help="A submit recipe file, or the name of a shipped one (submit/*.toml)."),
    time_budget: float = typer.Option(
        None, "--time-budget", help="Seconds for the whole solve; it plans to end inside them."
    ),
    set_: list[str] = typer.Option([], "--set", help="Override a setting: --set adapt.steps=500 (repeatable)."),
    workers: str = typer.Option(None, help="Processes over disjoint task shards ('auto': one per GPU)."),
) -> None:
    """Adapt the model to new tasks and write a Kaggle submission.json.

    The file is valid at every moment: written first with fallbacks, then every few seconds as
    tasks are answered, and at the end. If a write fails (a full disk), the file keeps its last
    complete write: before any work solve stops at once; later it goes on, tries again at each
    later write, and exits 1 naming the file if the last write failed too.
    """
    from arcsolver.config import SolveConfig
    from arcsolver.engine.checkpoint import checkpoint_inputs
    from arcsolver.inputs import Inputs, refuse_outputs
    from arcsolver.recipes import load_recipe, recipe_path
    from arcsolver.solve.shards import solve_sharded, visible_gpus
    from arcsolver.solve.solver import solve as run_solve
    from arcsolver.solve.solver import summary_line, unwritten_error

    overrides = list(set_)
    if time_budget is not None:
        overrides.append(f"run.time_budget_s={time_budget}")
    if workers is not None:
        overrides.append(f"run.workers={workers}")  # a number, or the bare word auto
    cfg = load_recipe(SolveConfig, "submit", recipe, overrides)
    checkpoints = list(checkpoint) or cfg.run.checkpoints or [str(newest_run())]
    n_workers = cfg.run.workers if cfg.run.workers != "auto" else max(visible_gpus(), 1)
    inputs = Inputs().file("challenges file", challenges).file("recipe", recipe_path("submit", recipe))
    for given in checkpoints:
        checkpoint_inputs(inputs, given)
    outputs = solve_outputs(out, cfg.infer.write_all_rankings, n_workers, len(checkpoints))
    refuse_outputs([("--out", path) for path in outputs], inputs)
    with output_lock(out):  # a second solve into the same file is refused, not interleaved
        if n_workers > 1:
            shards = solve_sharded(challenges, out, checkpoints, recipe, list(set_), n_workers, cfg, console)
            line = one_line(shards.line(out))
            if shards.failed or (shards.tasks and not shards.solved_by_model):
                err_console.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
                raise typer.Exit(1)
            console.print(line, highlight=False, soft_wrap=True)
            return
        report = run_solve(challenges, out, checkpoints, cfg, console, started=arcsolver.STARTED)
    if report.unwritten:
        raise unwritten_error(report)
    console.print(one_line(summary_line(out, report)), highlight=False, soft_wrap=True)


def solve_outputs(out: Path, write_all: bool, workers: int, checkpoints: int = 1) -> list[Path]:
    """Every file a solve writes: the submission, its side files (an ensemble's per checkpoint
    too) and, with workers, their shards."""
    from arcsolver.solve.shards import merge_targets, report_path, shard_path
    from arcsolver.solve.writer import RANKINGS, checkpoint_path, side_path

    targets = merge_targets(out, workers, write_all, checkpoints) if workers > 1 else {out: []}
    targets.update({report_path(shard_path(out, k)): [] for k in range(workers if workers > 1 else 0)})
    if workers <= 1 and write_all:
        targets.update({side_path(out, rule): [] for rule in (*RANKINGS, "sources")})
    if workers <= 1 and checkpoints > 1:
        targets.update({checkpoint_path(out, k): [] for k in range(checkpoints)})
    return [path for target, parts in targets.items() for path in (target, *parts)]


def output_lock(out: Path):
    """The lock of a submission path, or nothing where its directory is missing (the first write
    then names the path)."""
    from contextlib import nullcontext

    from arcsolver.locks import output_lock as lock

    return lock(out) if out.parent.is_dir() else nullcontext()


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
    from arcsolver.data.loaders import challenges_path_for
    from arcsolver.errors import SubmissionRejected
    from arcsolver.inputs import Inputs, refuse_outputs
    from arcsolver.solve.evaluate import evaluate_submission

    if challenges is not None and html is None:
        raise ArcsolverError("--challenges only feeds the HTML page: add --html PATH")
    inputs = Inputs().file("submission", submission).file("solutions file", solutions)
    inputs.file("challenges file", challenges if challenges is not None else challenges_path_for(solutions))
    csv_path = csv or (None if json_out else submission.with_name(f"{submission.stem}.scores.csv"))
    refuse_outputs([(option, path) for option, path in (("--csv", csv_path), ("--html", html)) if path], inputs)
    if csv_path is not None and html is not None and csv_path.resolve() == html.resolve():
        raise ArcsolverError(f"--csv and --html are both {html}: give each its own path")
    try:
        result = evaluate_submission(submission, solutions)
    except SubmissionRejected as e:
        report_rejection(e, json_out)
    if csv_path is not None:
        result.write_csv(csv_path)
    if html is not None:
        from arcsolver.report.html import write_evaluation_page

        used = write_evaluation_page(html, result, submission, solutions, challenges)
    if json_out:
        typer.echo(json.dumps(result.summary()))
        return
    # The paths above the table, not in its title: a title wraps to the table's width, mid-path.
    console.print(one_line(f"{submission} against {solutions}"), highlight=False, soft_wrap=True)
    console.print(score_table(result))
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


def score_table(result) -> Table:
    """The headline scores of an evaluation as a table."""
    table = Table()
    table.add_column("score", no_wrap=True)
    table.add_column("value", justify="right")
    table.add_row("pass@2 (competition score)", f"{result.pass_at_2:.4f}")
    table.add_row("pass@1", f"{result.pass_at_1:.4f}")
    table.add_row("per-cell accuracy (attempt_1)", f"{result.cell_accuracy:.4f}")
    table.add_row("tasks", str(result.n_tasks))
    table.add_row("tasks solved", str(result.solved_tasks))
    for kind, what in (("model", "the model's"), ("fallback", "fallbacks'")):
        if result.by_source is not None and result.by_source[kind]["test_outputs"]:
            part = result.by_source[kind]
            table.add_row(
                f"{what} answers ({part['test_outputs']} test outputs): pass@2, cells",
                f"{part['pass@2']:.4f}, {part['cell_accuracy']:.4f}",
            )
    return table
