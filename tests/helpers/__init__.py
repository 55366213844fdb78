"""What many test files share: the settings of a tiny pretraining run, the check of a user's
one-line error, and the owner tag of a process that has ended. Fixtures are in conftest.py."""

from arcsolver.config import PretrainConfig
from arcsolver.recipes import load_recipe

# A tiny pretraining run: a handful of 5x5 tasks, a 32-wide model, seconds on one thread.
TINY = [
    "data.train_sets=['arc1/training']",
    "data.heldout_sets=['arc1/evaluation']",
    "data.max_side=5",
    "data.max_tasks=3",
    "data.n_augmentations=2",
    "model.canvas=5",
    "model.hidden_size=32",
    "model.n_heads=2",
    "model.puzzle_emb_len=2",
    "model.n_latent_steps=1",
    "model.n_recursions=2",
    "model.n_supervision=3",
    "optim.global_batch_size=8",
    "optim.warmup_steps=2",
    "optim.lr=1e-3",
    "run.threads=1",
    "run.device='cpu'",  # also on a GPU machine: two test processes would share one card
    "run.log_every=1",
    "run.time_limit_s=600",
    "eval.max_versions=2",
]


def error_line(output: str, path, *fragments: str) -> str:
    """The last line of output, checked to be a user's error naming path and saying each fragment
    (the cause and the fix); the rest of its wording is free."""
    line = output.strip().splitlines()[-1]
    assert line.startswith(f"error: {path}: "), line
    assert all(fragment in line for fragment in fragments), line
    return line


def tiny_config(*extra) -> PretrainConfig:
    return load_recipe(PretrainConfig, "pretrain", "cpu-small", TINY + list(extra))


def dead_owner() -> str:
    """The owner tag (host-pid) of a process that has ended."""
    import subprocess
    import sys

    code = "from arcsolver.atomic import owner_tag; print(owner_tag())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
