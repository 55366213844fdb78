"""A checkpoint as the bundle holds it: what solving reads of it (neither the optimiser moments nor
the training carry), its puzzle table slimmed to the blank row and the mean of the trained rows,
which is all a new task reads; `--keep-rows` also keeps the trained rows of some tasks (puzzles.txt
names them, puzzle_mean.safetensors holds the whole table's mean)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from arcsolver.errors import CheckpointError
from arcsolver.reader import check_regular_file, read_text

CHECKPOINT_FILES = ("model.safetensors", "ema.safetensors", "state.json", "puzzles.txt", "puzzle_mean.safetensors")


@dataclass
class Slimmed:
    rows: int  # the bundle's puzzle-table rows, the blank one included
    full_rows: int
    full_bytes: int  # the checkpoint's files as they were


def kept_rows(ckpt_dir: Path, keep_rows: list[str]) -> tuple[Path, list[str], list[int]]:
    """The rows of a checkpoint's puzzle table (numbered from 1, after the blank row) that keep_rows
    (task ids, or ["all"]) keeps, with the file naming the rows and its names; CheckpointError where
    it keeps none (a mistyped id, or tasks the checkpoint never trained on) or the names do not fit
    the table. Reads the names and the table's header only: cheap enough to check before any work."""
    from safetensors import safe_open

    from arcsolver.data.augment import split_augmented_id
    from arcsolver.engine.checkpoint import run_of
    from arcsolver.engine.pretrained import TABLE_KEY, VERSIONS_FILE

    # A converted checkpoint names its rows itself; a pretraining run's checkpoints share the
    # run's puzzles.txt.
    names_path, run_dir = ckpt_dir / VERSIONS_FILE, run_of(ckpt_dir)
    if not names_path.exists() and run_dir is not None:
        names_path = run_dir / VERSIONS_FILE
    names = read_text(names_path, CheckpointError).splitlines() if names_path.exists() else []
    with safe_open(str(ckpt_dir / "model.safetensors"), framework="pt") as f:
        full_rows = f.get_slice(TABLE_KEY).get_shape()[0]
    wanted = set(keep_rows)
    if names and len(names) != full_rows - 1:
        raise CheckpointError(
            f"{names_path}: names {len(names)} rows, the puzzle table of {ckpt_dir / 'model.safetensors'} "
            f"has {full_rows - 1}; bundle it without --keep-rows"
        )
    try:
        kept = [
            row for row, name in enumerate(names, start=1) if "all" in wanted or split_augmented_id(name)[0] in wanted
        ]
    except ValueError as e:
        raise CheckpointError(f"{names_path}: {e}; bundle it without --keep-rows") from None
    if not kept:
        shown = ", ".join(sorted(wanted)[:3]) + (f" and {len(wanted) - 3} more" if len(wanted) > 3 else "")
        raise CheckpointError(
            f"--keep-rows: no task of {shown} has a trained row in {names_path} "
            f"({len(names)} rows); give tasks it names, or all"
        )
    return names_path, names, kept


def copy_checkpoint(ckpt_dir: Path, dest: Path, keep_rows: list[str] | None = None) -> Slimmed:
    """Copy what solving reads of a checkpoint into dest, its puzzle table cut to the blank row and
    the mean of the trained rows, which is all a new task reads; keep_rows (task ids, or ["all"])
    keeps the trained rows of those of its named tasks (see kept_rows), with the mean in MEAN_FILE."""
    import torch
    from safetensors import safe_open

    from arcsolver.engine.checkpoint import save_tensors
    from arcsolver.engine.pretrained import MEAN_FILE, TABLE_KEY, VERSIONS_FILE, table_mean_rows

    dest.mkdir(parents=True)
    full_bytes = sum((ckpt_dir / n).stat().st_size for n in CHECKPOINT_FILES if (ckpt_dir / n).exists())
    for name in ("ema.safetensors", "state.json"):
        if (ckpt_dir / name).exists():
            check_regular_file(ckpt_dir / name, CheckpointError)  # a FIFO would block the copy
            shutil.copyfile(ckpt_dir / name, dest / name)  # not its mode: a checkpoint's may be private
    with safe_open(str(ckpt_dir / "model.safetensors"), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys() if k != TABLE_KEY}
        table = f.get_slice(TABLE_KEY)
        full_rows = table.get_shape()[0]
        blank_and_mean = table_mean_rows(table)
        if keep_rows is None:
            tensors[TABLE_KEY] = blank_and_mean
        else:
            _, names, kept = kept_rows(ckpt_dir, keep_rows)
            tensors[TABLE_KEY] = torch.cat([table[0:1], *(table[row : row + 1] for row in kept)])
            (dest / VERSIONS_FILE).write_text("".join(names[row - 1] + "\n" for row in kept), encoding="utf-8")
            save_tensors({TABLE_KEY: blank_and_mean[1:]}, dest / MEAN_FILE)
    save_tensors(tensors, dest / "model.safetensors")
    return Slimmed(len(tensors[TABLE_KEY]), full_rows, full_bytes)
