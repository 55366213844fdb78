"""`arcsolver plan` (and `pretrain --plan`, its old name): what a pretraining run would do and
need, or a submit recipe's solve on Kaggle's 4 L4s, without training or writing anything."""

from __future__ import annotations

from pathlib import Path

import typer

from arcsolver.console import console, one_line, user_errors
from arcsolver.errors import ArcsolverError

MAX_GPU_GB = 100_000  # run.gpu_memory_gb's bound


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
