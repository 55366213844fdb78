import inspect
import json
import re

from helpers import TINY, error_line, tiny_config
from typer.testing import CliRunner

from arcsolver.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


def test_data_list_shows_every_bundled_set():
    result = run("data", "list")
    assert result.exit_code == 0, result.output
    for name in ("arc1/training", "arc1/evaluation", "arc2/training", "arc2/evaluation"):
        assert name in result.output


def test_data_check_passes_a_bundled_set():
    result = run("data", "check", "arc2/evaluation")
    assert result.exit_code == 0
    assert "120 valid tasks" in result.output and "no problems" in result.output


def test_data_check_reports_each_problem_on_one_line(tmp_path):
    bad = {
        "ragged01": {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]]}]},
        "colour10": {"train": [{"input": [[1]], "output": [[10]]}], "test": [{"input": [[1]]}]},
        "huge3131": {"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[0] * 31] * 31}]},
        "emptytrn": {"train": [], "test": [{"input": [[1]]}]},
    }
    for task_id, task in bad.items():
        (tmp_path / f"{task_id}.json").write_text(json.dumps(task))
    (tmp_path / "badjson1.json").write_text('{"train": [')
    result = run("data", "check", str(tmp_path))
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("problem:")]
    assert len(lines) == 5
    for task_id, fragment in [
        ("ragged01", "ragged grid"),
        ("colour10", "colour 10"),
        ("huge3131", "31x31"),
        ("emptytrn", "'train' list is empty"),
        ("badjson1", "invalid JSON"),
    ]:
        assert any(f"task {task_id}:" in line and fragment in line for line in lines), (task_id, lines)


def test_data_check_same_problems_in_one_challenges_file(tmp_path):
    path = tmp_path / "x_challenges.json"
    path.write_text(json.dumps({"r": {"train": [{"input": [[1], [1, 1]], "output": [[1]]}], "test": []}}))
    result = run("data", "check", str(path))
    assert result.exit_code == 1 and "task r: train pair 0 input: ragged grid" in result.output


def test_user_errors_are_one_line_without_traceback(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{nope")
    for args in (
        ["data", "check", str(bad)],
        ["data", "check", str(tmp_path / "missing.json")],
        ["data", "show", "zzzzzzzz", "--source", "arc2/evaluation"],
        ["data", "export", "nope/x", "--out", str(tmp_path)],
    ):
        result = run(*args)
        assert result.exit_code == 1, args
        assert "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_data_export_with_size_filter_then_check(tmp_path):
    result = run("data", "export", "arc1/evaluation", "--out", str(tmp_path), "--max-side", "10")
    assert result.exit_code == 0, result.output
    challenges = tmp_path / "arc1-evaluation-max10_challenges.json"
    assert len(json.loads(challenges.read_text())) == 77
    assert (tmp_path / "arc1-evaluation-max10_solutions.json").exists()
    check = run("data", "check", str(challenges))
    assert check.exit_code == 0 and "77 valid tasks, " in check.output and "77 with solutions" in check.output


def test_data_show_draws_a_task():
    result = run("data", "show", "007bbfb7")
    assert result.exit_code == 0
    assert "task 007bbfb7" in result.output and "3x3 -> 9x9" in result.output


def test_solve_defaults_to_the_newest_checkpoint_at_any_depth(tmp_path):
    import os
    import time

    from arcsolver.cli.solve import newest_run

    for i, run in enumerate(["runs/old", "runs/demo/pretrain"]):
        step = tmp_path / run / "checkpoints" / "step_0000001"
        step.mkdir(parents=True)
        os.utime(step, (time.time() + i, time.time() + i))
    assert newest_run(tmp_path / "runs") == tmp_path / "runs/demo/pretrain"


MARKUP_IDS = ["[/x]", "[bold]b", "[red]r[/red]", "e:abc:e"]


def test_task_ids_and_paths_with_markup_are_printed_as_written(tmp_path):
    task = {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[3]]}]}
    folder = tmp_path / "[bold]data"
    folder.mkdir()
    path = folder / "m_challenges.json"
    path.write_text(json.dumps({task_id: task for task_id in MARKUP_IDS} | {"[/bad]": {"train": []}}))
    check = run("data", "check", str(path))
    assert check.exit_code == 1 and "Traceback" not in check.output, check.output
    assert f"{path}: task [/bad]: has no 'test' list" in check.output
    assert f"{path}: {len(MARKUP_IDS)} valid tasks" in check.output
    for task_id in MARKUP_IDS:
        show = run("data", "show", task_id, "--source", str(path))
        assert show.exit_code == 0, show.output
        assert f"task {task_id}" in show.output and f"from {path}" in show.output
    missing = run("data", "show", "[/nope]", "--source", str(path))
    assert missing.exit_code == 1 and "task [/nope] is not in" in missing.output
    missing = run("data", "show", "no:abc:pe", "--source", str(path))  # an emoji code, not a picture
    assert missing.exit_code == 1 and "task no:abc:pe is not in" in missing.output, missing.output
    export = run("data", "export", str(path), "--out", str(folder / "[i]out"))
    assert export.exit_code == 1 and "task [/bad]: has no 'test' list" in export.output


def test_report_names_a_path_with_markup(tmp_path):
    run_dir = tmp_path / "[i]run"
    run_dir.mkdir()
    result = run("report", str(run_dir))
    assert result.exit_code == 1 and f"{run_dir}/metrics.jsonl: no such file" in result.output


def at_width(columns: int, *args):
    """The command's result on a terminal of this many columns (the console reads COLUMNS once, at import)."""
    from arcsolver.console import console

    saved, console.width = console.width, columns
    try:
        return runner.invoke(app, list(args), env={"COLUMNS": str(columns)})
    finally:
        console.width = saved


def test_settings_lists_every_setting_with_its_default_and_type():
    from arcsolver.config import PretrainConfig
    from arcsolver.recipes import setting_fields

    result = at_width(200, "settings", "pretrain")
    assert result.exit_code == 0, result.output
    for key in setting_fields(PretrainConfig):
        assert f" {key} " in result.output, key
    line = next(line for line in result.output.splitlines() if " optim.lr " in line)
    assert "0.0001" in line and "float (> 0, <= 3.40282e+38)" in line
    assert "pretrain settings: defaults" in result.output


def test_settings_of_a_recipe_show_its_values():
    result = at_width(200, "settings", "submit", "--recipe", "kaggle")
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if " run.safety_margin_s " in line)
    assert "600.0" in line and "kaggle.toml" in result.output


def test_settings_errors_and_a_bad_set_are_one_line():
    for args, fragment in (
        (["settings", "train"], "no such recipe stage"),
        (["settings", "pretrain", "--recipe", "nope"], "nope: no such recipe file"),
        (["solve", "x_challenges.json", "--set", "adapt.step=3"], "(did you mean adapt.steps?)"),
    ):
        result = run(*args)
        assert result.exit_code == 1 and fragment in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_data_export_to_a_full_disk_is_one_line(tmp_path, monkeypatch):
    import errno
    import os

    from arcsolver.data import loaders

    def full(path, obj):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(loaders, "atomic_write_json", full)
    out = tmp_path / "[i]out"
    result = run("data", "export", "arc1/evaluation", "--max-side", "5", "--out", str(out))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    error_line(result.output, out, "No space left on device", "already there are intact")


def test_plan_is_a_command_and_pretrain_plan_its_alias():
    tiny = [x for item in TINY for x in ("--set", item)]
    plan = runner.invoke(app, ["plan", *tiny, "--gpu-memory", "40", "--processes", "2"])
    alias = runner.invoke(app, ["pretrain", "--plan", *tiny, "--gpu-memory", "40", "--processes", "2"])
    assert plan.exit_code == 0 and alias.exit_code == 0, plan.output + alias.output
    assert plan.output == alias.output
    assert "on a 40 GB GPU: micro-batch" in plan.output and "of 4 per process" in plan.output


def test_plan_gives_the_runs_hours_from_a_measured_rate(tmp_path):
    tiny = [x for item in [*TINY, "run.steps=36000"] for x in ("--set", item)]
    records = [{"step": 10 * k, "samples_per_s": rate} for k, rate in enumerate([5.0, 80.0, 100.0, 90.0], 1)]
    (tmp_path / "config.json").write_text(tiny_config("run.steps=10").model_dump_json())  # a short run of it
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    result = runner.invoke(app, ["plan", *tiny, "--rate-from", str(tmp_path), "--processes", "2"])
    assert result.exit_code == 0, result.output
    # 36,000 steps of 8 at 90 samples/s (the median after the start-up record): 0.9 hours.
    assert "time: 0.9 hours for 36000 steps of 8 at the measured 90 samples/s, 1.8 GPU-hours over 2" in result.output
    (tmp_path / "metrics.jsonl").write_text(json.dumps(records[0]) + "\n")
    result = runner.invoke(app, ["plan", *tiny, "--rate-from", str(tmp_path)])
    assert result.exit_code == 1 and "no steady rate" in result.output and str(tmp_path) in result.output


def test_plan_says_what_it_is_doing_before_it_builds_the_task_versions(monkeypatch):
    from arcsolver.train import plan as plan_module

    said: list[str] = []
    real_build = plan_module.build_puzzles

    def build(*args, **kwargs):
        assert said and said[-1].startswith("building up to 2 augmented versions of each of 6 tasks"), said
        return real_build(*args, **kwargs)

    monkeypatch.setattr(plan_module, "build_puzzles", build)
    lines = plan_module.plan(tiny_config(), [40.0], 1, said.append)
    assert lines[0].startswith("data: ") and len(said) == 2


BOX_DRAWING = re.compile("[\u2500-\u257f]")


def words(text: str) -> set[str]:
    return set(BOX_DRAWING.sub(" ", text).split())


def assert_no_word_split_at_80_columns(*args, layout_words=()):
    """Every word of the output at 80 columns is a word of the output where nothing wraps: a
    word split across lines ("learning-rat" / "e") would be two words found nowhere else.
    layout_words: words only the narrow layout has (settings' "=")."""
    narrow, wide = at_width(80, *args), at_width(2000, *args)
    assert narrow.exit_code == wide.exit_code == 0, narrow.output
    split = words(narrow.output) - words(wide.output) - set(layout_words)
    assert not split, f"{args}: {sorted(split)}\n{narrow.output}"
    return narrow.output


def test_settings_read_in_80_columns_one_setting_a_line_its_meaning_below():
    for stage in ("pretrain", "submit"):
        output = assert_no_word_split_at_80_columns("settings", stage, layout_words="=")
        lines = output.splitlines()
        assert all(len(line.rstrip()) <= 80 for line in lines), output
        at = next(i for i, line in enumerate(lines) if line.startswith("optim.lr = "))
        assert "float (> 0, <= 3.40282e+38)" in lines[at] and lines[at + 1].startswith("    learning rate")


def test_every_help_screen_reads_in_80_columns():
    import typer.main

    def paths(command, prefix=()):
        yield prefix
        for name, sub in getattr(command, "commands", {}).items():
            yield from paths(sub, (*prefix, name))

    for path in paths(typer.main.get_command(app)):
        assert_no_word_split_at_80_columns(*path, "--help")
        # Where nothing wraps, each paragraph of the command's description is one line: the
        # help screen does not keep the docstring's line breaks.
        command = typer.main.get_command(app)
        for name in path:
            command = command.commands[name]
        lines = at_width(2000, *path, "--help").output.splitlines()
        for paragraph in inspect.cleandoc(command.help or "").split("\n\n"):
            assert any(" ".join(paragraph.split()) in line for line in lines), (path, paragraph)


def test_evaluate_reads_in_80_columns(tmp_path):
    folder = tmp_path / "a-directory-whose-name-alone-takes-up-most-of-a-line-of-eighty-columns"
    folder.mkdir()
    grid = [[1, 2], [3, 4]]
    (folder / "submission.json").write_text(json.dumps({"t1": [{"attempt_1": grid, "attempt_2": grid}]}))
    (folder / "solutions.json").write_text(json.dumps({"t1": [grid]}))
    output = assert_no_word_split_at_80_columns(
        "evaluate", str(folder / "submission.json"), "--solutions", str(folder / "solutions.json")
    )
    assert f"{folder / 'submission.json'} against {folder / 'solutions.json'}" in output
