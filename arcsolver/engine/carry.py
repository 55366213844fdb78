"""The deep-supervision carry as the driver keeps it: one per canvas side (a sample's y and z only
meet its own canvas), cut into micro-batches for a step, and saved with each process's part of a
checkpoint as flat tensors named `side<S>.<field>`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields

import torch

from arcsolver.model.trm import TRM, Carry


def carry_slice(carry: Carry, s: slice) -> Carry:
    """The samples s of a carry (a micro-batch)."""
    return Carry(**{f.name: getattr(carry, f.name)[s] for f in fields(Carry)})


def carry_cat(parts: list[Carry]) -> Carry:
    """carry_slice's inverse: the micro-batches' carries as one."""
    if len(parts) == 1:
        return parts[0]
    return Carry(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(Carry)})


def carry_tensors(carry: Carry | None) -> dict[str, torch.Tensor]:
    """A carry's fields by name."""
    return {} if carry is None else {f.name: getattr(carry, f.name) for f in fields(carry)}


def on_side(side: int, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A carry's tensors under the names they have in a checkpoint: side<S>.<field>."""
    return {f"side{side}.{name}": t for name, t in tensors.items()}


def carries_tensors(carries: dict[int, Carry]) -> dict[str, torch.Tensor]:
    """The carries of a run, one per canvas side, as one flat dict: side<S>.<field>."""
    return {k: t for side, carry in carries.items() for k, t in on_side(side, carry_tensors(carry)).items()}


def split_carries(tensors: dict[str, torch.Tensor]) -> dict[int, dict[str, torch.Tensor]]:
    """carries_tensors' inverse: side -> that carry's fields (RNG states excluded)."""
    out: dict[int, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        prefix, _, name = key.partition(".")
        if prefix.startswith("side") and prefix[4:].isdigit() and name:
            out.setdefault(int(prefix[4:]), {})[name] = t
    return out


def carries_from_tensors(tensors: dict[str, torch.Tensor], device: torch.device) -> dict[int, Carry]:
    """The carries by canvas side of checked checkpoint tensors, on device."""
    return {
        side: Carry(**{k: v.to(device) for k, v in named.items()}) for side, named in split_carries(tensors).items()
    }


def fresh_carry_like(model: TRM, local_batch: int, device) -> Callable[[int], dict[str, torch.Tensor]]:
    """side -> the tensors of a fresh carry of this run on that canvas (what a checkpoint's must match)."""

    def like(side: int) -> dict[str, torch.Tensor]:
        cells = torch.zeros(local_batch, side, side, dtype=torch.long, device=device)
        batch = {
            "inputs": cells,
            "labels": cells,
            "puzzle_ids": torch.zeros(local_batch, dtype=torch.long, device=device),
        }
        return carry_tensors(model.initial_carry(batch))

    return like
