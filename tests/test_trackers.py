"""arcsolver/trackers.py: TensorBoard and wandb receive the records of metrics.jsonl and of
adaptation; a tracker whose package is missing stops a run before it starts."""

import importlib.util
import io
import json

import pytest
from helpers import tiny_config
from helpers.solve import quick, small_tasks, write_challenges
from rich.console import Console

from arcsolver import trackers as trackers_module
from arcsolver.errors import ConfigError
from arcsolver.solve import solver
from arcsolver.train.loop import pretrain

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def tensorboard_scalars(directory) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(directory))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_a_tracker_without_its_package_stops_the_run_before_it_starts(tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real_find_spec(name, *a)
    )
    with pytest.raises(ConfigError, match=r"wandb, whose package is not installed: pip install wandb"):
        pretrain(tiny_config("run.steps=2", "run.trackers=['wandb']"), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing read, nothing written
    with pytest.raises(ConfigError, match=r"pip install wandb"):
        solver.solve(tmp_path / "c.json", tmp_path / "s.json", "none", quick("run.trackers=['wandb']"), Console())
    assert not (tmp_path / "s.json").exists()


def test_tensorboard_receives_every_record_of_metrics_jsonl(tmp_path):
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    pretrain(tiny_config("run.steps=4", "run.log_every=2", "run.trackers=['tensorboard']"), run)
    scalars = tensorboard_scalars(run / "tensorboard")
    trained = [r for r in records(run) if "loss" in r]
    assert [step for step, _ in scalars["loss"]] == [r["step"] for r in trained] == [2, 4]
    assert [v for _, v in scalars["loss"]] == pytest.approx([r["loss"] for r in trained])
    assert {"exact_accuracy", "mean_halt_steps", "lr", "samples_per_s"} <= set(scalars)
    heldout = [r for r in records(run) if "heldout_pass@2" in r]
    assert scalars["heldout_pass@2"] == [(heldout[-1]["step"], pytest.approx(heldout[-1]["heldout_pass@2"]))]


def test_tensorboard_receives_adaptations_records(tiny_run, tmp_path):
    pytest.importorskip("tensorboard")
    challenges = tmp_path / "c.json"
    write_challenges(challenges, small_tasks(2))
    out = tmp_path / "submission.json"
    cfg = quick("adapt.steps=4", "adapt.log_every=2", "run.trackers=['tensorboard']")
    solver.solve(challenges, out, str(tiny_run), cfg, Console(file=io.StringIO()))
    scalars = tensorboard_scalars(solver.trackers_dir(out) / "tensorboard")
    assert [step for step, _ in scalars["loss"]] == [2, 4]
    assert {"exact_accuracy", "halted_fraction", "lr", "time_s"} <= set(scalars)


def test_wandb_runs_offline_and_receives_every_record(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    for name in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    assert trackers_module.wandb_mode() == "offline"
    run = tmp_path / "run"
    pretrain(tiny_config("run.steps=4", "run.log_every=2", "run.trackers=['wandb']", "eval.max_versions=1"), run)
    assert wandb.run is None  # finished
    wandb.teardown()  # its service writes the run's file out as it stops, as at a process's exit
    (offline,) = (run / "wandb").glob("offline-run-*")
    (log,) = offline.glob("run-*.wandb")
    data = log.read_bytes()  # history rows hold each value as JSON text
    trained = [r for r in records(run) if "loss" in r]
    assert [r["step"] for r in trained] == [2, 4]
    for r in trained:
        for key in ("loss", "samples_per_s"):
            assert key.encode() in data and json.dumps(r[key]).encode() in data, (key, r[key])
