"""A checkpoint of the TRM reference code as an arcsolver run directory, which `solve`,
`evaluate` and `kaggle bundle` take as they take a run of `arcsolver pretrain`: read and checked
by arcsolver.reference.checkpoint, then written whole under a temporary name and renamed into place:

    config.json                     the settings (PretrainConfig; the model's from the reference)
    checkpoints/step_<N>/           model.safetensors (the whole puzzle table), state.json, and
                                    puzzles.txt: the task version of each row, named as arcsolver
                                    names them, where the reference data set's identifiers.json
                                    was given. solve then answers those tasks with those versions
                                    and rows, as the reference evaluates them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError

from arcsolver.atomic import staged_folder, terminations_raised, write_problem
from arcsolver.config import PretrainConfig
from arcsolver.engine import checkpoint as ckpt
from arcsolver.engine.card import CARD_FILE, imported_card
from arcsolver.engine.pretrained import VERSIONS_FILE
from arcsolver.errors import ArcsolverError
from arcsolver.reference.checkpoint import STEP, Reference, read_reference
from arcsolver.reference.names import check_identifiers, read_identifiers, version_names


@dataclass
class Imported:
    """What import_reference wrote and from what."""

    out: Path
    checkpoint: Path  # the converted checkpoint directory inside out
    config: PretrainConfig
    rows: int  # puzzle-table rows, the blank one included
    settings_file: Path | None  # the all_config.yaml read, if any
    assumed: dict[str, Any] = field(default_factory=dict)  # our model setting -> value taken on trust
    named_rows: bool = False  # puzzles.txt written from identifiers.json


def import_reference(
    checkpoint: Path,
    out: Path,
    identifiers: Path | tuple[str, list[str]] | None = None,
    overrides: Sequence[str] = (),
    origin: str | None = None,
) -> Imported:
    """Convert a reference checkpoint (its step_<N> file, or its directory) into the run
    directory out, which must not exist or be empty (read_reference, then write_reference)."""
    return write_reference(read_reference(checkpoint, out, overrides), out, identifiers, origin)


def write_reference(
    reference: Reference,
    out: Path,
    identifiers: Path | tuple[str, list[str]] | None = None,
    origin: str | None = None,
    say: Callable[[str], None] = lambda text: None,
) -> Imported:
    """Write a reference checkpoint read by read_reference as the run directory out. identifiers
    names the puzzle table's rows: the reference data set's identifiers.json, or (the data set's
    name, its rows' names) as arcsolver.reference.names rebuilds them. Errors name the file or
    weight and what was expected; nothing is left in out unless the whole run was written. origin
    names the checkpoint in the run's model card where it came from elsewhere (a Hub path); say
    tells of the unfinished runs of killed imports removed."""
    out, path, cfg, rows = Path(out), reference.path, reference.config, reference.rows
    names = None
    if isinstance(identifiers, tuple):
        name, rebuilt = identifiers
        names = version_names(check_identifiers(rebuilt, rows, f"the rows of {name}"), Path(name))
    elif identifiers is not None:
        names = version_names(read_identifiers(identifiers, rows), identifiers)
    match = STEP.fullmatch(path.name)
    step = int(match.group(1)) if match else 0
    arch_file = reference.settings_file
    state = {
        "step": step,
        "world_size": 1,
        "config": cfg.model_dump(mode="json"),
        "imported_from": {"checkpoint": str(path.resolve()), "settings": str(arch_file) if arch_file else None},
    }
    named = identifiers[0] if isinstance(identifiers, tuple) else str(identifiers) if identifiers else None
    card = imported_card(cfg, origin or str(path), step, rows, named)
    written = write_run(out, step, reference.model.state_dict(), cfg, state, names, card, say)
    return Imported(out, written, cfg, rows, arch_file, reference.assumed, names is not None)


def write_run(
    out: Path,
    step: int,
    weights: dict[str, torch.Tensor],
    cfg: PretrainConfig,
    state: dict,
    names: list[str] | None,
    card: str = "",
    say: Callable[[str], None] = lambda text: None,
) -> Path:
    """Write the run under a temporary name beside out (staged_folder), then rename it into place;
    returns the checkpoint directory. A failed write removes the temporary and leaves out as it
    was; the temporaries of killed imports into out are removed first, saying so."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ArcsolverError(f"{out.parent}: cannot create it ({write_problem(e)}); choose another --out") from None
    ckpt_dir = Path(ckpt.CHECKPOINTS) / f"{ckpt.PREFIX}{step:07d}"
    # SIGTERM unwinds through the staged folder's clean-up instead of killing us mid-write.
    with terminations_raised():
        try:
            with staged_folder(out, f".{out.name}.arcsolver-", say, suffix=".tmp") as staging:
                (staging / ckpt_dir).mkdir(parents=True)
                ckpt.save_tensors(weights, staging / ckpt_dir / "model.safetensors")
                (staging / ckpt_dir / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
                (staging / "config.json").write_text(json.dumps(cfg.model_dump(mode="json")), encoding="utf-8")
                if card:
                    (staging / CARD_FILE).write_text(card, encoding="utf-8")
                if names is not None:
                    # Line k is row k + 1, as in the runs of `arcsolver pretrain`.
                    (staging / ckpt_dir / VERSIONS_FILE).write_text("\n".join(names) + "\n", encoding="utf-8")
                os.replace(staging, out)  # out is absent or empty (checked before): rename replaces it
        except (OSError, SafetensorError) as e:  # safetensors reports a full disk as its own error
            raise ArcsolverError(
                f"{out}: cannot write the converted run ({write_problem(e)}); nothing was left there"
            ) from None
    return out / ckpt_dir
