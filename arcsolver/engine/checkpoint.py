"""Checkpoints: the whole training state, weights in safetensors, written atomically.

A checkpoint is a directory `checkpoints/step_XXXXXXX/` holding:
  model.safetensors      network weights and the puzzle-embedding table
  ema.safetensors        the EMA of the weights (what evaluation and solving use)
  optimizer.safetensors  optimiser moments; its scalar state goes to state.json
  carry_rank<R>.safetensors  each process's deep-supervision carries (one per canvas side, as
                         side<S>.<field>) and torch RNG state
  state.json             step, world size, resolved config, optimiser hyperparameters
It is written under a temporary name and renamed into place, so a run killed at any moment
leaves only complete checkpoints (and a temporary folder, which the next run removes). Nothing here unpickles: loading never runs stored code.
Resuming reads one back whole and checks it against the live run (snapshot.py).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from arcsolver.atomic import plain_permissions
from arcsolver.engine.carry import carries_tensors
from arcsolver.errors import CheckpointError
from arcsolver.inputs import Inputs
from arcsolver.reader import check_input_file, read_json, weights_file

CHECKPOINTS = "checkpoints"
PREFIX = "step_"
MAX_STEP = 10**7 - 1  # the most a checkpoint's 7-digit name holds, and so the most that sorts right
# A checkpoint being written: .tmp-step_XXXXXXX-<host>-<pid of the main process> (see staging_dir).
STAGING = f".tmp-{PREFIX}"


def save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Write tensors as a safetensors file readable by whoever may read the folder (see plain_permissions)."""
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))
    plain_permissions(path)


def non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """The names of the floating-point tensors holding an inf or a NaN (one host sync per call:
    for checkpoints, never for every step)."""
    return [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file as a dict of CPU tensors; a clear error if it is missing or corrupt."""
    if not os.path.lexists(path):
        raise CheckpointError(f"{path}: missing from the checkpoint")
    try:
        return load_file(weights_file(path, CheckpointError))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing from the checkpoint") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None


def optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser's state_dict into tensors (for safetensors) and JSON-able rest."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for index, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def latest_checkpoint(run_dir: Path) -> Path | None:
    dirs = checkpoint_dirs(run_dir)
    return dirs[-1] if dirs else None


def staging_dir(run_dir: Path, step: int, owner: str) -> Path:
    """Where every process writes its part before the main process publishes the checkpoint: named
    after the main process (owner, its atomic.owner_tag), so that a later run knows the one a
    killed run left (atomic.remove_stale_staging)."""
    path = Path(run_dir) / CHECKPOINTS / f"{STAGING}{step:07d}-{owner}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_rank_part(staging: Path, rank: int, carries: dict) -> None:
    tensors = carries_tensors(carries)
    tensors["torch_rng"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["cuda_rng"] = torch.cuda.get_rng_state()
    save_tensors(tensors, staging / f"carry_rank{rank}.safetensors")


def write_main_part(staging: Path, model, ema, optimizer, state: dict) -> None:
    save_tensors(model.state_dict(), staging / "model.safetensors")
    if ema is not None:
        save_tensors(ema.state_dict(), staging / "ema.safetensors")
    opt_tensors, opt_meta = optimizer_state(optimizer)
    save_tensors(opt_tensors, staging / "optimizer.safetensors")
    (staging / "state.json").write_text(json.dumps({**state, "optimizer": opt_meta}, indent=1))


def publish(staging: Path, step: int, keep: int) -> Path:
    """Rename the staged checkpoint into place (atomic), then drop all but the newest `keep`."""
    final = staging.parent / f"{PREFIX}{step:07d}"
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    for old in checkpoint_dirs(staging.parent.parent)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_state(ckpt: Path) -> dict:
    """A checkpoint's state.json, which must hold a JSON object."""
    path = Path(ckpt) / "state.json"
    if not os.path.lexists(path):
        raise CheckpointError(f"{path}: missing; {ckpt} is not an arcsolver checkpoint")
    check_input_file(path, CheckpointError)  # a pipe or a device: said as such, not as corrupt
    try:
        state = read_json(path, CheckpointError)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: corrupt ({str(e).removeprefix(f'{path}: ')})") from None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path}: corrupt (an object of step, world_size, config and optimizer expected, "
            f"got {type(state).__name__})"
        )
    return state


def _is_count(value, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def read_training_state(ckpt: Path) -> dict:
    """state.json with everything resuming needs, each of the right type; CheckpointError otherwise."""
    state = read_state(ckpt)
    path = Path(ckpt) / "state.json"
    optimizer = state.get("optimizer")
    problems = [
        *(["step is not a count of steps"] if not _is_count(state.get("step"), 0) else []),
        *(["world_size is not a number of processes"] if not _is_count(state.get("world_size"), 1) else []),
        *(["config is not an object of settings"] if not isinstance(state.get("config"), dict) else []),
        *(
            ["optimizer is not an object of param_groups and scalars"]
            if not (
                isinstance(optimizer, dict)
                and isinstance(optimizer.get("param_groups"), list)
                and all(isinstance(g, dict) for g in optimizer["param_groups"])
                and isinstance(optimizer.get("scalars"), dict)
            )
            else []
        ),
    ]
    if not problems and state["step"] > MAX_STEP:
        problems.append(f"step {state['step']} is past the last a run can reach, {MAX_STEP}")
    named = Path(ckpt).name.removeprefix(PREFIX)
    if not problems and Path(ckpt).name.startswith(PREFIX) and named.isdigit() and int(named) != state["step"]:
        problems.append(f"step {state['step']} is not the step of its directory, {Path(ckpt).name}")
    if problems:
        raise CheckpointError(f"{path}: corrupt ({'; '.join(problems)})")
    return state


def run_inputs(inputs: Inputs, run_dir: Path) -> Inputs:
    """inputs with the files of a pretraining run that a command reading it relies on, and its
    checkpoints folder (read whole)."""
    for name in ("config.json", "metrics.jsonl", "puzzles.txt"):
        inputs.file(f"run's {name}", Path(run_dir) / name)
    return inputs.directory("run's checkpoints", Path(run_dir) / CHECKPOINTS)


def run_of(ckpt_dir: Path) -> Path | None:
    """The run directory a checkpoint lies in (RUN/checkpoints/step_N), or None for one that
    stands alone (a converted or bundled checkpoint)."""
    return ckpt_dir.parent.parent if ckpt_dir.parent.name == CHECKPOINTS else None


def checkpoint_inputs(inputs: Inputs, given: str | Path) -> Inputs:
    """inputs with a checkpoint, given it or its run: its folder (read whole), each of its files
    and, where it lies in a run, the run's. A path that names no checkpoint is taken as it is
    (reading it fails later, naming it)."""
    try:
        ckpt_dir = find_checkpoint(given)
    except (CheckpointError, OSError):
        return inputs.directory("checkpoint", given)
    inputs.directory("checkpoint", ckpt_dir)
    for name in ("model.safetensors", "ema.safetensors", "optimizer.safetensors", "state.json", "puzzles.txt"):
        inputs.file(f"checkpoint's {name}", ckpt_dir / name)
    run_dir = run_of(ckpt_dir)
    return run_inputs(inputs, run_dir) if run_dir is not None else inputs


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory, given it or a run directory (then its newest checkpoint)."""
    path = Path(path)
    if (path / "state.json").exists():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise CheckpointError(
            f"{path}: no checkpoint here (expected a run directory or a checkpoints/step_* directory)"
        )
    return latest
