"""A checkpoint of the TRM reference code read and checked whole, before anything is written.

The reference saves `model.state_dict()` with `torch.save` into a file `step_<N>` of its
checkpoint directory, beside the `all_config.yaml` of its settings. The file is read with
`weights_only=True` (tensors only: no stored code runs), its names are mapped by
arcsolver.reference.weights and its settings given by arcsolver.reference.settings. A file on the
Hub is downloaded first, by arcsolver.hub.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from arcsolver.config import PretrainConfig
from arcsolver.errors import ArcsolverError, CheckpointError, ConfigError
from arcsolver.model.trm import TRM
from arcsolver.reader import check_regular_file
from arcsolver.reference.settings import CONFIG_FILE, reference_settings
from arcsolver.reference.weights import check_reference_weights, reference_state_to_trm

STEP = re.compile(r"step_(\d+)")  # the name of a reference checkpoint file


def find_reference_checkpoint(path: Path) -> Path:
    """The checkpoint file itself, or the newest `step_<N>` of a reference checkpoint directory."""
    path = Path(path)
    if path.is_dir():
        steps = [(int(m.group(1)), p) for p in path.iterdir() if (m := STEP.fullmatch(p.name)) and p.is_file()]
        if not steps:
            raise CheckpointError(f"{path}: no step_<N> checkpoint file of the TRM reference code in this directory")
        return max(steps)[1]
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file (give a reference checkpoint file, step_<N>, or its directory)")
    return path


def read_reference_state(path: Path) -> dict[str, torch.Tensor]:
    """The state dict a reference run saved with torch.save, read as tensors only: dense
    floating-point tensors by name, nothing else."""
    check_regular_file(path, CheckpointError)  # torch.load would block on a FIFO
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path}: not a state dict of tensors saved by torch.save ({first[:160]}); give the reference's step_<N> file"
        ) from None
    if not isinstance(state, Mapping) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not the model's state dict of named tensors")
    for key, value in state.items():
        if value.layout != torch.strided:
            raise CheckpointError(f"{path}: weight {key!r} is a {value.layout} tensor; a reference checkpoint is dense")
        if not value.is_floating_point():
            raise CheckpointError(f"{path}: weight {key!r} holds {value.dtype}, not floating-point numbers")
    return dict(state)


@dataclass
class Reference:
    """A reference checkpoint read and checked whole (its weights loaded into the model its
    settings give), before anything is rebuilt or written."""

    path: Path  # the step_<N> file
    model: TRM
    config: PretrainConfig
    settings_file: Path | None  # the all_config.yaml read, if any
    assumed: dict[str, Any]  # our model setting -> value taken on trust

    @property
    def rows(self) -> int:
        """Puzzle-table rows, the blank one included."""
        return self.model.puzzle_emb.weight.shape[0]


def read_reference(checkpoint: Path, out: Path, overrides: Sequence[str] = ()) -> Reference:
    """Read and check a reference checkpoint (its step_<N> file, or its directory) and its settings
    for a conversion into the run directory out, which must not exist or be empty: every input of
    the conversion but the rows' names, which may take minutes to rebuild, is checked here."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ArcsolverError(f"{out}: already exists and is not empty; choose another --out")
    path = find_reference_checkpoint(checkpoint)
    weights = reference_state_to_trm(read_reference_state(path))
    check_reference_weights(weights, path)
    arch_file = path.parent / CONFIG_FILE
    arch_file = arch_file if os.path.lexists(arch_file) else None  # not a regular file: refused by name
    cfg, assumed = reference_settings(weights, arch_file, list(overrides), str(arch_file or path))
    model = TRM(cfg.model, weights["puzzle_emb.weight"].shape[0])
    try:
        model.load_state_dict(weights, strict=True)  # what solve will do: refuse here, not there
    except RuntimeError as e:
        raise ConfigError(f"{path}: weights do not fit the settings ({str(e).splitlines()[0]})") from None
    return Reference(path, model, cfg, arch_file, assumed)
