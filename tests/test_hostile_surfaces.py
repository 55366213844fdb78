"""Hostile trackers, plans, checkpoints, bundles and signals: each ends in one line naming the
path or setting and the fix, before any work, and destroys nothing."""

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import TINY, error_line
from typer.testing import CliRunner

from arcsolver.cli import app

runner = CliRunner()

TASKS = {"t1": {"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[1, 2]]}]}}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def sets(*settings):
    return [x for s in settings for x in ("--set", s)]


@contextmanager
def read_only(directory: Path):
    """directory made read-only for this process: by its mode, or (as root, whom modes do not stop)
    by the immutable attribute; skipped where neither holds."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        undo = lambda: directory.chmod(0o755)  # noqa: E731
    elif subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode == 0:
        undo = lambda: subprocess.run(["chattr", "-i", str(directory)], check=True)  # noqa: E731
    else:
        pytest.skip("no way to make a directory read-only for root here")
    try:
        if os.access(directory, os.W_OK):
            pytest.skip("a read-only directory is still writable here")
        yield directory
    finally:
        undo()


# --- trackers -----------------------------------------------------------------------------------


@pytest.fixture
def challenges(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(TASKS))
    return path


def pretrain_with(run, *settings):
    return invoke("pretrain", "--out", run, *sets(*TINY, "run.steps=1", *settings))


def test_pretrain_refuses_a_tracker_directory_that_is_a_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "tensorboard").write_text("mine")
    result = pretrain_with(run, "run.trackers=['tensorboard']")
    assert result.exit_code == 1, result.output
    error_line(result.output, run / "tensorboard", "not a directory", "choose another --out")
    assert (run / "tensorboard").read_text() == "mine"
    assert not (run / "config.json").exists()  # refused before any work


def test_pretrain_refuses_a_read_only_run_directory_for_its_trackers(tmp_path):
    run = tmp_path / "run"
    (run / "tensorboard").mkdir(parents=True)
    with read_only(run / "tensorboard"):
        result = pretrain_with(run, "run.trackers=['tensorboard']")
    assert result.exit_code == 1, result.output
    error_line(result.output, run / "tensorboard", "read-only")
    assert not (run / "config.json").exists()


@pytest.mark.parametrize("occupied", ["s.trackers", "s.trackers/tensorboard"])
def test_solve_refuses_a_tracker_directory_that_is_a_file(challenges, tiny_run, tmp_path, occupied):
    (tmp_path / occupied).parent.mkdir(exist_ok=True)
    (tmp_path / occupied).write_text("mine")
    out = tmp_path / "s.json"
    result = invoke("solve", challenges, "--checkpoint", tiny_run, "--out", out, *sets("run.trackers=['tensorboard']"))
    assert result.exit_code == 1, result.output
    error_line(result.output, tmp_path / occupied, "not a directory")
    assert (tmp_path / occupied).read_text() == "mine" and not out.exists()


def test_solve_refuses_a_read_only_tracker_directory(challenges, tiny_run, tmp_path):
    out = tmp_path / "s.json"
    (tmp_path / "s.trackers").mkdir()
    with read_only(tmp_path / "s.trackers"):
        result = invoke(
            "solve", challenges, "--checkpoint", tiny_run, "--out", out, *sets("run.trackers=['tensorboard']")
        )
    assert result.exit_code == 1, result.output
    error_line(result.output, tmp_path / "s.trackers", "read-only")
    assert not out.exists()


@pytest.fixture
def broken_wandb(tmp_path, monkeypatch):
    """A wandb package that imports but has none of wandb's functions."""
    package = tmp_path / "site" / "wandb"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("__version__ = '0.0'\n")
    monkeypatch.syspath_prepend(str(package.parent))
    for name in [m for m in sys.modules if m == "wandb" or m.startswith("wandb.")]:
        monkeypatch.delitem(sys.modules, name)
    yield
    sys.modules.pop("wandb", None)  # the broken one, imported by the check; the real one comes back


def test_a_broken_wandb_stops_pretrain_and_solve_before_any_work(broken_wandb, challenges, tiny_run, tmp_path):
    run = tmp_path / "run"
    result = pretrain_with(run, "run.trackers=['wandb']")
    assert result.exit_code == 1, result.output
    error_line(result.output, "run.trackers", "wandb", "broken", "no wandb.init", "pip install --force-reinstall wandb")
    assert not run.exists()
    out = tmp_path / "s.json"
    result = invoke("solve", challenges, "--checkpoint", tiny_run, "--out", out, *sets("run.trackers=['wandb']"))
    assert result.exit_code == 1, result.output
    error_line(result.output, "run.trackers", "broken")
    assert not out.exists()
