"""The TRM reference code's weights in this package's names, and checked.

The reference implementation (github.com/SamsungSAILMontreal/TinyRecursiveModels) saves
`model.state_dict()` of its loss head around the model, so its keys read
`[_orig_mod.]model.inner.<name>` (`_orig_mod.` when the model was compiled). Its names map onto
ours one to one, with the paper's letters: its z_H is our answer y and its z_L our latent z.

    inner.embed_tokens.embedding_weight            embed_tokens.weight
    inner.puzzle_emb.weights                       puzzle_emb.weight
    inner.H_init, inner.L_init                     y_init, z_init
    inner.L_level.layers.i.self_attn.qkv_proj      blocks.i.attn.qkv    (rows q, k, v in both)
    inner.L_level.layers.i.self_attn.o_proj        blocks.i.attn.out
    inner.L_level.layers.i.mlp.gate_up_proj        blocks.i.mlp.gate_up (rows gate, up in both)
    inner.L_level.layers.i.mlp.down_proj           blocks.i.mlp.down
    inner.L_level.layers.i.mlp_t.gate_up_proj      blocks.i.mlp_t.gate_up (TRM-MLP: mlp_t in place of
    inner.L_level.layers.i.mlp_t.down_proj         blocks.i.mlp_t.down     self_attn, model.mixer "mlp")
    inner.lm_head                                  lm_head
    inner.q_head (row 0: halt, row 1: continue)    halt_head (row 0 only)

The continue row of the Q head is trained only without `no_ACT_continue` and never used to halt
at inference, so it is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from arcsolver.data.encoding import VOCAB_SIZE
from arcsolver.errors import CheckpointError, ConfigError
from arcsolver.model.layers import swiglu_width

_PREFIXES = ("_orig_mod.", "model.")

# Whole-tensor renames; the per-layer ones are _LAYER_NAMES.
_NAMES = {
    "inner.embed_tokens.embedding_weight": "embed_tokens.weight",
    "inner.puzzle_emb.weights": "puzzle_emb.weight",
    "inner.H_init": "y_init",
    "inner.L_init": "z_init",
    "inner.lm_head.weight": "lm_head.weight",
}
_LAYER_NAMES = {
    "self_attn.qkv_proj.weight": "attn.qkv.weight",
    "self_attn.o_proj.weight": "attn.out.weight",
    "mlp.gate_up_proj.weight": "mlp.gate_up.weight",
    "mlp.down_proj.weight": "mlp.down.weight",
    "mlp_t.gate_up_proj.weight": "mlp_t.gate_up.weight",
    "mlp_t.down_proj.weight": "mlp_t.down.weight",
}
_LAYER = re.compile(r"inner\.L_level\.layers\.(\d+)\.(.+)")


def strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference's keys without the compile and loss-head prefixes (`inner.…`)."""
    out = {}
    for key, value in state.items():
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def reference_state_to_trm(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our TRM's state dict from a reference TRM's (with or without its prefixes), tensors in
    float32. Raises ConfigError naming the first key it cannot place, or the one it lacks."""
    state = strip_prefixes(state)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in _NAMES:
            out[_NAMES[key]] = value
        elif key == "inner.q_head.weight":
            out["halt_head.weight"] = value[:1]
        elif key == "inner.q_head.bias":
            out["halt_head.bias"] = value[:1]
        elif (match := _LAYER.fullmatch(key)) and match.group(2) in _LAYER_NAMES:
            out[f"blocks.{match.group(1)}.{_LAYER_NAMES[match.group(2)]}"] = value
        elif key.startswith("inner.rotary_emb."):
            continue  # cos/sin tables: computed from the settings, not learned
        else:
            raise ConfigError(
                f"reference weight {key!r} has no counterpart in arcsolver's TRM: expected the "
                f"TRM of attention or mlp_t and SwiGLU (arch recursive_reasoning.trm with rope positions)"
            )
    for needed in [*_NAMES.values(), "halt_head.weight", "halt_head.bias"]:
        if needed not in out:
            raise ConfigError(f"reference checkpoint lacks the weight arcsolver's {needed!r} comes from")
    return {key: value.detach().to(torch.float32).contiguous() for key, value in out.items()}


def check_shapes(settings: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> None:
    """Raise ConfigError naming the first converted weight whose shape the settings contradict."""
    hidden, expansion = int(settings["hidden_size"]), float(settings["expansion"])
    width = swiglu_width(hidden, expansion)
    expected = {
        "embed_tokens.weight": (VOCAB_SIZE, hidden),
        "lm_head.weight": (VOCAB_SIZE, hidden),
        "halt_head.weight": (1, hidden),
        "y_init": (hidden,),
        "z_init": (hidden,),
    }
    for i in range(int(settings["n_layers"])):
        if settings.get("mixer", "attention") == "mlp":
            positions = int(settings["puzzle_emb_len"]) + int(settings["canvas"]) ** 2
            mlp_t_width = swiglu_width(positions, expansion)
            expected[f"blocks.{i}.mlp_t.gate_up.weight"] = (2 * mlp_t_width, positions)
            expected[f"blocks.{i}.mlp_t.down.weight"] = (positions, mlp_t_width)
        else:
            expected[f"blocks.{i}.attn.qkv.weight"] = (3 * hidden, hidden)
            expected[f"blocks.{i}.attn.out.weight"] = (hidden, hidden)
        expected[f"blocks.{i}.mlp.gate_up.weight"] = (2 * width, hidden)
        expected[f"blocks.{i}.mlp.down.weight"] = (hidden, width)
    for key, shape in expected.items():
        if key not in state:
            raise ConfigError(
                f"reference checkpoint has no weight for arcsolver's {key!r} ({settings['n_layers']} layers)"
            )
        if tuple(state[key].shape) != shape:
            hint = (
                "; the MLP over positions fits one canvas: give the reference's with --set model.canvas=SIDE "
                "(and model.puzzle_emb_len)"
                if ".mlp_t." in key
                else ""
            )
            raise ConfigError(
                f"reference weight for {key!r} has shape {tuple(state[key].shape)}, expected {shape}{hint}"
            )
    extra = sorted(k for k in state if k.startswith("blocks.") and k not in expected)
    if extra:
        raise ConfigError(
            f"reference checkpoint has more layers than arch.L_layers={settings['n_layers']}: {extra[0]!r}"
        )


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
