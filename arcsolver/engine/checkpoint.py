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
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from arcsolver.atomic import plain_permissions
from arcsolver.engine.carry import carries_tensors, on_side, split_carries
from arcsolver.errors import CheckpointError
from arcsolver.inputs import Inputs, check_input_file, read_json, weights_file

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


@dataclass
class Snapshot:
    """A checkpoint read whole and checked against the live training objects, none of them changed yet."""

    path: Path
    step: int
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None  # None: no EMA in the run, or none saved
    optimizer: dict  # the optimiser's state_dict
    carry: dict[str, torch.Tensor] | None  # this process's carry and RNG state; None: start afresh


def _shape(t) -> str:
    return "x".join(map(str, t.shape)) or "scalar"


def _check_like(tensors: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: Path, what: str) -> None:
    """The same names and shapes as expected; CheckpointError naming the first differences."""
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    reshaped = [
        f"{k} is {_shape(tensors[k])} not {_shape(expected[k])}"
        for k in expected
        if k in tensors and tensors[k].shape != expected[k].shape
    ]
    problems = [
        *([f"missing {', '.join(missing[:3])}"] if missing else []),
        *([f"unexpected {', '.join(unexpected[:3])}"] if unexpected else []),
        *reshaped[:3],
    ]
    if problems:
        raise CheckpointError(f"{path}: not {what} ({'; '.join(problems)})")


def _optimizer_state_dict(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict, path: Path) -> dict:
    """The optimiser state_dict a checkpoint holds (path: its tensors), checked against the live
    optimiser: the same groups with the same hyperparameter names (from state.json), and moments
    shaped like their parameters."""
    live = opt.state_dict()["param_groups"]
    saved = meta["param_groups"]
    if len(saved) != len(live):
        raise CheckpointError(
            f"{path.parent / 'state.json'}: the optimiser settings of another model "
            f"({len(saved)} parameter groups, not {len(live)})"
        )
    for mine, theirs in zip(live, saved):
        missing, unexpected = sorted(set(mine) - set(theirs)), sorted(set(theirs) - set(mine))
        if missing or unexpected or theirs["params"] != mine["params"]:
            what = (
                "; ".join(
                    [
                        *([f"missing {', '.join(missing)}"] if missing else []),
                        *([f"unexpected {', '.join(unexpected)}"] if unexpected else []),
                    ]
                )
                or "other parameters"
            )
            raise CheckpointError(
                f"{path.parent / 'state.json'}: the optimiser settings of another optimiser or model ({what})"
            )
    params = [p for group in opt.param_groups for p in group["params"]]
    state: dict[int, dict] = {}
    for name, value in [*tensors.items(), *meta["scalars"].items()]:
        index, _, key = name.partition(".")
        if not index.isdigit() or int(index) >= len(params) or not key:
            raise CheckpointError(f"{path}: optimiser state {name!r} names no parameter of this model")
        if torch.is_tensor(value) and value.ndim and value.shape != params[int(index)].shape:
            raise CheckpointError(
                f"{path}: optimiser state {name} is {_shape(value)}, its parameter {_shape(params[int(index)])}"
            )
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": saved}


def read_snapshot(ckpt: Path, state: dict, model, ema, optimizer, rank: int, world_size: int, carry_like) -> Snapshot:
    """Read every file of a checkpoint this process needs and check each against the live model,
    EMA, optimiser and carries (carry_like(side): a fresh carry of this run on that canvas);
    CheckpointError names the file."""
    ckpt = Path(ckpt)
    weights = load_tensors(ckpt / "model.safetensors")
    _check_like(weights, model.state_dict(), ckpt / "model.safetensors", "the weights of this run's model")
    ema_tensors = None
    if ema is not None and (ckpt / "ema.safetensors").exists():
        ema_tensors = load_tensors(ckpt / "ema.safetensors")
        _check_like(ema_tensors, ema.state_dict(), ckpt / "ema.safetensors", "the EMA of this run's model")
    for name, tensors in (("model", weights), ("ema", ema_tensors or {})):
        if bad := non_finite(tensors):
            raise CheckpointError(f"{ckpt / name}.safetensors: {len(bad)} tensors hold inf or NaN (a diverged run)")
    opt_path = ckpt / "optimizer.safetensors"
    opt_tensors = load_tensors(opt_path)
    # Moments of inf or NaN make the first step's update inf or NaN: as dead as such weights.
    bad = non_finite(opt_tensors) + [
        k for k, v in state["optimizer"]["scalars"].items() if isinstance(v, float) and not math.isfinite(v)
    ]
    if bad:
        raise CheckpointError(f"{opt_path}: {len(bad)} optimiser moments hold inf or NaN ({bad[0]}; a diverged run)")
    opt_state = _optimizer_state_dict(optimizer, opt_tensors, state["optimizer"], opt_path)
    carry = None
    part = ckpt / f"carry_rank{rank}.safetensors"
    if state["world_size"] == world_size and part.exists():
        carry = load_tensors(part)
        tensors = {k: v for k, v in carry.items() if k != "cuda_rng"}  # a GPU run's, unused on a CPU
        # Each carry holds every field of a fresh one on its canvas; a checkpoint written before
        # the first step holds none.
        expected = {"torch_rng": torch.get_rng_state()}
        for side in split_carries(tensors):
            if not 1 <= side <= model.config.canvas:
                raise CheckpointError(f"{part}: not a carry of this run (a {side}x{side} canvas)")
            expected |= on_side(side, carry_like(side))
        _check_like(tensors, expected, part, "a carry of this run")
        if bad := non_finite(tensors):
            raise CheckpointError(f"{part}: {len(bad)} carried tensors hold inf or NaN ({bad[0]}; a diverged run)")
        if tensors["torch_rng"].dtype != torch.uint8:
            raise CheckpointError(
                f"{part}: not a carry of this run (torch_rng is {tensors['torch_rng'].dtype}, not uint8)"
            )
    return Snapshot(ckpt, state["step"], weights, ema_tensors, opt_state, carry)


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
