"""arcsolver/solve/plan.py: a submit recipe's hours on 4 L4s for the ARC-AGI-2 evaluation tasks."""

import re

from conftest import error_line
from typer.testing import CliRunner

from arcsolver.cli import app
from arcsolver.config import SolveConfig
from arcsolver.model.trm import TRMConfig
from arcsolver.recipes import load_recipe

TINY = TRMConfig(hidden_size=32, n_heads=2, canvas=30, positions="rope2d")


def hours(lines, what):
    line = next(line for line in lines if line.startswith(what))
    return float(re.search(r"([\d.]+) hours", line)[1])


def test_the_kaggle_recipe_plans_hours_on_four_l4s_that_follow_its_settings():
    cfg = load_recipe(SolveConfig, "submit", "kaggle")
    lines = solve_plan_of(cfg)
    assert "120 arc2/evaluation tasks over 4 workers" in lines[0]
    assert "11219 steps of 32" in lines[1] and "T = 4, N_sup = 10" in lines[2]
    assert any(line.startswith("assumed: ") and "no L4 measured" in line for line in lines)
    longer = solve_plan_of(load_recipe(SolveConfig, "submit", "kaggle", ["adapt.steps=22438"]))
    assert abs(hours(longer, "adaptation") - 2 * hours(lines, "adaptation")) < 0.02
    deeper = solve_plan_of(load_recipe(SolveConfig, "submit", "kaggle", ["infer.n_supervision=20", "infer.rollouts=1"]))
    assert abs(hours(deeper, "inference") - 4 * hours(lines, "inference")) < 0.02
    total = hours(lines, "total")
    assert abs(total - hours(lines, "adaptation") - hours(lines, "inference")) < 0.02


def solve_plan_of(cfg):
    from arcsolver.solve.plan import solve_plan

    return solve_plan(cfg, TINY)


def test_plan_submit_takes_no_pretraining_options():
    result = CliRunner().invoke(app, ["plan", "--submit", "kaggle", "--recipe", "arc1"])
    assert result.exit_code == 1
    error_line(result.output, "--submit plans a submit recipe", "without --recipe")
