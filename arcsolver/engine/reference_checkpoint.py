"""A checkpoint of the TRM reference code as an arcsolver run directory, which `solve`,
`evaluate` and `kaggle bundle` take as they take a run of `arcsolver pretrain`.

The reference saves `model.state_dict()` with `torch.save` into a file `step_<N>` of its
checkpoint directory, beside the `all_config.yaml` of its settings. The file is read with
`weights_only=True` (tensors only: no stored code runs) and its names are mapped by
arcsolver.model.reference. The settings come from `all_config.yaml` where it lies beside the
checkpoint; without it, the weights' shapes give the width, the layers, the SwiGLU width and the
puzzle table, and the rest (heads, T, n, N_sup, the prefix length, the canvas) are the
reference's ARC recipe, reported as assumed so that the user can override them.

The converted run is written whole under a temporary name and renamed into place:

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
import pickle
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from arcsolver.atomic import temp_prefix, write_problem
from arcsolver.config import PretrainConfig
from arcsolver.data.augment import Augmentation, augmented_id
from arcsolver.engine import checkpoint as ckpt
from arcsolver.engine.pretrained import VERSIONS_FILE
from arcsolver.errors import ArcsolverError, CheckpointError, ConfigError
from arcsolver.inputs import check_regular_file, read_json, read_text
from arcsolver.model.layers import swiglu_width
from arcsolver.model.reference import check_shapes, reference_state_to_trm, trm_settings_from_reference
from arcsolver.model.trm import TRM
from arcsolver.recipes import apply_overrides, validate

CONFIG_FILE = "all_config.yaml"  # the reference's settings, beside its checkpoints
BLANK_NAME = "<blank>"  # the reference's name for row 0 in identifiers.json
NAME_SEPARATOR = "|||"  # the reference's "<task id>|||t<d>|||<colour mapping>"

# What the weights cannot tell: the reference's ARC recipe (config/arch/trm.yaml, with the
# L_cycles=4 of its README's ARC commands) on its 30x30 canvas. Reference name -> ours.
ASSUMED = {
    "num_heads": ("n_heads", 8),
    "H_cycles": ("n_recursions", 3),
    "L_cycles": ("n_latent_steps", 4),
    "halt_max_steps": ("n_supervision", 16),
    "puzzle_emb_len": ("puzzle_emb_len", 16),
    "seq_len": ("canvas", 30 * 30),
}
_STEP = re.compile(r"step_(\d+)")


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


def find_reference_checkpoint(path: Path) -> Path:
    """The checkpoint file itself, or the newest `step_<N>` of a reference checkpoint directory."""
    path = Path(path)
    if path.is_dir():
        steps = [(int(m.group(1)), p) for p in path.iterdir() if (m := _STEP.fullmatch(p.name)) and p.is_file()]
        if not steps:
            raise CheckpointError(f"{path}: no step_<N> checkpoint file of the TRM reference code in this directory")
        return max(steps)[1]
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file (give a reference checkpoint file, step_<N>, or its directory)")
    return path


def read_reference_state(path: Path) -> dict[str, torch.Tensor]:
    """The state dict a reference run saved with torch.save, read as tensors only."""
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
    return dict(state)


def read_reference_arch(path: Path) -> dict[str, Any]:
    """The `arch:` block of a reference run's all_config.yaml."""
    try:
        import yaml
    except ImportError:
        raise ConfigError(
            f"{path}: reading it needs PyYAML (pip install pyyaml); or move it away and give the settings with --set"
        ) from None
    try:
        settings = yaml.safe_load(read_text(path, ConfigError))
    except (RecursionError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: not readable as the reference's YAML settings ({type(e).__name__})") from None
    arch = settings.get("arch") if isinstance(settings, dict) else None
    if not isinstance(arch, dict):
        raise ConfigError(f"{path}: no arch: block of model settings (expected the reference's all_config.yaml)")
    return arch


def arch_from_shapes(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The reference settings the converted weights' shapes give: width, layers, SwiGLU
    expansion (the paper's 4 where it fits) and the task vector's width."""
    hidden = state["embed_tokens.weight"].shape[1]
    layers = sorted({int(k.split(".")[1]) for k in state if k.startswith("blocks.")})
    if layers != list(range(len(layers))) or not layers:
        raise ConfigError(f"reference checkpoint's layers are numbered {layers}, expected 0, 1, ... (L_level.layers.i)")
    width = state["blocks.0.mlp.down.weight"].shape[1]
    expansion = next((e for e in (4.0, 1.5 * width / hidden) if swiglu_width(hidden, e) == width), None)
    if expansion is None:
        raise ConfigError(
            f"reference weight L_level.layers.0.mlp.down_proj is {width} wide: no SwiGLU expansion gives it"
        )
    return {
        "hidden_size": hidden,
        "L_layers": len(layers),
        "expansion": expansion,
        "puzzle_emb_ndim": state["puzzle_emb.weight"].shape[1],
    }


def read_identifiers(path: Path, rows: int) -> list[str]:
    """The task-version name of each puzzle-table row (row 0 blank), from the identifiers.json the
    reference's dataset builder wrote beside the data set the checkpoint was trained on."""
    if not os.path.lexists(path):
        raise ConfigError(f"{path}: no such file (give the identifiers.json of the reference's data set)")
    names = read_json(path, ConfigError)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{path}: expected a JSON list of names, one per puzzle-table row")
    if len(names) != rows:
        raise ConfigError(
            f"{path}: {len(names)} names for the checkpoint's puzzle table of {rows} rows; give the identifiers.json "
            "of the data set this checkpoint was trained on"
        )
    if names and names[0] != BLANK_NAME:
        raise ConfigError(f"{path}: row 0 is {names[0]!r}, expected {BLANK_NAME!r} (the reference's blank row)")
    return names


def version_name(reference_name: str) -> str:
    """arcsolver's name of a task version (augmented_id) from the reference's: "<task id>" for the
    task as given, "<task id>|||t<d>|||<ten digits>" for dihedral transform d after the colour
    mapping whose digit i is the image of colour i. Both codes number the 8 transforms alike and
    apply the colours first, so the transform and digits carry over unchanged."""
    parts = reference_name.split(NAME_SEPARATOR)
    if len(parts) == 1:
        return augmented_id(reference_name, Augmentation.identity())
    if len(parts) != 3:
        raise ValueError(f"{len(parts) - 1} separators {NAME_SEPARATOR!r}, not 2")
    task_id, transform, colours = parts
    return augmented_id(task_id, Augmentation.parse(f"{transform}.c{colours}"))


def version_names(names: list[str], path: Path) -> list[str]:
    """version_name of every row's name but the blank row's; ConfigError naming the first that is
    not an ARC task version."""
    out = []
    for row, name in enumerate(names[1:], start=1):
        try:
            out.append(version_name(name))
        except ValueError as e:
            raise ConfigError(
                f"{path}: row {row} ({name!r}) is not an ARC task version of the reference's builder ({e})"
            ) from None
    return out


def reference_settings(
    weights: dict[str, torch.Tensor], arch_file: Path | None, overrides: list[str], source: str
) -> tuple[PretrainConfig, dict[str, Any]]:
    """The converted run's settings and the model settings assumed (ours -> value) because
    neither the weights nor all_config.yaml give them and no --set did."""
    arch = {name: value for name, (_, value) in ASSUMED.items()} | arch_from_shapes(weights)
    given = set()
    if arch_file is not None:
        from_file = read_reference_arch(arch_file)
        arch |= from_file
        given = set(from_file)
    model = trm_settings_from_reference(arch)
    settings = apply_overrides({"model": model}, overrides, PretrainConfig)
    cfg = validate(PretrainConfig, settings, source, overrides)
    overridden = {item.partition("=")[0].strip() for item in overrides}
    assumed = {
        ours: getattr(cfg.model, ours)
        for name, (ours, _) in ASSUMED.items()
        if name not in given and f"model.{ours}" not in overridden
    }
    check_shapes(cfg.model.model_dump(), weights)
    return cfg, assumed


def import_reference(
    checkpoint: Path, out: Path, identifiers: Path | None = None, overrides: list[str] = ()
) -> Imported:
    """Convert a reference checkpoint (its step_<N> file, or its directory) into the run
    directory out, which must not exist or be empty. Errors name the file or weight and what was
    expected; nothing is left in out unless the whole run was written."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ArcsolverError(f"{out}: already exists and is not empty; choose another --out")
    path = find_reference_checkpoint(checkpoint)
    weights = reference_state_to_trm(read_reference_state(path))
    arch_file = path.parent / CONFIG_FILE
    arch_file = arch_file if arch_file.is_file() else None
    cfg, assumed = reference_settings(weights, arch_file, list(overrides), str(arch_file or path))
    rows = weights["puzzle_emb.weight"].shape[0]
    names = version_names(read_identifiers(identifiers, rows), identifiers) if identifiers is not None else None
    model = TRM(cfg.model, rows)
    try:
        model.load_state_dict(weights, strict=True)  # what solve will do: refuse here, not there
    except RuntimeError as e:
        raise ConfigError(f"{path}: weights do not fit the settings ({str(e).splitlines()[0]})") from None
    match = _STEP.fullmatch(path.name)
    step = int(match.group(1)) if match else 0
    state = {
        "step": step,
        "world_size": 1,
        "config": cfg.model_dump(mode="json"),
        "imported_from": {"checkpoint": str(path.resolve()), "settings": str(arch_file) if arch_file else None},
    }
    written = write_run(out, step, model.state_dict(), cfg, state, names)
    return Imported(out, written, cfg, rows, arch_file, assumed, names is not None)


def write_run(
    out: Path, step: int, weights: dict[str, torch.Tensor], cfg: PretrainConfig, state: dict, names: list[str] | None
) -> Path:
    """Write the run under a temporary name beside out, then rename it into place; returns the
    checkpoint directory. A failed write removes the temporary and leaves out as it was."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=temp_prefix(out), suffix=".tmp", dir=out.parent))
    try:
        mask = os.umask(0)
        os.umask(mask)
        staging.chmod(0o777 & ~mask)  # mkdtemp makes it private; give it a plain mkdir's permissions
        ckpt_dir = staging / ckpt.CHECKPOINTS / f"{ckpt.PREFIX}{step:07d}"
        ckpt_dir.mkdir(parents=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in weights.items()}, str(ckpt_dir / "model.safetensors"))
        (ckpt_dir / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
        (staging / "config.json").write_text(json.dumps(cfg.model_dump(mode="json")), encoding="utf-8")
        if names is not None:
            # Line k is row k + 1, as in the runs of `arcsolver pretrain`.
            (ckpt_dir / VERSIONS_FILE).write_text("\n".join(names) + "\n", encoding="utf-8")
        if out.is_dir():
            out.rmdir()  # empty (checked by the caller): rename needs it gone
        staging.rename(out)
    except BaseException as e:  # Ctrl-C included: leave nothing half-written behind
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(e, OSError):
            raise ArcsolverError(
                f"{out}: cannot write the converted run ({write_problem(e)}); nothing was left there"
            ) from None
        raise
    return out / ckpt.CHECKPOINTS / f"{ckpt.PREFIX}{step:07d}"
