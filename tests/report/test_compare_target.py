"""arcsolver compare on time to target (report/verdicts.py) and at a shared run.flops budget."""

import json

from helpers.compare import PER_STEP, fake_run

from arcsolver.report.compare import compare_runs


def add_records(run, *records):
    with open(run / "metrics.jsonl", "a") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    return run


def reached(run, step):
    """The record of the check that first reached the target, at step."""
    return add_records(
        run, {"step": step, "target_check_loss": 1.4, "target_reached": True, "time_s": step, "flops": step * PER_STEP}
    )


def target_run(path, seed, step=None, **settings):
    run = fake_run(path, seed, [2.0, 1.5], run__target_heldout_loss=1.5, **settings)
    return run if step is None else reached(run, step)


def test_flops_and_steps_to_target_per_group_with_a_verdict(tmp_path):
    runs = [
        target_run(tmp_path / "b0", 0, 40),
        target_run(tmp_path / "b1", 1, 44),
        target_run(tmp_path / "m0", 0, 20, optim__optimizer="muon"),
        target_run(tmp_path / "m1", 1, 22, optim__optimizer="muon"),
    ]
    _, lines = compare_runs(runs)
    at = lines.index("time to target: held-out loss 1.5 (each run's first check at or below it)")
    assert "4.2e+10 (4e+09)" in lines[at + 2] and "42 (4)" in lines[at + 2]  # the baseline's mean (spread)
    assert "2.1e+10 (2e+09)" in lines[at + 3] and "21 (2)" in lines[at + 3]
    assert lines[-1] == "optim.optimizer=muon: FLOPs to target -2.1e+10 (seed spread 4e+09): better"


def test_a_run_that_never_reached_the_target_is_never_a_number(tmp_path):
    runs = [
        target_run(tmp_path / "b0", 0, 40),
        target_run(tmp_path / "b1", 1, 44),
        target_run(tmp_path / "m0", 0, 20, optim__optimizer="muon"),
        target_run(tmp_path / "m1", 1, None, optim__optimizer="muon"),  # ran out before reaching it
        target_run(tmp_path / "n0", 0, None, model__n_latent_steps=6),
        target_run(tmp_path / "n1", 1, None, model__n_latent_steps=6),
    ]
    _, lines = compare_runs(runs)
    lines = lines[lines.index("time to target: held-out loss 1.5 (each run's first check at or below it)") :]
    muon = next(line for line in lines if line.startswith("optim.optimizer=muon  "))
    assert "2e+10 (1 seed), 1 never" in muon
    deep = next(line for line in lines if line.startswith("model.n_latent_steps=6  "))
    assert "never reached (2 of 2)" in deep and "e+" not in deep
    verdicts = [line for line in lines if "FLOPs to target" in line and ":" in line]
    assert verdicts == [
        "optim.optimizer=muon: FLOPs to target: 1 of the 2 runs of this group never reached the target: no verdict",
        "model.n_latent_steps=6: FLOPs to target: 2 of the 2 runs of this group never reached the target: no verdict",
    ]


def test_runs_with_other_targets_are_not_compared_by_it(tmp_path):
    a = target_run(tmp_path / "a", 0, 40)
    b = reached(fake_run(tmp_path / "b", 1, [2.0, 1.5], run__target_heldout_loss=1.2), 60)
    _, lines = compare_runs([a, b])
    assert lines[-1] == "time to target: the runs' targets differ (1.2, 1.5): not compared"


def test_runs_that_share_a_budget_compare_at_it_though_their_last_steps_differ(tmp_path):
    # Two runs of one 5e9 budget whose last step (a large canvas, far more than their mean step)
    # stopped them well under it, at different FLOPs: each final evaluation counts at the budget.
    runs = []
    for seed, last in ((0, 3.1e9), (1, 3.6e9)):
        run = fake_run(tmp_path / f"r{seed}", seed, [2.0], evaluated_every=2, run__flops=5e9)
        runs.append(
            add_records(
                run,
                {"step": 3, "loss": 1.0, "time_s": 1, "flops": last},
                {"step": 3, "flops_budget_reached": 5e9, "flops": last},
                {"step": 3, "heldout_loss": 1.4 + seed / 10, "heldout_tasks": 10, "time_s": 1, "flops": last},
            )
        )
    _, lines = compare_runs(runs)
    assert "at or below 5e+09 training FLOPs" in lines[0]
    assert "1.4500 (0.1000)" in lines[2]  # both final evaluations, not the first one of each
