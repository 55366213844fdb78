"""A shard worker of `arcsolver solve --workers N`, started by shards.py: it solves shard K of N
(every N-th task of the challenges from the K-th on) into its own files and ends with its parent.

    python -m arcsolver.solve.worker K/N --recipe=R [--time-budget=S] [--set=KEY=VALUE ...] -- CHALLENGES OUT CHECKPOINT...

The paths come after `--`, so that a path starting with a dash is never read as an option.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import arcsolver
from arcsolver.atomic import atomic_write_json
from arcsolver.config import SolveConfig
from arcsolver.console import console, err_console, one_line
from arcsolver.errors import ArcsolverError
from arcsolver.recipes import load_recipe
from arcsolver.solve.shards import exit_with_parent, report_path
from arcsolver.solve.solver import solve, summary_line, unwritten_error


def worker_command(
    k: int,
    n: int,
    challenges: Path,
    out: Path,
    checkpoints: list[str],
    recipe: str,
    overrides: list[str],
    time_budget_s: float | None,
) -> list[str]:
    """The command line of shard k of n's worker (for subprocess, without a shell)."""
    options = [f"--recipe={recipe}", *[f"--set={s}" for s in overrides]]
    if time_budget_s:
        options.append(f"--time-budget={time_budget_s}")
    return [
        sys.executable,
        "-c",
        # `python -m` puts the current directory first on the path, so a stray arcsolver/ there
        # would be imported instead of ours: drop it, then run the module as -m would (-P does
        # this from Python 3.11 on; this also runs on 3.10).
        "import runpy, sys; del sys.path[0]; runpy.run_module('arcsolver.solve.worker', run_name='__main__', alter_sys=True)",
        f"{k}/{n}",
        *options,
        "--",
        str(challenges),
        str(out),
        *checkpoints,
    ]


def write_report(out: Path, report) -> None:
    """The shard's counts, for the parent's last line: tasks, answered by the model, fallbacks."""
    counts = {"tasks": report.tasks, "solved_by_model": report.solved_by_model, "fallbacks": report.fallback_only}
    try:
        atomic_write_json(report_path(out), counts)
    except OSError:
        pass  # the parent then counts the shard as answered by none: never more than the truth


def parse_shard(text: str) -> tuple[int, int]:
    """K/N as (K, N), with 0 <= K < N."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text, re.ASCII)
    if match and int(match[1]) < int(match[2]):
        return int(match[1]), int(match[2])
    raise ArcsolverError(f"shard {text}: expected K/N with 0 <= K < N, e.g. 0/2 (the first of two shards)")


def main(argv: list[str] | None = None) -> int:
    """Run one shard worker; its exit status."""
    parser = argparse.ArgumentParser(prog="python -m arcsolver.solve.worker", description=__doc__.splitlines()[0])
    parser.add_argument("shard", help="K/N: solve shard K of N")
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--time-budget", type=float)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("challenges", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("checkpoints", nargs="+")
    args = parser.parse_args(argv)
    try:
        shard = parse_shard(args.shard)
        overrides = list(args.overrides)
        if args.time_budget is not None:
            overrides.append(f"run.time_budget_s={args.time_budget}")
        cfg = load_recipe(SolveConfig, "submit", args.recipe, overrides)
        exit_with_parent()  # an orphan has no one to merge its file
        report = solve(
            args.challenges, args.out, args.checkpoints, cfg, console, shard=shard, started=arcsolver.STARTED
        )
        write_report(args.out, report)
        if report.unwritten:
            raise unwritten_error(report)
    except ArcsolverError as e:
        err_console.print(f"[bold red]error:[/] {one_line(str(e))}", highlight=False, soft_wrap=True)
        return 1
    console.print(one_line(summary_line(args.out, report)), highlight=False, soft_wrap=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
