"""A checkpoint read back whole for resuming: every file this process needs, each checked against
the live model, EMA, optimiser and carries before any of them is changed; CheckpointError names
the file."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from arcsolver.engine.carry import on_side, split_carries
from arcsolver.engine.checkpoint import load_tensors, non_finite
from arcsolver.errors import CheckpointError


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
