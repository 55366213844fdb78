"""`arcsolver pretrain`, `arcsolver plan` (what a run would need, without training),
`arcsolver report` (a run's training curves) and `arcsolver compare` (runs side by side at
equal compute)."""

from __future__ import annotations

import os
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

import typer

from arcsolver.atomic import signals_raised
from arcsolver.console import console, one_line, user_errors
from arcsolver.errors import ArcsolverError

MAX_GPU_GB = 100_000  # run.gpu_memory_gb's bound


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


def refuse_foreign_run(option: str, run_dir: Path) -> None:
    """Refuse, before any work, a run directory that is not new, empty, or a run of ours: one line
    naming the files of the user's that the run's would overwrite (see refuse_foreign_dir). Under
    torchrun only rank 0 looks: the others may find what it has begun to write."""
    from arcsolver.engine.card import CARD_FILE
    from arcsolver.engine.checkpoint import CHECKPOINTS
    from arcsolver.engine.pretrained import VERSIONS_FILE
    from arcsolver.inputs import refuse_foreign_dir

    if os.environ.get("RANK", "0") == "0":
        refuse_foreign_dir(option, run_dir, ("config.json", CARD_FILE, VERSIONS_FILE, "metrics.jsonl", CHECKPOINTS))


def refuse_run_outputs(run_dir: Path, recipe: str | None, cfg) -> None:
    """Refuse, before any work, a run directory whose files would replace what the run reads: its
    recipe, or its data files and directories."""
    from arcsolver.engine.checkpoint import CHECKPOINTS
    from arcsolver.inputs import Inputs, refuse_output_dir, refuse_outputs
    from arcsolver.recipes import recipe_path

    inputs = Inputs().file("recipe", recipe_path("pretrain", recipe) if recipe else None)
    for source in [*cfg.data.train_sets, *cfg.data.heldout_sets]:
        inputs.data("data set", source)
    for folder in (run_dir, run_dir / CHECKPOINTS):
        refuse_output_dir("--out", folder, inputs)
    refuse_outputs([("--out", run_dir / name) for name in ("config.json", "puzzles.txt", "metrics.jsonl")], inputs)


@contextmanager
def locked_run(run_dir: Path):
    """Hold the run directory's lock (created with the directory if need be) for the block: a
    second run into it is refused in one line naming the holder. Under torchrun only the process
    of rank 0 takes it. A directory this created and nothing wrote into is removed again."""
    from arcsolver.locks import run_lock

    if os.environ.get("RANK", "0") != "0":
        yield
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise ArcsolverError(f"--out {run_dir}: not a directory; give the path of a run directory")
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ArcsolverError(f"--out {run_dir}: cannot create it ({e.strerror or e})") from None
    lock = run_lock(run_dir)
    try:
        with lock:
            yield
    finally:
        if created and {p.name for p in run_dir.iterdir()} <= {lock.path.name}:
            shutil.rmtree(run_dir, ignore_errors=True)


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
    rate_from: Path = typer.Option(
        None,
        "--rate-from",
        help="A run of this recipe on your hardware (a short time-limited one will do): its steady "
        "samples/s gives the whole run's hours.",
    ),
    submit: str = typer.Option(
        None,
        "--submit",
        help="Plan this submit recipe instead (a file or a shipped name, e.g. kaggle): its hours on 4 L4 GPUs "
        "for the 120 ARC-AGI-2 evaluation tasks.",
    ),
    checkpoint: list[str] = typer.Option(
        [],
        "--checkpoint",
        help="With --submit: a checkpoint or run directory the solve runs (repeat it for an ensemble), priced by "
        "its layout, canvas and size. Default: the recipe's run.checkpoints, else the paper-sized rope2d TRM.",
    ),
) -> None:
    """Print what a pretraining run would do and need: data, schedule, canvases, memory per
    sample and the micro-batch for each GPU size; with --rate-from, its length in hours. With
    --submit, what a submit recipe's solve would take on the competition's 4 L4s with the
    --checkpoint given. Nothing is trained or written."""
    if submit is not None:
        from arcsolver.config import SolveConfig
        from arcsolver.recipes import load_recipe, recipe_path
        from arcsolver.solve.plan import checkpoints_to_plan, solve_plan

        if recipe is not None or rate_from is not None:
            raise ArcsolverError("--submit plans a submit recipe: give it without --recipe and --rate-from")
        cfg = load_recipe(SolveConfig, "submit", submit, set_)
        planned = checkpoints_to_plan(list(checkpoint) or list(cfg.run.checkpoints))
        console.print(one_line(f"plan of {recipe_path('submit', submit)}"), highlight=False, soft_wrap=True)
        for line in solve_plan(cfg, planned):
            console.print(one_line(line), highlight=False, soft_wrap=True)
        return
    if checkpoint:
        raise ArcsolverError("--checkpoint prices the plan of a submit recipe: give it with --submit RECIPE")
    print_plan(recipe, set_, gpu_memory, processes, rate_from)


def print_plan(
    recipe: str | None, overrides: list[str], gpu_memory: list[float], processes: int, rate_from: Path | None = None
) -> None:
    """The lines of `arcsolver plan` (and of `pretrain --plan`, its old name)."""
    import math

    from arcsolver.config import PretrainConfig
    from arcsolver.recipes import load_recipe
    from arcsolver.train.plan import measured_rate, plan

    if processes < 1:
        raise ArcsolverError(f"--processes {processes}: give 1 or more")
    for gb in gpu_memory:
        if not (math.isfinite(gb) and 0 < gb <= MAX_GPU_GB):
            raise ArcsolverError(
                f"--gpu-memory {gb}: not a GPU size; give its memory in GB, above 0 and at most {MAX_GPU_GB:,}"
            )
    cfg = load_recipe(PretrainConfig, "pretrain", recipe or "cpu-small", overrides)
    batch = cfg.optim.global_batch_size
    if processes > batch or batch % processes:
        raise ArcsolverError(
            f"--processes {processes}: optim.global_batch_size {batch} does not split over them; "
            f"give a divisor of {batch}"
        )
    rate = measured_rate(Path(rate_from), cfg) if rate_from is not None else None
    # What it is doing, while it does it (dim), then the plan.
    say = lambda text: console.print(f"[dim]{one_line(text)}", highlight=False)  # noqa: E731
    for line in plan(cfg, gpu_memory, processes, say, rate):
        console.print(one_line(line), highlight=False, soft_wrap=True)


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
    from arcsolver.report.compare import METRICS, compare_runs, plot_compared

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
