"""Commands that read finished pretraining runs: `arcsolver report` (a run's training curves),
`arcsolver evaluate-run` (its held-out evaluation over kept checkpoints) and `arcsolver compare`
(runs side by side at equal compute)."""

from __future__ import annotations

from pathlib import Path

import typer

from arcsolver.console import console, one_line, user_errors
from arcsolver.errors import ArcsolverError


@user_errors
def report(
    run_dir: Path = typer.Argument(..., help="A training run directory (it holds metrics.jsonl)."),
    out: Path = typer.Option(None, "--out", help="The PNG to write (default: RUN_DIR/curves.png)."),
) -> None:
    """Draw a training run's curves (loss, accuracy, halting steps, held-out pass@k) into a PNG."""
    from arcsolver.engine.checkpoint import run_inputs
    from arcsolver.inputs import Inputs, refuse_outputs, refuse_overwrites
    from arcsolver.report.curves import plot_training_curves

    if out is None:  # into the run: over its own curves only, never over a file of the user's
        refuse_overwrites("RUN_DIR", run_dir, ["curves.png"])
    out = out or run_dir / "curves.png"
    refuse_outputs([("--out", out)], run_inputs(Inputs(), run_dir))
    path = plot_training_curves(run_dir, out)
    console.print(f"wrote {one_line(str(path))}", highlight=False, soft_wrap=True)


@user_errors
def evaluate_run(
    run: Path = typer.Argument(..., help="A pretraining run directory."),
    checkpoints: str = typer.Option(
        "last:1",
        "--checkpoints",
        help="Which kept checkpoints: last:N (the newest N), all, or steps such as 1000,2000.",
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a setting of the run: --set eval.n_supervision=32 (repeatable)."
    ),
) -> None:
    """The held-out evaluation of a run over its kept checkpoints: each alone, and all of them voting
    together (an ensemble), with the run's eval settings and --set. Appends the record to the
    run's evaluations.jsonl."""
    from arcsolver.recipes import resumed_settings
    from arcsolver.train.evaluate_run import evaluate_run as run_evaluation
    from arcsolver.train.evaluate_run import pick_checkpoints

    if not (run / "config.json").is_file():
        raise ArcsolverError(f"{run}: no config.json: give the directory of a pretraining run")
    cfg = resumed_settings(run / "config.json", set_)
    chosen = pick_checkpoints(run, checkpoints)
    say = lambda text: console.print(one_line(text), highlight=False, soft_wrap=True)  # noqa: E731
    record = run_evaluation(run, cfg, chosen, say)
    scores = record["ensemble"]
    what = f"{len(chosen)} checkpoints voting together" if len(chosen) > 1 else chosen[0].name
    say(
        f"held-out ({what}; T {record['n_recursions']}, N_sup {record['n_supervision']}, "
        f"{record['rollouts']} rollouts): pass@1 {scores['pass@1']:.3f}  pass@2 {scores['pass@2']:.3f}  "
        f"cells {scores['cell_accuracy']:.3f}  ({scores['tasks']} tasks); recorded in {run / 'evaluations.jsonl'}"
    )


@user_errors
def compare(
    runs: list[Path] = typer.Argument(
        ..., help="Pretraining run directories (each holds config.json and metrics.jsonl)."
    ),
    at: str = typer.Option(
        "flops",
        "--at",
        help="flops: each run's last held-out evaluation at or below the least training FLOPs every run reached "
        "(equal compute); last: each run's last evaluation.",
    ),
    metric: str = typer.Option(
        "loss", "--metric", help="The metric of the verdicts: loss (held-out), cell_accuracy, pass@1 or pass@2."
    ),
    png: Path = typer.Option(Path("compare.png"), "--png", help="The PNG of every run's curves against FLOPs."),
) -> None:
    """Compare runs that differ in one setting, each over several seeds: held-out loss, cell
    accuracy, pass@1 and pass@2 per group (mean and spread over seeds), a verdict per group
    against the first, and every run's curves against training FLOPs in a PNG."""
    from arcsolver.engine.checkpoint import run_inputs
    from arcsolver.inputs import Inputs, refuse_outputs
    from arcsolver.report.compare import compare_runs
    from arcsolver.report.compare_plot import plot_compared
    from arcsolver.report.runs import METRICS

    inputs = Inputs()
    for run_dir in runs:
        run_inputs(inputs, run_dir)
    refuse_outputs([("--png", png)], inputs)
    if at not in ("flops", "last"):
        raise ArcsolverError(f"--at {at}: give flops or last")
    if metric not in METRICS:
        raise ArcsolverError(f"--metric {metric}: give one of {', '.join(METRICS)}")
    groups, lines = compare_runs(runs, at, metric)
    for line in lines:
        console.print(line, highlight=False, soft_wrap=True, markup=False)
    path = plot_compared(groups, png)
    console.print(f"wrote {one_line(str(path))}", highlight=False, soft_wrap=True)
