"""train/target.py: a run stops where its held-out loss first reaches run.target_heldout_loss."""

import json
from types import SimpleNamespace

from helpers import tiny_config

from arcsolver.data.stream import build_puzzles
from arcsolver.train.loop import pretrain
from arcsolver.train.target import target_sample
from arcsolver.train.tasks import select_tasks


def records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_reachable_target_stops_the_run_at_its_first_check_with_the_checks_compute_counted(tmp_path):
    run = tmp_path / "run"
    result = pretrain(
        tiny_config("run.steps=6", "run.target_heldout_loss=99", "run.target_every=2", "run.log_every=1"), run
    )
    assert result.step == 2
    reached = [r for r in records(run) if r.get("target_reached")]
    assert len(reached) == 1 and reached[0]["step"] == 2 and reached[0]["target_heldout_loss"] == 99
    assert 0 < reached[0]["target_check_loss"] <= 99
    trained = [r for r in records(run) if "loss" in r and r["step"] == 2][0]["flops"]
    assert reached[0]["flops"] > trained  # the check's forward passes are counted on top of the steps'
    assert result.scores  # the final held-out evaluation still runs, at the step the target was reached


def test_an_unreached_target_leaves_the_training_as_it_was_and_records_no_reaching(tmp_path):
    plain = pretrain(tiny_config("run.steps=5", "run.log_every=1"), tmp_path / "plain")
    checked = pretrain(
        tiny_config("run.steps=5", "run.log_every=1", "run.target_heldout_loss=1e-9", "run.target_every=2"),
        tmp_path / "checked",
    )
    assert plain.step == checked.step == 5
    checks = [r for r in records(tmp_path / "checked") if "target_check_loss" in r]
    assert [r["step"] for r in checks] == [2, 4] and not any(r.get("target_reached") for r in checks)
    # The checks move no random stream and no weight: every step's training loss is the same.
    losses = lambda run: [r["loss"] for r in records(run) if "loss" in r]  # noqa: E731
    assert losses(tmp_path / "plain") == losses(tmp_path / "checked")
    assert plain.scores["loss"] == checked.scores["loss"]


def test_the_check_asks_the_same_fixed_queries_every_time():
    cfg = tiny_config("run.target_heldout_loss=1", "run.target_queries=2")
    train, heldout = select_tasks(cfg)
    puzzles = build_puzzles(train + heldout, cfg.data.n_augmentations, cfg.run.seed, cfg.data.fixed_colours)
    run = SimpleNamespace(cfg=cfg)  # the sample depends on the settings alone
    first, again = target_sample(run, puzzles, heldout), target_sample(run, puzzles, heldout)
    assert first == again and len(first) == 2 and all(q.rollout == 0 for q in first)
    assert len({q.task_id for q in first}) == 2  # spread over the tasks, not one task's inputs
