"""What a command that fills a run directory (pretrain, import-reference) may write there: nothing
of the user's, nothing it reads, and one run at a time (the run's lock)."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from arcsolver.errors import ArcsolverError


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


def refuse_filled_run(option: str, run_dir: Path) -> None:
    """Refuse, before any work, a run directory that holds anything (an imported run is written
    afresh): one line naming the files of the user's that the run's would overwrite."""
    from arcsolver.engine.card import CARD_FILE
    from arcsolver.engine.checkpoint import CHECKPOINTS
    from arcsolver.engine.pretrained import VERSIONS_FILE
    from arcsolver.inputs import refuse_filled_dir

    refuse_filled_dir(option, run_dir, ("config.json", CARD_FILE, VERSIONS_FILE, "metrics.jsonl", CHECKPOINTS))


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
