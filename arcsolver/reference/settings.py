"""A reference run's settings as arcsolver's. They come from the `arch:` block of the
`all_config.yaml` where it lies beside the checkpoint; without it, the weights' shapes give the
width, the layers, the SwiGLU width and the puzzle table, and the rest (heads, T, n, N_sup, the
prefix length, the canvas) are the reference's ARC recipe, reported as assumed so that the user can
override them."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from arcsolver.config import PretrainConfig
from arcsolver.data.encoding import VOCAB_SIZE
from arcsolver.errors import ConfigError
from arcsolver.model.layers import swiglu_width
from arcsolver.reader import check_input_file, read_text
from arcsolver.recipes import apply_overrides, validate
from arcsolver.reference.weights import check_shapes

CONFIG_FILE = "all_config.yaml"  # the reference's settings, beside its checkpoints

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


def trm_settings_from_reference(arch: Mapping[str, Any]) -> dict[str, Any]:
    """TRMConfig fields from the reference's arch settings (its `all_config.yaml` `arch:` block,
    or the model's config), for its TRM (attention, or mlp_t: TRM-MLP) with rope positions on a
    square canvas."""

    def get(name: str, default: Any = None) -> Any:
        if name not in arch and default is None:
            raise ConfigError(f"reference settings lack arch.{name}")
        return arch.get(name, default)

    if get("pos_encodings", "rope") != "rope":
        raise ConfigError(f"reference arch.pos_encodings is {arch['pos_encodings']!r}: arcsolver reads rope only")
    hidden = int(get("hidden_size"))
    ndim = arch.get("puzzle_emb_ndim", hidden)
    if isinstance(ndim, str):  # the yaml's "${.hidden_size}" interpolation
        ndim = hidden
    if int(ndim) != hidden:
        raise ConfigError(
            f"reference arch.puzzle_emb_ndim is {ndim}: arcsolver's task vector is hidden_size ({hidden}) wide"
        )
    settings: dict[str, Any] = {
        "hidden_size": hidden,
        "n_heads": int(get("num_heads")),
        "n_layers": int(get("L_layers")),
        "expansion": float(get("expansion")),
        "n_latent_steps": int(get("L_cycles")),
        "n_recursions": int(get("H_cycles")),
        "n_supervision": int(get("halt_max_steps")),
        "puzzle_emb_len": int(get("puzzle_emb_len", 16)),
        "rope_theta": float(get("rope_theta", 10000.0)),
        "rms_eps": float(get("rms_norm_eps", 1e-5)),
        "halt_exploration_prob": float(get("halt_exploration_prob", 0.1)),
        "positions": "rope1d",
        "mixer": "mlp" if get("mlp_t", False) else "attention",
    }
    if "seq_len" in arch:
        side = math.isqrt(int(arch["seq_len"]))
        if side * side != int(arch["seq_len"]):
            raise ConfigError(f"reference seq_len {arch['seq_len']} is not a square canvas")
        settings["canvas"] = side
    if "vocab_size" in arch and int(arch["vocab_size"]) != VOCAB_SIZE:
        raise ConfigError(f"reference vocab_size is {arch['vocab_size']}: ARC's encoding has {VOCAB_SIZE} tokens")
    return settings


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
