"""A Hugging Face Hub cache on disk holding a reference checkpoint, and import-reference run offline
against it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers.reference import reference_state

ROOT = Path(__file__).resolve().parents[2]
REPO = "arcprize/trm_arc_prize_verification"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
YAML = "arch:\n  hidden_size: 16\n  num_heads: 2\n  L_cycles: 1\n  H_cycles: 1\n  halt_max_steps: 2\n"
YAML += "  puzzle_emb_len: 2\n  seq_len: 36\n  L_layers: 1\n  expansion: 4\n"


def hub_cache(tmp_path) -> Path:
    """A Hub cache holding REPO at COMMIT (its main revision) with arc_v1_public/step_7 and the
    all_config.yaml beside it: what hf_hub_download leaves after downloading both."""
    cache = tmp_path / "hub-cache"
    repo = cache / f"models--{REPO.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT / "arc_v1_public"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    torch.save(reference_state(), snapshot / "step_7")
    (snapshot / "all_config.yaml").write_text(YAML)
    return cache


def run_offline(cache, *args):
    pytest.importorskip("huggingface_hub", reason="the hub extra is not installed")
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache), COLUMNS="300")
    return subprocess.run(
        [sys.executable, "-m", "arcsolver", "import-reference", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
