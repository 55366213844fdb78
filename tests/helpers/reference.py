"""The TRM reference code beside arcsolver's: where its clone is, a small model and batch, the
reference's TRM-MLP with arcsolver's equal to it, a reference checkpoint's state of random weights,
and import-reference and solve run on the converted checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from typer.testing import CliRunner

from arcsolver.cli import app
from arcsolver.data.encoding import PAD
from arcsolver.model.config import TRMConfig
from arcsolver.model.layers import swiglu_width
from arcsolver.model.trm import TRM
from arcsolver.reference.weights import reference_state_to_trm

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = [ROOT.parent / "TinyRecursiveModels", ROOT.parent / "shared" / "ref" / "TinyRecursiveModels"]
N_ROWS = 6  # the small model's puzzle table: the blank row and five task versions


def reference_path() -> Path | None:
    if os.environ.get("TRM_REFERENCE"):
        return Path(os.environ["TRM_REFERENCE"])
    return next((p for p in CANDIDATES if (p / "models" / "recursive_reasoning" / "trm.py").is_file()), None)


def small_config(**changes) -> TRMConfig:
    base = dict(
        hidden_size=32, n_heads=2, n_latent_steps=2, n_recursions=2, n_supervision=3, canvas=8, puzzle_emb_len=4
    )
    return TRMConfig(**{**base, **changes})


def random_batch(cfg: TRMConfig, batch: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 12, (batch, cfg.canvas, cfg.canvas), generator=g)
    labels[:, -2:, :] = PAD  # cells without a target, as every real canvas has
    return {
        "inputs": torch.randint(0, 12, (batch, cfg.canvas, cfg.canvas), generator=g),
        "labels": labels,
        "puzzle_ids": torch.randint(1, N_ROWS, (batch,), generator=g),
    }


def build_equal_mlp_t(bench, ref, cfg: TRMConfig, batch: int, seed: int, random_rows=False):
    """The reference's TRM-MLP (arch.mlp_t) with its initial weights for `seed`, and arcsolver's
    mixer="mlp" TRM with the same weights."""
    torch.manual_seed(seed)
    arch = bench.reference_arch(cfg, batch, N_ROWS, torch.float32) | {"mlp_t": True}
    head = ref.LossHead(ref.Model(arch), loss_type="stablemax_cross_entropy")
    if random_rows:
        with torch.no_grad():
            head.model.inner.puzzle_emb.weights.normal_()
            head.model.inner.puzzle_emb.weights[0].zero_()
    model = TRM(cfg.model_copy(update={"mixer": "mlp"}), N_ROWS)
    model.load_state_dict(reference_state_to_trm(head.state_dict()), strict=True)
    return head, model


HIDDEN, ROWS = 16, 5
SETS = ["model.n_heads=2", "model.n_latent_steps=1", "model.n_recursions=1", "model.n_supervision=2"]
SETS += ["model.puzzle_emb_len=2", "model.canvas=6"]


def reference_state(hidden: int = HIDDEN, rows: int = ROWS) -> dict[str, torch.Tensor]:
    """A one-layer reference TRM's state dict in the reference's names, random weights."""
    width = swiglu_width(hidden, 4.0)
    g = torch.Generator().manual_seed(0)
    shapes = {
        "embed_tokens.embedding_weight": (12, hidden),
        "puzzle_emb.weights": (rows, hidden),
        "H_init": (hidden,),
        "L_init": (hidden,),
        "lm_head.weight": (12, hidden),
        "q_head.weight": (2, hidden),
        "q_head.bias": (2,),
        "L_level.layers.0.self_attn.qkv_proj.weight": (3 * hidden, hidden),
        "L_level.layers.0.self_attn.o_proj.weight": (hidden, hidden),
        "L_level.layers.0.mlp.gate_up_proj.weight": (2 * width, hidden),
        "L_level.layers.0.mlp.down_proj.weight": (hidden, width),
    }
    return {f"_orig_mod.model.inner.{k}": torch.randn(shape, generator=g) * 0.1 for k, shape in shapes.items()}


def convert(*args, sets=SETS):
    return CliRunner().invoke(
        app, ["import-reference", *map(str, args), *[x for s in sets for x in ("--set", s)]], env={"COLUMNS": "300"}
    )


def solve_file(tmp_path, run, *extra):
    quick = ["data.n_augmentations=2", "adapt.steps=2", "optim.global_batch_size=4", "infer.max_versions=2"]
    return CliRunner().invoke(
        app,
        ["solve", str(tmp_path / "challenges.json"), "--checkpoint", str(run), "--out", str(tmp_path / "sub.json")]
        + [x for s in [*quick, "run.threads=1", "run.device='cpu'", *extra] for x in ("--set", s)],
        env={"COLUMNS": "300"},
    )
