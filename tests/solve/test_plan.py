"""arcsolver/solve/plan.py: a submit recipe's hours on 4 L4s for the ARC-AGI-2 evaluation tasks,
priced for the checkpoints that run."""

import re

import pytest
from helpers import error_line, tiny_config
from typer.testing import CliRunner

from arcsolver.cli import app
from arcsolver.config import SolveConfig
from arcsolver.engine.flops import shapes_only, step_flops
from arcsolver.model.config import TRMConfig
from arcsolver.recipes import load_recipe
from arcsolver.solve.plan import PlannedCheckpoint, l4_rates, solve_plan

# Tiny, and shallow where the plan allows: its memory is counted on the 30x30 canvas.
SIZED = TRMConfig(hidden_size=32, n_heads=2, puzzle_emb_len=2, n_latent_steps=1, n_recursions=2, positions="rope2d")
FIXED = SIZED.model_copy(update={"positions": "rope1d"})


def hours(lines, what):
    line = next(line for line in lines if line.startswith(what))
    return float(re.search(r"([\d.]+) hours", line)[1])


def kaggle(*overrides):
    return load_recipe(SolveConfig, "submit", "kaggle", list(overrides))


def test_the_kaggle_recipe_plans_hours_on_four_l4s_that_follow_its_settings_and_states_its_basis():
    cfg = kaggle()
    lines = solve_plan(cfg, [PlannedCheckpoint("tiny", SIZED)])
    assert "120 arc2/evaluation tasks over 4 workers" in lines[0]
    assert "11219 steps of 32" in lines[2] and "T = 4, N_sup = 10" in lines[3]
    assert any(line.startswith("assumed: ") and "no L4 measured" in line for line in lines)
    longer = solve_plan(kaggle("adapt.steps=22438"), [PlannedCheckpoint("tiny", SIZED)])
    assert abs(hours(longer, "adaptation") - 2 * hours(lines, "adaptation")) < 0.02
    deeper = solve_plan(kaggle("infer.n_supervision=20", "infer.rollouts=1"), [PlannedCheckpoint("tiny", SIZED)])
    assert abs(hours(deeper, "inference") - 4 * hours(lines, "inference")) < 0.02
    total = hours(lines, "total")
    assert abs(total - hours(lines, "adaptation") - hours(lines, "inference")) < 0.02
    # The sample the rates came from.
    basis = next(line for line in lines if line.startswith("basis: "))
    for fact in ("the first 10 arc2/evaluation tasks (16 test inputs)", "200 adaptation steps of 96", "recipe of then"):
        assert fact in basis, basis
    assert "124-step checkpoint of the paper-sized TRM, rope1d, every example on its one 30x30 canvas" in basis


def test_the_measured_checkpoints_shape_runs_at_the_measured_rates_times_the_l4s_share():
    # An imported reference checkpoint is the paper-sized TRM on its one 30x30 canvas: the shape
    # the H100 solve ran. At that solve's depth its rates are the measured ones, scaled to an L4 only.
    reference = TRMConfig(positions="rope1d", canvas=30)
    adapt, query = l4_rates(kaggle("infer.n_recursions=3", "infer.n_supervision=16"), reference)
    assert adapt == pytest.approx(200 * 96 / 47 * 121 / 989)
    assert query == pytest.approx(64 * 16 / 22 * 121 / 989)


def test_each_checkpoint_is_priced_by_its_layout_canvas_and_size():
    cfg = kaggle()
    sized, fixed = l4_rates(cfg, SIZED), l4_rates(cfg, FIXED)
    # The same work per sample: grid-sized canvases win what the H100 measured on ARC-AGI-2 pairs.
    assert sized[0] / fixed[0] == pytest.approx(541 / 435)
    assert sized[1] / fixed[1] == pytest.approx(78.2 / 49.8)
    # A smaller fixed canvas, or a wider model, in proportion to its FLOPs per sample.
    small = FIXED.model_copy(update={"canvas": 8})
    flops = step_flops(shapes_only(FIXED), 30) / step_flops(shapes_only(small), 8)
    assert l4_rates(cfg, small)[0] / fixed[0] == pytest.approx(flops)
    wider = FIXED.model_copy(update={"hidden_size": 128})
    flops = step_flops(shapes_only(wider), 30) / step_flops(shapes_only(FIXED), 30)
    assert flops > 3 and fixed[0] / l4_rates(cfg, wider)[0] == pytest.approx(flops)


def test_an_ensemble_prices_each_member_and_adds_them():
    # A hundred times the steps, so that the tiny models' hours show in the printed digits.
    lines = solve_plan(kaggle("adapt.steps=1121900"), [PlannedCheckpoint("a", SIZED), PlannedCheckpoint("b", FIXED)])
    assert "checkpoint a: rope2d, grid-sized canvases up to 30x30" in lines[1]
    assert any(line.startswith("checkpoint b: rope1d, every example on its one 30x30 canvas") for line in lines)
    adapt, infer = (
        {name: hours(lines, f"{what} ({name})") for name in ("a", "b")} for what in ("adaptation", "inference")
    )
    assert adapt["b"] == pytest.approx(adapt["a"] * 541 / 435, rel=0.01)  # the fixed canvas is the slower
    assert hours(lines, "total") == pytest.approx(sum(adapt.values()) + sum(infer.values()), abs=0.03)
    assert "for the 2 checkpoints of the ensemble" in next(line for line in lines if line.startswith("total: "))


@pytest.fixture(scope="module")
def fixed_run(tmp_path_factory):
    """A tiny run with rope1d positions: every example on its one canvas, as an imported reference checkpoint."""
    from arcsolver.train.loop import pretrain

    run = tmp_path_factory.mktemp("rope1d") / "run"
    pretrain(tiny_config("model.positions='rope1d'", "run.steps=1"), run)
    return run


def test_plan_submit_prices_the_checkpoints_given(tiny_run, fixed_run):
    result = CliRunner().invoke(
        app, ["plan", "--submit", "kaggle", "--checkpoint", str(tiny_run), "--checkpoint", str(fixed_run)]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith(f"checkpoint {tiny_run}: rope2d, grid-sized canvases up to 30x30") for line in lines)
    assert any(
        line.startswith(f"checkpoint {fixed_run}: rope1d, every example on its one 5x5 canvas") for line in lines
    )
    assert any(line.startswith("basis: one solve on an H100") for line in lines)


def test_plan_submit_refuses_what_it_cannot_price_in_one_line(tmp_path):
    result = CliRunner().invoke(app, ["plan", "--submit", "kaggle", "--recipe", "arc1"])
    assert result.exit_code == 1
    error_line(result.output, "--submit plans a submit recipe", "without --recipe")
    result = CliRunner().invoke(app, ["plan", "--checkpoint", str(tmp_path)])
    assert result.exit_code == 1
    error_line(result.output, "--checkpoint prices the plan of a submit recipe", "with --submit")
    result = CliRunner().invoke(app, ["plan", "--submit", "kaggle", "--checkpoint", str(tmp_path / "none")])
    assert result.exit_code == 1
    error_line(result.output, tmp_path / "none", "no checkpoint here")


def test_kaggle_check_prints_the_plan_for_the_bundles_checkpoints(ensemble_bundle):
    bundle, _ = ensemble_bundle
    result = CliRunner().invoke(app, ["kaggle", "check", str(bundle)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for folder in ("checkpoint", "checkpoint-2"):
        assert any(line.startswith(f"plan: checkpoint {folder}: rope2d, grid-sized canvases") for line in lines)
        assert any(line.startswith(f"plan: adaptation ({folder}): 11219 steps of 32") for line in lines)
    assert any(line.startswith("plan: total: ") and "2 checkpoints of the ensemble" in line for line in lines)
    assert any(line.startswith("plan: basis: one solve on an H100") for line in lines)
