"""Checkpoints: the whole training state, weights in safetensors, written atomically.

A checkpoint is a directory `checkpoints/step_XXXXXXX/` holding:
  model.safetensors      network weights and the puzzle-embedding table
  ema.safetensors        the EMA of the weights (what evaluation and solving use)
  optimizer.safetensors  optimiser moments; its scalar state goes to state.json
  carry_rank<R>.safetensors  each process's deep-supervision carry and torch RNG state
  state.json             step, world size, resolved config, optimiser hyperparameters
It is written under a temporary name and renamed into place, so a run killed at any moment
leaves only complete checkpoints. Nothing here unpickles: loading never runs stored code.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from arcsolver.errors import CheckpointError

CHECKPOINTS = "checkpoints"
PREFIX = "step_"


def _save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file as a dict of CPU tensors; a clear error if it is missing or corrupt."""
    try:
        return load_file(str(path))
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


def load_optimizer_state(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for name, value in [*tensors.items(), *meta["scalars"].items()]:
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def carry_tensors(carry) -> dict[str, torch.Tensor]:
    return {} if carry is None else {f.name: getattr(carry, f.name) for f in fields(carry)}


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def latest_checkpoint(run_dir: Path) -> Path | None:
    dirs = checkpoint_dirs(run_dir)
    return dirs[-1] if dirs else None


def staging_dir(run_dir: Path, step: int) -> Path:
    """Where every process writes its part before the main process publishes the checkpoint."""
    path = Path(run_dir) / CHECKPOINTS / f".tmp-{PREFIX}{step:07d}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_rank_part(staging: Path, rank: int, carry) -> None:
    tensors = carry_tensors(carry)
    tensors["torch_rng"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["cuda_rng"] = torch.cuda.get_rng_state()
    _save(tensors, staging / f"carry_rank{rank}.safetensors")


def write_main_part(staging: Path, model, ema, optimizer, state: dict) -> None:
    _save(model.state_dict(), staging / "model.safetensors")
    if ema is not None:
        _save(ema.state_dict(), staging / "ema.safetensors")
    opt_tensors, opt_meta = optimizer_state(optimizer)
    _save(opt_tensors, staging / "optimizer.safetensors")
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
    path = Path(ckpt) / "state.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing; {ckpt} is not an arcsolver checkpoint") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: corrupt ({e.msg})") from None


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory, given it or a run directory (then its newest checkpoint)."""
    path = Path(path)
    if (path / "state.json").exists():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise CheckpointError(f"{path}: no checkpoint here (expected a run directory or a checkpoints/step_* directory)")
    return latest
