"""A checkpoint of the TRM reference code as an arcsolver run directory, which `solve`,
`evaluate` and `kaggle bundle` take as they take a run of `arcsolver pretrain`.

The reference saves `model.state_dict()` with `torch.save` into a file `step_<N>` of its
checkpoint directory, beside the `all_config.yaml` of its settings. The file is read with
`weights_only=True` (tensors only: no stored code runs) and its names are mapped by
arcsolver.reference.weights. The settings come from `all_config.yaml` where it lies beside the
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError
from safetensors import SafetensorError

from arcsolver.atomic import staged_folder, terminations_raised, write_problem
from arcsolver.config import PretrainConfig
from arcsolver.data.augment import Augmentation, augmented_id
from arcsolver.engine import checkpoint as ckpt
from arcsolver.engine.card import CARD_FILE, imported_card
from arcsolver.engine.pretrained import VERSIONS_FILE
from arcsolver.errors import ArcsolverError, CheckpointError, ConfigError
from arcsolver.inputs import check_input_file, check_regular_file, read_json, read_text
from arcsolver.model.layers import swiglu_width
from arcsolver.model.trm import TRM
from arcsolver.recipes import apply_overrides, validate
from arcsolver.reference.weights import check_shapes, reference_state_to_trm, trm_settings_from_reference

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


# The rank of each converted weight (blocks.<i>.* are all matrices).
_RANKS = {
    "embed_tokens.weight": 2,
    "puzzle_emb.weight": 2,
    "y_init": 1,
    "z_init": 1,
    "lm_head.weight": 2,
    "halt_head.weight": 2,
    "halt_head.bias": 1,
}
_LAYER_WEIGHTS = ("attn.qkv.weight", "attn.out.weight", "mlp.gate_up.weight", "mlp.down.weight")
_MLP_T_LAYER_WEIGHTS = ("mlp_t.gate_up.weight", "mlp_t.down.weight", "mlp.gate_up.weight", "mlp.down.weight")  # TRM-MLP
_TABLE_CHUNK = 65536  # rows checked at a time: a million-row table is never copied whole


def check_reference_weights(weights: Mapping[str, torch.Tensor], path: Path) -> None:
    """Raise CheckpointError naming the first converted weight of the wrong rank, empty, missing
    from its layer, or not finite, before anything reads a shape from it."""
    layers = sorted({int(k.split(".")[1]) for k in weights if k.startswith("blocks.")})
    if not layers or layers != list(range(len(layers))):
        raise CheckpointError(
            f"{path}: the reference checkpoint's layers are numbered {layers}, expected 0, 1, ... (L_level.layers.i)"
        )
    layer_weights = _MLP_T_LAYER_WEIGHTS if "blocks.0.mlp_t.gate_up.weight" in weights else _LAYER_WEIGHTS
    ranks = _RANKS | {f"blocks.{i}.{name}": 2 for i in layers for name in layer_weights}
    for key, rank in ranks.items():
        if key not in weights:
            raise CheckpointError(f"{path}: no reference weight for arcsolver's {key!r}; the checkpoint is incomplete")
        value = weights[key]
        if value.dim() != rank:
            raise CheckpointError(
                f"{path}: the reference weight for {key!r} has {value.dim()} dimensions {tuple(value.shape)}, "
                f"expected {rank}"
            )
        if value.numel() == 0:
            raise CheckpointError(f"{path}: the reference weight for {key!r} is empty {tuple(value.shape)}")
        if not all(bool(torch.isfinite(part).all()) for part in value.split(_TABLE_CHUNK)):
            raise CheckpointError(f"{path}: the reference weight for {key!r} holds inf or NaN; the model is dead")


# all_config.yaml is a few kilobytes; its nesting a few levels.
MAX_SETTINGS_BYTES = 1 << 20
MAX_SETTINGS_DEPTH = 32


def _int(low: int, high: int) -> Any:
    """An integer within [low, high]: not a string, a bool or a float."""
    return Annotated[int, Field(strict=True, ge=low, le=high)]


def _real(**bounds: float) -> Any:
    """A finite number within bounds: not a string or a bool."""
    return Annotated[float, Field(strict=True, allow_inf_nan=False, **bounds)]


class ReferenceArch(BaseModel):
    """The `arch:` block of the reference's all_config.yaml, as far as arcsolver reads it; the
    other keys (its class names, the loss) pass through unread."""

    model_config = ConfigDict(extra="allow")

    hidden_size: _int(1, 65536) | None = None
    num_heads: _int(1, 1024) | None = None
    L_layers: _int(1, 1024) | None = None
    expansion: _real(gt=0, le=1024) | None = None
    H_cycles: _int(1, 10**6) | None = None
    L_cycles: _int(1, 10**6) | None = None
    halt_max_steps: _int(1, 10**6) | None = None
    puzzle_emb_len: _int(0, 256) | None = None
    puzzle_emb_ndim: _int(0, 65536) | Annotated[str, StringConstraints(max_length=64)] | None = None  # or "${...}"
    rope_theta: _real(gt=0) | None = None
    rms_norm_eps: _real(gt=0, lt=1) | None = None
    halt_exploration_prob: _real(ge=0, le=1) | None = None
    seq_len: _int(1, 10**6) | None = None
    vocab_size: _int(1, 10**6) | None = None
    mlp_t: Annotated[bool, Field(strict=True)] | None = None
    pos_encodings: Annotated[str, StringConstraints(max_length=64)] | None = None


def _settings_loader() -> type:
    """PyYAML's safe loader without aliases (a billion-laughs document expands them without end)
    and without nesting past MAX_SETTINGS_DEPTH."""
    import yaml

    class Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                raise yaml.YAMLError("it uses an alias (*name), which the reference's settings never do")
            self.depth += 1
            if self.depth > MAX_SETTINGS_DEPTH:
                raise yaml.YAMLError(f"it nests over {MAX_SETTINGS_DEPTH} levels deep")
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return Loader


def read_reference_arch(path: Path) -> dict[str, Any]:
    """The `arch:` block of a reference run's all_config.yaml (a regular file of at most 1 MB,
    without aliases or deep nesting), checked against ReferenceArch: the keys it holds."""
    try:
        import yaml
    except ImportError:
        raise ConfigError(
            f"{path}: reading it needs PyYAML (pip install 'arcsolver[reference]'); or move it away and give the "
            "settings with --set"
        ) from None
    check_input_file(path, ConfigError)
    if path.stat().st_size > MAX_SETTINGS_BYTES:
        raise ConfigError(f"{path}: over {MAX_SETTINGS_BYTES >> 20} MB, not the reference's all_config.yaml")
    try:
        settings = yaml.load(read_text(path, ConfigError), Loader=_settings_loader())
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as e:
        why = str(e).strip().splitlines()[-1][:160] if isinstance(e, yaml.YAMLError) and str(e).strip() else ""
        raise ConfigError(
            f"{path}: not readable as the reference's YAML settings ({why or type(e).__name__}); give its "
            "all_config.yaml, or move it away and give the settings with --set"
        ) from None
    arch = settings.get("arch") if isinstance(settings, dict) else None
    if not isinstance(arch, dict):
        raise ConfigError(f"{path}: no arch: block of model settings (expected the reference's all_config.yaml)")
    try:
        return ReferenceArch.model_validate(arch).model_dump(exclude_unset=True)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"][:1])
        raise ConfigError(
            f"{path}: arch.{where} is {first['input']!r:.60}: {first['msg'].lower()}; fix the file, or move it away "
            "and give the settings with --set"
        ) from None


def arch_from_shapes(state: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The reference settings the converted weights' shapes give: width, layers, SwiGLU
    expansion (the paper's 4 where it fits), the task vector's width, and mlp_t (TRM-MLP) where
    its weights are there."""
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
        "mlp_t": "blocks.0.mlp_t.gate_up.weight" in state,
    }


# A row's name: a task id of the reference's builder with its augmentation; never a character
# that would end a line of puzzles.txt, drive a terminal or name another directory.
RowName = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f-\x9f/\\\u2028\u2029]+$")
]
_ROW_NAMES = TypeAdapter(list[RowName])


def read_identifiers(path: Path, rows: int) -> list[str]:
    """The task-version name of each puzzle-table row (row 0 blank), from the identifiers.json the
    reference's dataset builder wrote beside the data set the checkpoint was trained on."""
    if not os.path.lexists(path):
        raise ConfigError(f"{path}: no such file (give the identifiers.json of the reference's data set)")
    return check_identifiers(read_json(path, ConfigError), rows, str(path))


def check_identifiers(names: object, rows: int, source: str) -> list[str]:
    """names, checked to be a list of rows names for the checkpoint's puzzle table: a task
    version's name each (ConfigError naming source and the first that is not), row 0 blank."""
    path = source
    try:
        names = _ROW_NAMES.validate_python(names, strict=True)
    except ValidationError as e:
        first = e.errors()[0]
        if not first["loc"]:
            raise ConfigError(f"{path}: expected a JSON list of names, one per puzzle-table row") from None
        raise ConfigError(
            f"{path}: row {first['loc'][0]} ({first['input']!r:.80}) is not a task version's name (no control "
            "characters or path separators, 1 to 256 characters); give the identifiers.json of the reference's data set"
        ) from None
    assert isinstance(names, list)
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
    match = _STEP.fullmatch(path.name)
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
