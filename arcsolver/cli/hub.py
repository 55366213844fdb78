"""`arcsolver push`: a run directory to a model repository of the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path

import typer

from arcsolver.console import console, one_line, user_errors


@user_errors
def push(
    run: Path = typer.Argument(..., metavar="RUN", help="A run directory (its newest checkpoint) or a checkpoint."),
    to: str = typer.Option(..., "--to", help="The Hub repository, hf:OWNER/REPO (created if it does not exist)."),
) -> None:
    """Upload a run's weights (safetensors), config, model card (README.md) and puzzles.txt to the
    Hugging Face Hub: only the run's own regular files (a link leading out of it is refused), its
    checkpoint loaded first as solve loads it. Needs the hub extra and a token (hf auth login, or
    HF_TOKEN)."""
    from arcsolver.hub import push_run

    where, files = push_run(run, to)
    size = sum(p.stat().st_size for p in files.values())
    console.print(
        one_line(f"pushed {len(files)} files ({size / 1e6:.1f} MB) to {where}: {', '.join(files)}"),
        highlight=False,
        soft_wrap=True,
    )
