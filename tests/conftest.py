import pytest

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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run directory holding a checkpoint of a tiny model trained for a few steps."""
    from arcsolver.train.loop import pretrain

    run = tmp_path_factory.mktemp("tiny") / "run"
    pretrain(tiny_config("run.steps=3"), run)
    return run


@pytest.fixture(scope="session")
def tiny_bundle(tiny_run, tmp_path_factory):
    """A Kaggle bundle of the tiny run's checkpoint (built once: it downloads the dependency wheels)."""
    from typer.testing import CliRunner

    from arcsolver.cli import app

    out = tmp_path_factory.mktemp("bundle") / "arcsolver-bundle"
    result = CliRunner().invoke(app, ["kaggle", "bundle", "--checkpoint", str(tiny_run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def ensemble_bundle(tiny_run, tmp_path_factory):
    """A Kaggle bundle of two tiny checkpoints, answering as an ensemble, with wheels for this
    Python only."""
    import sys

    from typer.testing import CliRunner

    from arcsolver.cli import app
    from arcsolver.train.loop import pretrain

    other = tmp_path_factory.mktemp("tiny-seed-1") / "run"
    pretrain(tiny_config("run.steps=2", "run.seed=1"), other)
    out = tmp_path_factory.mktemp("ensemble") / "arcsolver-bundle"
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    command = ["kaggle", "bundle", "--checkpoint", str(tiny_run), "--checkpoint", str(other)]
    result = CliRunner().invoke(app, [*command, "--out", str(out), "--python-version", python])
    assert result.exit_code == 0, result.output
    return out, result.output
