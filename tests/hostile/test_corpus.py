"""Every command that reads ARC files, run on a corpus of hostile files (tests/hostile/corpus/): malformed
JSON, integers numpy cannot hold, bad grids, ids with markup, path separators and control
characters, and more. Each run ends with exit code 0 or 1, never a traceback, and every error
line names the file it is about."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arcsolver.cli import app

HOSTILE = Path(__file__).parent / "corpus"
CORPUS = sorted(HOSTILE.glob("*.json"))
SOLUTIONS = {"t1": [[[1, 2]]]}
SUBMISSION = {"t1": [{"attempt_1": [[1, 2]], "attempt_2": [[2, 1]]}]}

runner = CliRunner()


def first_id(path: Path) -> str:
    """A task id the file holds, if it is a readable object; else any id."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, RecursionError):
        return "x"
    return next(iter(obj), "x") if isinstance(obj, dict) else "x"


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
    assert result.exit_code in (0, 1), (args, result.output)
    assert "Traceback" not in result.output, (args, result.output)
    return result


def assert_errors_name(result, path: Path) -> None:
    """One error line at most; it and every problem line are single lines naming path."""
    lines = result.output.splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    problems = [line for line in lines if line.startswith("problem:")]
    assert len(errors) <= 1, result.output
    if result.exit_code:
        assert errors or problems, result.output
    for line in errors + problems:
        assert str(path) in line, line


@pytest.fixture
def reference(tmp_path):
    """A valid solutions file and a valid submission for it."""
    solutions, submission = tmp_path / "ref_solutions.json", tmp_path / "ref_submission.json"
    solutions.write_text(json.dumps(SOLUTIONS))
    submission.write_text(json.dumps(SUBMISSION))
    return solutions, submission


def test_the_corpus_is_small_and_covers_the_cases():
    names = {p.stem for p in CORPUS}
    assert len(CORPUS) >= 25 and all(p.stat().st_size <= 16_000 for p in CORPUS)
    for name in (
        "bad_json",
        "truncated",
        "huge_int_cell",
        "int64_overflow_cell",
        "negative_cell",
        "cell_10",
        "ragged_rows",
        "empty_grids",
        "grid_31x31",
        "top_level_list",
        "markup_ids",
        "path_separator_ids",
        "deep_nesting",
        "submission_missing_attempts",
        "wrong_types",
        "bom",
        "nan_literals",
    ):
        assert name in names, name


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_data_commands_end_in_one_line_naming_the_file(path, tmp_path):
    for args in (
        ["data", "check", str(path)],
        ["data", "show", first_id(path), "--source", str(path)],
        ["data", "export", str(path), "--out", str(tmp_path / "out")],
    ):
        assert_errors_name(invoke(*args), path)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_evaluate_as_submission_and_as_solutions_ends_in_lines_naming_the_file(path, reference, tmp_path):
    solutions, submission = reference
    for args in (
        ["evaluate", str(path), "--solutions", str(solutions), "--csv", str(tmp_path / "a.csv")],
        ["evaluate", str(path), "--solutions", str(solutions), "--json"],
        ["evaluate", str(submission), "--solutions", str(path), "--csv", str(tmp_path / "b.csv")],
    ):
        result = invoke(*args)
        assert result.exit_code == 1, (args, result.output)  # nothing in the corpus matches the reference
        assert_errors_name(result, path)


def test_the_whole_corpus_as_a_task_directory(tmp_path):
    result = invoke("data", "check", str(HOSTILE))
    assert result.exit_code == 1
    problems = [line for line in result.output.splitlines() if line.startswith("problem:")]
    assert all(str(HOSTILE) in line for line in problems)
    assert len(problems) >= len(CORPUS) - 3  # all but the few files that hold one valid task


@pytest.mark.parametrize(
    "name, fragment",
    [
        (
            "huge_int_cell.json",
            "task big: train pair 0 output: cell (0,0) is a 100-bit integer; colours are integers 0..9",
        ),
        ("int64_overflow_cell.json", "task i64: train pair 0 input: cell (0,0) is a 64-bit integer"),
        ("giant_int_cell.json", "invalid JSON: Exceeds the limit (4300 digits) for integer string conversion"),
        ("deep_nesting.json", "JSON nested too deeply to read"),
        ("markup_ids.json", "task [/x]: train pair 0 output: colour 10 is outside 0..9"),
        ("control_char_ids.json", "task 'a\\nb': train pair 0 output: colour 10"),
    ],
)
def test_what_data_check_says(name, fragment):
    result = invoke("data", "check", str(HOSTILE / name))
    assert result.exit_code == 1 and fragment in result.output, result.output


def test_a_byte_order_mark_is_read_and_of_duplicate_ids_the_last_counts():
    result = invoke("data", "check", str(HOSTILE / "bom.json"))
    assert result.exit_code == 0 and "1 valid tasks" in result.output, result.output
    result = invoke("data", "check", str(HOSTILE / "duplicate_keys.json"))
    assert "task dup: train pair 0 output: colour 10" in result.output  # as json.load reads it


SOLVE_QUICK = [
    "data.n_augmentations=2",
    "adapt.steps=2",
    "adapt.log_every=1",
    "optim.global_batch_size=8",
    "infer.max_versions=2",
    "infer.batch_size=16",
    "run.threads=1",
    "run.device='cpu'",
]


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_solve_ends_in_one_line_or_a_valid_submission_of_every_id(path, tiny_run, tmp_path):
    from arcsolver.errors import DataError
    from arcsolver.reader import read_json
    from arcsolver.solve.submission import check_submission

    out = tmp_path / "submission.json"
    result = invoke(
        "solve",
        str(path),
        "--out",
        str(out),
        "--checkpoint",
        str(tiny_run),
        *[x for s in SOLVE_QUICK for x in ("--set", s)],
    )
    assert_errors_name(result, path)
    try:
        obj = read_json(path)
    except DataError:
        obj = None
    if not isinstance(obj, dict):  # not a map of tasks: nothing to answer
        assert result.exit_code == 1 and not out.exists(), result.output
        return
    assert result.exit_code == 0, result.output
    sub = json.loads(out.read_text())
    assert list(sub) == list(obj) and check_submission(sub, None, str(out)) == []
    for line in result.output.splitlines():  # ids print as written, one line each
        assert "\x1b" not in line


def test_solve_prints_markup_and_control_character_ids_as_written(tiny_run, tmp_path):
    out = tmp_path / "submission.json"
    for name, ids in (
        ("markup_ids.json", ["[/x]", "[red]r[/red]"]),
        ("control_char_ids.json", ["'a\\nb'", "'\\x1b[31mred\\x1b[0m'"]),
    ):
        result = invoke(
            "solve",
            str(HOSTILE / name),
            "--out",
            str(out),
            "--checkpoint",
            str(tiny_run),
            *[x for s in SOLVE_QUICK for x in ("--set", s)],
        )
        assert result.exit_code == 0, result.output
        for task_id in ids:
            assert f"task {task_id}: " in result.output, (task_id, result.output)
