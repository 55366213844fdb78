"""Build the bundle a competitor uploads as a Kaggle dataset.

wheels/        arcsolver and every runtime dependency but torch, for each target Python (3.10 to
               3.13 by default: whichever Kaggle's image runs) on manylinux x86_64
checkpoint/    model.safetensors, ema.safetensors, state.json of one checkpoint (solving needs
               neither the optimiser moments nor the training carry), its puzzle table slimmed:
               new tasks only ever read the mean of its rows, so by default the table keeps the
               blank row and that mean; `--keep-rows` also keeps the trained rows of some tasks
               (puzzles.txt names them, puzzle_mean.safetensors holds the whole table's mean)
checkpoint-2/  the same of an ensemble's second checkpoint (with several --checkpoint), and so on:
...            the notebook's solve passes every one, and all their answers go into one vote
recipe.toml    the submit recipe
manifest.json  versions, each checkpoint's step, the requirements to install on each Python, and
               every file's size and SHA-256; written last, so a folder without it is an unfinished
               bundle

The wheels are wheels.py's, the slimmed checkpoints slim.py's and the manifest manifest.py's; here
the inputs are checked and the bundle is staged beside --out and renamed into place whole.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from pathlib import Path

from arcsolver.atomic import signals_raised, staged_folder
from arcsolver.errors import ArcsolverError, CheckpointError
from arcsolver.inputs import refuse_foreign_dir
from arcsolver.kaggle.manifest import (
    CHECKPOINT,
    MANIFEST,
    RECIPE,
    WHEELS,
    CheckpointInfo,
    Manifest,
    checkpoint_folder,
    file_entries,
    write_manifest,
)
from arcsolver.kaggle.slim import copy_checkpoint, kept_rows
from arcsolver.kaggle.wheels import (
    IMAGE_PYTHONS,
    build_wheel,
    download_dependencies,
    requirement_tools,
    runtime_requirements,
    scratch,
    source_tree,
    wheel_metadata,
)
from arcsolver.locks import Lock


def resolve_checkpoint(path: str | Path) -> tuple[Path, int]:
    """The checkpoint directory for path (validated by loading it on the CPU) and its step."""
    import torch

    from arcsolver.engine.checkpoint import find_checkpoint, read_state
    from arcsolver.engine.pretrained import load_model

    if not Path(path).exists():
        raise CheckpointError(f"{path}: no such checkpoint or run directory")
    ckpt_dir = find_checkpoint(path)
    load_model(ckpt_dir, torch.device("cpu"))
    return ckpt_dir, int(read_state(ckpt_dir).get("step", 0))


def refuse_occupied(out: Path) -> None:
    """A bundle goes into an absent or empty folder only: nothing there is ever written over. A
    folder of the user's is refused naming the files the bundle's would overwrite."""
    refuse_foreign_dir("--out", out, (MANIFEST, WHEELS, CHECKPOINT, RECIPE))
    if os.path.lexists(out) and (out.is_symlink() or not out.is_dir() or any(out.iterdir())):
        raise ArcsolverError(f"{out}: already exists and is not an empty folder; remove it or choose another --out")


def staging_prefix(out: Path) -> str:
    return f".{out.name}.partial-"


@contextmanager
def staged(out: Path, say: Callable[[str], None]):
    """A fresh folder beside out to build the bundle in (the caller renames it into place), removed
    on every exit: an error, Ctrl-C, or SIGTERM, which raises SystemExit(143) while it is held.
    Those a killed build (SIGKILL) left are removed first, saying so (see staged_folder)."""
    with signals_raised(lambda signum: SystemExit(128 + signum)), ExitStack() as stack:
        try:
            staging = stack.enter_context(staged_folder(out, staging_prefix(out), say))
        except OSError as e:
            raise ArcsolverError(
                f"{out.parent}: cannot write in it ({e.strerror or e}); choose another --out"
            ) from None
        yield staging


def build_bundle(
    checkpoints: str | Path | list[str | Path],
    out: Path,
    recipe: str = "kaggle",
    python_versions: tuple[str, ...] = IMAGE_PYTHONS,
    keep_rows: list[str] | None = None,
    say: Callable[[str], None] = lambda text: None,
) -> Manifest:
    """Write the bundle for a checkpoint (or a run's newest), or an ensemble's several, into out,
    which must be empty or absent, with wheels for each of python_versions; each puzzle table
    slimmed (see copy_checkpoint). Every input is checked before the first wheel is built; say
    tells of the unfinished bundles of killed builds removed."""
    from arcsolver.config import SolveConfig
    from arcsolver.recipes import load_recipe, recipe_path

    for version in python_versions:
        if not re.fullmatch(r"3\.\d+", version):
            raise ArcsolverError(f"--python-version {version!r}: expected major.minor, e.g. 3.12")
    pythons = sorted(set(python_versions), key=lambda v: int(v.split(".")[1]))
    if not pythons:
        raise ArcsolverError("no --python-version: name at least one Python the wheels are for, e.g. 3.12")
    out = Path(out)
    refuse_occupied(out)
    given = [checkpoints] if isinstance(checkpoints, (str, Path)) else list(checkpoints)
    if not given:
        raise ArcsolverError("no --checkpoint: name the checkpoint or run directory to bundle")
    resolved = [resolve_checkpoint(path) for path in given]  # each validated before any work
    seen: dict[Path, str | Path] = {}
    for path, (ckpt_dir, _) in zip(given, resolved):
        if ckpt_dir.resolve() in seen:
            raise ArcsolverError(
                f"--checkpoint {path}: the same checkpoint as --checkpoint {seen[ckpt_dir.resolve()]} "
                f"({ckpt_dir}); an ensemble's checkpoints must differ"
            )
        seen[ckpt_dir.resolve()] = path
    if keep_rows is not None:  # a mistyped task id is named now, not after the wheels are built
        for ckpt_dir, _ in resolved:
            kept_rows(ckpt_dir, keep_rows)
    load_recipe(SolveConfig, "submit", recipe)  # a recipe that does not validate here would fail on Kaggle
    recipe_file = recipe_path("submit", recipe)
    source = source_tree()
    requirement_tools()  # building the bundle needs packaging

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ArcsolverError(f"{out.parent}: cannot create it ({e.strerror or e}); choose another --out") from None
    # One bundle into out at a time: a second is refused in one line and touches nothing of the first's.
    with Lock(out.parent / f".{out.name}.lock", f"bundle {out}"), staged(out, say) as staging:
        refuse_occupied(out)  # written by another bundle since the first look
        metadata = wheel_metadata(build_wheel(source, staging / WHEELS))
        requirements = {version: runtime_requirements(metadata, version) for version in pythons}
        for version in pythons:
            download_dependencies(requirements[version], version, staging / WHEELS)
        infos = []
        for index, (ckpt_dir, step) in enumerate(resolved):
            folder = checkpoint_folder(index)
            slim = copy_checkpoint(ckpt_dir, staging / folder, keep_rows)
            infos.append(
                CheckpointInfo(
                    name=ckpt_dir.name,
                    folder=folder,
                    step=step,
                    table_rows=slim.rows,
                    full_table_rows=slim.full_rows,
                    full_bytes=slim.full_bytes,
                )
            )
        shutil.copyfile(recipe_file, staging / RECIPE)
        shutil.rmtree(scratch(staging / WHEELS), ignore_errors=True)
        manifest = Manifest(
            arcsolver=metadata["Version"],
            pythons=pythons,
            platform="manylinux x86_64",
            recipe=recipe_file.stem,
            checkpoint=infos[0],
            ensemble=infos[1:],
            requirements=requirements,
            files=file_entries(staging),
        )
        write_manifest(staging, manifest)
        os.replace(staging, out)  # out is absent or an empty folder, which rename replaces
    return manifest
