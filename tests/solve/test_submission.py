import json

import numpy as np
import pytest

from arcsolver.data.loaders import load_tasks
from arcsolver.data.task import GridError, Pair, Task, TaskSet, as_grid
from arcsolver.solve.submission import (
    attempts_entry,
    check_submission,
    fallback_attempts,
    parse_submission,
    submission_json,
    write_submission,
)

SRC = "sub.json"


def g(rows):
    return as_grid(rows)


def two_tasks() -> TaskSet:
    demo = (Pair(g([[1, 1]]), g([[2]])),)
    return TaskSet(
        [
            Task("aaaa0001", demo, (Pair(g([[1]])),)),
            Task("bbbb0002", demo, (Pair(g([[3]])), Pair(g([[4]])))),
        ]
    )


def good_submission() -> dict:
    def entry():
        return {"attempt_1": [[1]], "attempt_2": [[2]]}

    return {"aaaa0001": [entry()], "bbbb0002": [entry(), entry()]}


def test_a_complete_submission_has_no_problems():
    assert check_submission(good_submission(), two_tasks(), SRC) == []


def test_parse_returns_grids_per_test_input_and_keeps_going_past_bad_attempts():
    obj = good_submission()
    obj["bbbb0002"][1] = {"attempt_1": [[1, 2], [3]]}
    parsed, problems = parse_submission(obj, SRC)
    assert [len(v) for v in parsed.values()] == [1, 2]
    assert np.array_equal(parsed["aaaa0001"][0][1], [[2]]) and parsed["aaaa0001"][0][1].dtype == np.uint8
    assert parsed["bbbb0002"][1] == [None, None]
    assert problems == [
        "sub.json: task bbbb0002: test 1: attempt_1: ragged grid: rows have lengths [1, 2]",
        "sub.json: task bbbb0002: test 1: attempt_2 missing",
    ]


def one_problem(obj, tasks=None):
    problems = check_submission(obj, tasks if tasks is not None else two_tasks(), SRC)
    assert len(problems) == 1, problems
    assert "\n" not in problems[0]
    return problems[0]


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda s: s.pop("bbbb0002"), "sub.json: task bbbb0002: missing"),
        (lambda s: s.update(cccc0003=s["aaaa0001"]), "sub.json: task cccc0003: not a task of the challenges"),
        (lambda s: s["bbbb0002"].pop(), "sub.json: task bbbb0002: 1 test entries for 2 test inputs"),
        (lambda s: s["bbbb0002"].append(s["aaaa0001"][0]), "sub.json: task bbbb0002: 3 test entries for 2 test inputs"),
        (lambda s: s.update(aaaa0001={"attempt_1": [[1]]}), "sub.json: task aaaa0001: not a list of attempts"),
        (lambda s: s["bbbb0002"].__setitem__(1, [[1]]), "sub.json: task bbbb0002: test 1: not an object"),
        (
            lambda s: s["bbbb0002"].__setitem__(0, {"attempt_1": [[1]]}),
            "sub.json: task bbbb0002: test 0: attempt_2 missing",
        ),
        (
            lambda s: s["aaaa0001"].__setitem__(0, {"attempt_2": [[1]]}),
            "sub.json: task aaaa0001: test 0: attempt_1 missing",
        ),
        (lambda s: s["aaaa0001"][0].update(attempt_2=[[10]]), "sub.json: task aaaa0001: test 0: attempt_2: colour 10"),
        (
            lambda s: s["aaaa0001"][0].update(attempt_1=[[0] * 31]),
            "sub.json: task aaaa0001: test 0: attempt_1: grid is 1x31",
        ),
        (
            lambda s: s["aaaa0001"][0].update(attempt_1=[]),
            "sub.json: task aaaa0001: test 0: attempt_1: a grid must be a non-empty",
        ),
        (
            lambda s: s["aaaa0001"][0].update(attempt_1=[[1.0]]),
            "sub.json: task aaaa0001: test 0: attempt_1: cell (0,0)",
        ),
    ],
)
def test_every_rejected_entry_is_named_in_one_line(edit, expected):
    obj = good_submission()
    edit(obj)
    assert one_problem(obj).startswith(expected)


def test_a_top_level_that_is_not_an_object_is_one_problem():
    problem = one_problem([good_submission()])
    assert problem.startswith("sub.json: expected an object mapping task ids") and problem.endswith("got list")


def test_without_tasks_only_the_structure_is_checked():
    obj = good_submission()
    obj["bbbb0002"].pop()
    assert check_submission(obj, None, SRC) == []


def test_all_problems_are_reported_not_just_the_first():
    obj = {"aaaa0001": [{"attempt_1": [[11]]}], "zzzz9999": []}
    assert check_submission(obj, two_tasks(), SRC) == [
        "sub.json: task aaaa0001: test 0: attempt_1: colour 11 is outside 0..9",
        "sub.json: task aaaa0001: test 0: attempt_2 missing",
        "sub.json: task bbbb0002: missing (every task of the challenges needs an entry)",
        "sub.json: task zzzz9999: not a task of the challenges",
    ]


def test_submission_json_has_plain_ints_and_round_trips(tmp_path):
    a, b = np.array([[1, 2]], dtype=np.uint8), np.array([[3], [4]], dtype=np.uint8)
    obj = submission_json({"aaaa0001": [(a, b)], "bbbb0002": [(a, a), (b, b)]})
    assert type(obj["aaaa0001"][0]["attempt_1"][0][0]) is int
    path = tmp_path / "out" / "submission.json"
    write_submission(path, obj)
    assert json.loads(path.read_text()) == obj
    assert check_submission(json.loads(path.read_text()), two_tasks(), str(path)) == []
    assert [p.name for p in path.parent.iterdir()] == ["submission.json"]  # no temporary left behind


def test_attempts_entry_refuses_an_invalid_grid():
    with pytest.raises(GridError):
        attempts_entry(np.zeros((0, 3), dtype=np.uint8), np.zeros((1, 1), dtype=np.uint8))


def test_fallback_is_the_input_then_the_common_output_shape_in_the_common_colour():
    train = (
        Pair(g([[1]]), g([[5, 5], [5, 0]])),
        Pair(g([[1]]), g([[0, 5], [5, 5]])),
        Pair(g([[1]]), g([[0]])),
    )
    task = Task("t", train, (Pair(g([[1, 2, 3]])), Pair(g([[5, 5], [5, 5]]))))
    (a1, a2), (b1, b2) = fallback_attempts(task)
    assert np.array_equal(a1, [[1, 2, 3]]) and np.array_equal(a2, [[5, 5], [5, 5]])
    # The constant guess equals the second input, so attempt_2 repeats the input.
    assert np.array_equal(b1, [[5, 5], [5, 5]]) and np.array_equal(b2, b1)


def test_fallback_gives_a_valid_submission_for_every_evaluation_task():
    tasks = load_tasks("arc2/evaluation")
    entries = {}
    for task in tasks:
        attempts = fallback_attempts(task)
        assert len(attempts) == len(task.test)
        for a1, a2 in attempts:
            for grid in (a1, a2):
                assert grid.dtype == np.uint8
                as_grid(grid)  # raises on anything invalid
        entries[task.id] = attempts
    assert check_submission(json.loads(json.dumps(submission_json(entries))), tasks, "fallback") == []
