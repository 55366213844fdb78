"""`arcsolver pretrain`: a run into its directory, refused before any work where that would write
over what is not a run's (run_dir.py), stopped by Ctrl-C or SIGTERM without a traceback."""

from __future__ import annotations

import signal
from pathlib import Path

import typer

from arcsolver.atomic import signals_raised
from arcsolver.cli.plan import print_plan
from arcsolver.cli.run_dir import locked_run, refuse_foreign_run, refuse_run_outputs
from arcsolver.console import console, one_line, user_errors
from arcsolver.errors import ArcsolverError


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
    if not resume:  # a resumed run is proven ours by its checkpoints, read before anything is written
        refuse_foreign_run("--out", run_dir)  # before its lock is written: a user's folder is left as it was
    with locked_run(run_dir):  # before anything in it is read or written
        if resume and recipe is None and (run_dir / "config.json").exists():
            cfg = resumed_settings(run_dir / "config.json", set_)
        else:
            if ckpt.latest_checkpoint(run_dir) is not None and not resume:
                raise ArcsolverError(
                    f"{run_dir}: already holds a run: pass --resume to continue it, or choose another --out"
                )
            cfg = load_recipe(PretrainConfig, "pretrain", recipe or "cpu-small", set_)
        refuse_run_outputs(run_dir, recipe, cfg)
        with signals_end_quietly():
            result = run_pretrain(cfg, run_dir, resume=resume, console=console)
            if result.signal is not None:
                # On its way out: a later Ctrl-C (a second press) must not print a traceback.
                for signum in QUIET_SIGNALS:
                    signal.signal(signum, signal.SIG_IGN)
                raise typer.Exit(128 + result.signal)
    if result.scores:
        scores = result.scores
        console.print(
            f"held-out: pass@1 {scores['pass@1']:.3f}  pass@2 {scores['pass@2']:.3f}  "
            f"cells {scores['cell_accuracy']:.3f}  "
            + (f"loss {scores['loss']:.4f}  " if "loss" in scores else "")
            + f"({scores['tasks']} tasks) after {result.step} steps; run in {one_line(str(run_dir))}",
            highlight=False,
            soft_wrap=True,
        )


QUIET_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def signals_end_quietly():
    """Ctrl-C or SIGTERM where the training loop does not handle them (set-up, and the moments
    between its end and the process's) end the process with 128 + the signal, without a
    traceback. The loop's own handling (stop after the step, checkpoint) comes inside this."""
    return signals_raised(lambda signum: SystemExit(128 + signum), QUIET_SIGNALS)
