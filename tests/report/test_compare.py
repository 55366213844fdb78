"""arcsolver/report/compare.py: runs grouped by setting, compared at equal compute, with verdicts."""

import pytest
from helpers import error_line
from helpers.compare import fake_run
from typer.testing import CliRunner

from arcsolver.cli import app
from arcsolver.report.compare import compare_runs


@pytest.fixture
def runs(tmp_path):
    return {
        "base0": fake_run(tmp_path / "base0", 0, [2.0, 1.50]),
        "base1": fake_run(tmp_path / "base1", 1, [2.0, 1.52]),
        "wide0": fake_run(tmp_path / "wide0", 0, [1.8, 1.20], model__hidden_size=1024),
        "wide1": fake_run(tmp_path / "wide1", 1, [1.8, 1.23], model__hidden_size=1024),
    }


def test_a_clearly_better_group_is_called_better(runs):
    groups, lines = compare_runs([runs[k] for k in ("base0", "base1", "wide0", "wide1")])
    assert [g.label for g in groups] == ["baseline", "model.hidden_size=1024"]
    assert [len(g.runs) for g in groups] == [2, 2]
    assert lines[-1] == "model.hidden_size=1024: held-out loss -0.2950 (seed spread 0.0300): better"
    # Against the wide group first, the baseline is the worse one.
    _, lines = compare_runs([runs[k] for k in ("wide0", "wide1", "base0", "base1")])
    assert lines[-1].endswith(": worse") and lines[-1].startswith("model.hidden_size=512: held-out loss +0.2950")


def test_two_seeds_of_one_setting_are_within_the_spread(runs, tmp_path):
    # A third "setting" that is the baseline's under another run length and hardware: the same group.
    same = fake_run(tmp_path / "base2", 2, [2.0, 1.51], run__steps=50, run__threads=2, run__flops=1e12)
    groups, lines = compare_runs([runs["base0"], runs["base1"], same])
    assert len(groups) == 1 and len(groups[0].runs) == 3
    # A setting that changes nothing measurable: its seeds overlap the baseline's.
    close = fake_run(tmp_path / "close0", 0, [2.0, 1.505], optim__lr=1.01e-4)
    close2 = fake_run(tmp_path / "close1", 1, [2.0, 1.515], optim__lr=1.01e-4)
    _, lines = compare_runs([runs["base0"], runs["base1"], close, close2])
    assert lines[-1] == "optim.lr=0.000101: held-out loss +0.0000 (seed spread 0.0200): within the spread"


def test_the_table_gives_each_metric_as_mean_and_spread(runs):
    _, lines = compare_runs([runs[k] for k in ("base0", "base1", "wide0", "wide1")])
    assert "spread = max - min over seeds" in lines[0]
    baseline = next(line for line in lines if line.startswith("baseline"))
    assert "1.5100 (0.0200)" in baseline and "0.5000 (0.0000)" in baseline


def test_equal_compute_takes_the_last_evaluation_within_the_least_flops_reached(runs, tmp_path):
    # A run that went on to twice the compute: it is compared at its evaluation of 4 steps.
    longer = fake_run(tmp_path / "long", 2, [2.0, 1.50, 0.1, 0.1], model__hidden_size=1024)
    groups, lines = compare_runs([runs["base0"], runs["base1"], longer])
    assert "at or below 4e+09 training FLOPs" in lines[0]
    assert groups[1].runs[0].chosen["step"] == 4 and groups[1].mean("loss") == 1.5
    _, lines = compare_runs([runs["base0"], runs["base1"], longer], at="last")
    assert "last held-out evaluation" in lines[0] and "held-out loss -1.4100" in lines[-1]
    assert lines[-1].endswith("no verdict: this group lacks 1 seed (a verdict needs 2 distinct seeds in each)")


def test_runs_stopped_by_one_budget_are_compared_at_it(tmp_path):
    # Both stop a step under a budget of 9e9 FLOPs: one at step 8 of 1.1e9 (8.8e9), the other at
    # step 6 of 1.4e9 (8.4e9). Their final evaluations are at equal compute, the budget's.
    budget = 9e9
    a = fake_run(tmp_path / "a", 0, [2.0, 1.9, 1.8, 1.7], per_step=1.1e9, run__flops=budget)
    b = fake_run(tmp_path / "b", 0, [2.0, 1.9, 1.6], per_step=1.4e9, run__flops=budget, model__hidden_size=1024)
    groups, lines = compare_runs([a, b])
    assert "at or below 9e+09" in lines[0]
    assert groups[0].runs[0].chosen["step"] == 8 and groups[1].runs[0].chosen["step"] == 6
    # A run that stopped well short of its budget (by run.steps) is compared where it stopped.
    c = fake_run(tmp_path / "c", 0, [2.0, 1.9], per_step=1.1e9, run__flops=1e12, model__hidden_size=1024)
    groups, lines = compare_runs([a, c])
    assert "at or below 4.4e+09" in lines[0] and groups[0].runs[0].chosen["step"] == 4


def test_one_seed_each_gets_no_verdict(runs):
    _, lines = compare_runs([runs["base0"], runs["wide0"]])
    assert lines[-1].endswith(
        "no verdict: the first group lacks 1 seed and this group lacks 1 seed (a verdict needs 2 distinct seeds in each)"
    )


def test_runs_of_other_data_or_held_out_tasks_are_refused_in_one_line(runs, tmp_path):
    other = fake_run(tmp_path / "other", 0, [2.0, 1.0], data__max_side=10)
    result = CliRunner().invoke(app, ["compare", str(runs["base0"]), str(other)])
    assert result.exit_code == 1
    error_line(result.output, other, "data.max_side 10 against null", "same data and held-out tasks")
    fewer = fake_run(tmp_path / "fewer", 0, [2.0, 1.0])
    metrics = (fewer / "metrics.jsonl").read_text().replace('"heldout_tasks": 10', '"heldout_tasks": 9')
    (fewer / "metrics.jsonl").write_text(metrics)
    result = CliRunner().invoke(app, ["compare", str(runs["base0"]), str(fewer)])
    error_line(result.output, fewer, "9 held-out tasks scored against 10")


def test_a_directory_that_is_no_run_is_one_line(runs, tmp_path):
    result = CliRunner().invoke(app, ["compare", str(runs["base0"]), str(tmp_path)])
    assert result.exit_code == 1
    error_line(result.output, tmp_path / "config.json", "missing")


def test_the_command_prints_the_table_and_verdicts_and_writes_the_png(runs, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "out" / "compare.png"
    png.parent.mkdir()
    args = ["compare", *map(str, runs.values()), "--png", str(png), "--metric", "cell_accuracy"]
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "model.hidden_size=1024: cell accuracy +0.0000 (seed spread 0.0000): within the spread" in result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("target", ["metrics.jsonl", "config.json", "checkpoints/compare.png"])
def test_the_png_never_replaces_a_file_of_a_compared_run(runs, target):
    first = runs["base0"]
    png = first / target
    before = png.read_bytes() if png.exists() else None
    result = CliRunner().invoke(app, ["compare", *map(str, runs.values()), "--png", str(png)])
    assert result.exit_code == 1, result.output
    error_line(result.output, f"--png {png}", "this command reads")
    assert (png.read_bytes() if png.exists() else None) == before
