import pytest
from helpers import tiny_config

# A tiny pretraining run: a handful of 5x5 tasks, a 32-wide model, seconds on one thread.


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
