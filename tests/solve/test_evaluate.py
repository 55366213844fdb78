import json

import pandas as pd
import pytest
from helpers import error_line
from typer.testing import CliRunner

from arcsolver.cli import app
from arcsolver.errors import DataError
from arcsolver.solve.evaluate import evaluate_submission

SOLUTIONS = {
    "aaaa0001": [[[1, 2], [3, 4]], [[5, 5, 5]]],
    "bbbb0002": [[[1, 0], [0, 1]]],
    "cccc0003": [[[3, 3], [3, 3]], [[1]]],
}
SUBMISSION = {
    "aaaa0001": [
        {"attempt_1": [[1, 2], [3, 0]], "attempt_2": [[1, 2], [3, 4]]},  # attempt_2 only; 3/4 cells
        {"attempt_1": [[5, 0, 0]], "attempt_2": [[0, 0, 0]]},  # unsolved; 1/3 cells
    ],
    "bbbb0002": [{"attempt_1": [[1, 0], [0, 1]], "attempt_2": [[0]]}],  # attempt_1
    "cccc0003": [
        {"attempt_1": [[3, 3, 3]], "attempt_2": [[3]]},  # wrong shape: 0 cells
        {"attempt_1": [[2]], "attempt_2": [[2]]},  # right shape, no cell right
    ],
}
# By hand, per task then over tasks (pooling the 5 test outputs would give 2/5 and 1/5 instead):
PASS_AT_2 = (1 / 2 + 1 + 0) / 3
PASS_AT_1 = (0 + 1 + 0) / 3
CELL_ACCURACY = ((3 / 4 + 1 / 3) / 2 + 1 + (0 + 0) / 2) / 3  # = 37/72

runner = CliRunner()


@pytest.fixture
def files(tmp_path):
    sub, sol = tmp_path / "sub.json", tmp_path / "eval_solutions.json"
    sub.write_text(json.dumps(SUBMISSION))
    sol.write_text(json.dumps(SOLUTIONS))
    return sub, sol


def test_scores_match_the_hand_computed_ones(files):
    result = evaluate_submission(*files)
    assert result.pass_at_2 == pytest.approx(PASS_AT_2) == pytest.approx(0.5)
    assert result.pass_at_1 == pytest.approx(PASS_AT_1)
    assert result.cell_accuracy == pytest.approx(CELL_ACCURACY) == pytest.approx(37 / 72)
    assert (result.n_tasks, result.solved_tasks) == (3, 1)


def test_per_test_table_has_a_row_per_test_output(files):
    table = evaluate_submission(*files).per_test
    assert list(zip(table.task_id, table.test_index)) == [
        ("aaaa0001", 0),
        ("aaaa0001", 1),
        ("bbbb0002", 0),
        ("cccc0003", 0),
        ("cccc0003", 1),
    ]
    assert table.attempt_1_correct.tolist() == [False, False, True, False, False]
    assert table.attempt_2_correct.tolist() == [True, False, False, False, False]
    assert table.cell_accuracy.tolist() == pytest.approx([0.75, 1 / 3, 1.0, 0.0, 0.0])
    assert table.answer_shape.tolist() == ["2x2", "1x3", "2x2", "2x2", "1x1"]
    assert table.attempt_1_shape.tolist() == ["2x2", "1x3", "2x2", "1x3", "1x1"]


def test_per_task_table_is_the_mean_over_test_outputs(files):
    table = evaluate_submission(*files).per_task.set_index("task_id")
    assert table["pass@2"].tolist() == [0.5, 1.0, 0.0]
    assert table["pass@1"].tolist() == [0.0, 1.0, 0.0]
    assert table["test_outputs"].tolist() == [2, 1, 2]


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda s: s.pop("bbbb0002"), "task bbbb0002: missing"),
        (lambda s: s["bbbb0002"][0].pop("attempt_2"), "task bbbb0002: test 0: attempt_2 missing"),
        (lambda s: s["aaaa0001"][1].update(attempt_1=[[1], [2, 3]]), "task aaaa0001: test 1: attempt_1: ragged grid"),
        (lambda s: s["cccc0003"].pop(), "task cccc0003: 1 test entries for 2 test inputs"),
    ],
)
def test_a_submission_the_competition_would_reject_is_a_data_error(files, edit, fragment):
    sub, sol = files
    obj = json.loads(json.dumps(SUBMISSION))
    edit(obj)
    sub.write_text(json.dumps(obj))
    with pytest.raises(DataError) as e:
        evaluate_submission(sub, sol)
    message = str(e.value)
    assert f"{sub}: {fragment}" in message and "\n" not in message


def test_the_first_problem_is_named_and_the_rest_counted(files):
    sub, sol = files
    sub.write_text(json.dumps({"aaaa0001": SUBMISSION["aaaa0001"]}))
    with pytest.raises(DataError, match=r"task bbbb0002: missing .*\(and 1 more problems\)$"):
        evaluate_submission(sub, sol)


def test_unreadable_files_are_data_errors(files, tmp_path):
    sub, sol = files
    with pytest.raises(DataError, match="no such file"):
        evaluate_submission(sub, tmp_path / "nope.json")
    sol.write_text('{"aaaa0001": [')
    with pytest.raises(DataError, match="eval_solutions.json: invalid JSON"):
        evaluate_submission(sub, sol)
    sol.write_text(json.dumps({"aaaa0001": [[[1, 2], [3]]]}))
    with pytest.raises(DataError, match="task aaaa0001: output 0: ragged grid"):
        evaluate_submission(sub, sol)


def test_cli_json_is_one_object_matching_the_scores(files):
    sub, sol = files
    result = runner.invoke(app, ["evaluate", str(sub), "--solutions", str(sol), "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores == {
        "pass@2": pytest.approx(PASS_AT_2),
        "pass@1": pytest.approx(PASS_AT_1),
        "cell_accuracy": pytest.approx(CELL_ACCURACY),
        "tasks": 3,
        "solved_tasks": 1,
    }


def test_cli_table_and_csv_beside_the_submission(files):
    sub, sol = files
    result = runner.invoke(app, ["evaluate", str(sub), "--solutions", str(sol)])
    assert result.exit_code == 0, result.output
    assert "pass@2" in result.output and "0.5000" in result.output and "tasks solved" in result.output
    table = pd.read_csv(sub.with_name("sub.scores.csv"))
    assert len(table) == sum(len(v) for v in SOLUTIONS.values())
    assert table.cell_accuracy.tolist() == pytest.approx([0.75, 1 / 3, 1.0, 0.0, 0.0])


def test_cli_csv_path_can_be_chosen(files, tmp_path):
    sub, sol = files
    out = tmp_path / "scores" / "per_test.csv"
    result = runner.invoke(app, ["evaluate", str(sub), "--solutions", str(sol), "--csv", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out)) == 5 and not sub.with_name("sub.scores.csv").exists()


def test_cli_errors_are_one_line(files, tmp_path):
    sub, sol = files
    for args in (
        [str(tmp_path / "missing.json"), "--solutions", str(sol)],
        [str(sub), "--solutions", str(tmp_path / "missing.json")],
        [str(sub), "--solutions", str(sol), "--csv", str(sub / "x.csv")],  # a file as the folder
    ):
        result = runner.invoke(app, ["evaluate", *args])
        assert result.exit_code == 1, args
        assert "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize("cell", [10**30, 2**63])
def test_huge_integers_in_either_file_are_one_line_data_errors(files, cell):
    sub, sol = files
    obj = json.loads(json.dumps(SUBMISSION))
    obj["bbbb0002"][0]["attempt_1"] = [[cell]]
    sub.write_text(json.dumps(obj))
    with pytest.raises(DataError, match=r"task bbbb0002: test 0: attempt_1: cell \(0,0\) is a \d+-bit integer"):
        evaluate_submission(sub, sol)
    sub.write_text(json.dumps(SUBMISSION))
    sol.write_text(json.dumps({**SOLUTIONS, "cccc0003": [[[cell]], [[1]]]}))
    with pytest.raises(DataError, match=r"eval_solutions.json: task cccc0003: output 0: cell \(0,0\) is a \d+-bit"):
        evaluate_submission(sub, sol)


def test_deeply_nested_json_is_one_line_naming_the_file(files):
    sub, sol = files
    sub.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DataError, match=r"sub.json: JSON nested too deeply"):
        evaluate_submission(sub, sol)


REJECTED = {"aaaa0001": SUBMISSION["aaaa0001"][:1], "cccc0003": [{"attempt_1": [[1]]}] * 2, "zzzz9999": []}
REJECTED_PROBLEMS = [
    "task cccc0003: test 0: attempt_2 missing",
    "task cccc0003: test 1: attempt_2 missing",
    "task aaaa0001: 1 test entries for 2 test inputs",
    "task bbbb0002: missing (every task of the challenges needs an entry)",
    "task zzzz9999: not a task of the challenges",
]


def test_cli_names_every_problem_of_a_rejected_submission_one_line_each(files):
    sub, sol = files
    sub.write_text(json.dumps(REJECTED))
    result = runner.invoke(app, ["evaluate", str(sub), "--solutions", str(sol)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert lines[:-1] == [f"problem: {sub}: {p}" for p in REJECTED_PROBLEMS]
    error_line(result.output, sub, "reject", "5 problems")
    assert not sub.with_name("sub.scores.csv").exists()


def test_cli_json_of_a_rejected_submission_holds_every_problem(files):
    sub, sol = files
    sub.write_text(json.dumps(REJECTED))
    result = runner.invoke(app, ["evaluate", str(sub), "--solutions", str(sol), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"rejected": True, "problems": [f"{sub}: {p}" for p in REJECTED_PROBLEMS]}


def test_cli_json_writes_no_csv_unless_asked(files):
    sub, sol = files
    sub.parent.chmod(0o555)  # a read-only folder (root ignores this; the CSV path is what is checked)
    try:
        result = runner.invoke(app, ["evaluate", str(sub), "--solutions", str(sol), "--json"])
    finally:
        sub.parent.chmod(0o755)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tasks"] == 3
    assert [p.name for p in sub.parent.iterdir() if p.suffix == ".csv"] == []


def test_csv_cells_that_start_a_formula_are_quoted_but_numbers_are_not(tmp_path):
    ids = ["=1+1", "+cmd", "-2", "@SUM(A1)", "plain", "a=b"]
    sol, sub = tmp_path / "s.json", tmp_path / "sub.json"
    sol.write_text(json.dumps({task_id: [[[1]]] for task_id in ids}))
    sub.write_text(json.dumps({task_id: [{"attempt_1": [[1]], "attempt_2": [[2]]}] for task_id in ids}))
    out = tmp_path / "scores.csv"
    result = runner.invoke(app, ["evaluate", str(sub), "--solutions", str(sol), "--csv", str(out), "--json"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, keep_default_na=False)
    assert table.task_id.tolist() == ["'=1+1", "'+cmd", "'-2", "'@SUM(A1)", "plain", "a=b"]
    assert table.cell_accuracy.tolist() == [1.0] * 6 and table.test_index.tolist() == [0] * 6


def test_spreadsheet_safe_leaves_negative_numbers_alone():
    from arcsolver.solve.evaluate import spreadsheet_safe

    table = pd.DataFrame({"task_id": ["-x", "y"], "delta": [-1.5, 2.0], "n": [-3, 4]})
    safe = spreadsheet_safe(table)
    assert safe.task_id.tolist() == ["'-x", "y"]
    assert safe.delta.tolist() == [-1.5, 2.0] and safe.n.tolist() == [-3, 4]


def test_a_sources_record_beside_the_submission_splits_the_scores_of_the_model_and_the_fallbacks(files):
    sub, sol = files
    assert evaluate_submission(sub, sol).by_source is None  # no record: no split
    model = {"source": "model", "votes": 3, "checkpoints": {"ckpt-0": 3}, "rollout_votes": 0}
    fallback = {"source": "fallback: the test input"}
    sources = {
        "aaaa0001": [{"attempt_1": model, "attempt_2": model}, {"attempt_1": fallback, "attempt_2": fallback}],
        "bbbb0002": [{"attempt_1": model, "attempt_2": fallback}],
        "cccc0003": [{"attempt_1": fallback, "attempt_2": fallback}, {"attempt_1": fallback, "attempt_2": fallback}],
    }
    sub.with_name("sub.sources.json").write_text(json.dumps(sources))
    result = evaluate_submission(sub, sol)
    assert result.pass_at_2 == pytest.approx(PASS_AT_2)  # the headline scores are the same
    assert result.by_source == {
        "model": {"test_outputs": 2, "pass@2": 1.0, "cell_accuracy": pytest.approx((3 / 4 + 1) / 2)},
        "fallback": {"test_outputs": 3, "pass@2": 0.0, "cell_accuracy": pytest.approx(1 / 9)},
    }
    assert list(result.per_test["attempt_2_source"])[2] == "fallback: the test input"
    shown = runner.invoke(app, ["evaluate", str(sub), "--solutions", str(sol)], env={"COLUMNS": "200"})
    assert "the model's answers (2 test outputs): pass@2, cells" in shown.output and "1.0000, 0.8750" in shown.output
    assert "fallbacks' answers (3 test outputs)" in shown.output
