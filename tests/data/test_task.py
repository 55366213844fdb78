import numpy as np
import pytest

from arcsolver.data.task import GridError, Pair, Task, TaskSet, as_grid


def test_as_grid_accepts_lists_and_returns_uint8():
    g = as_grid([[0, 9], [3, 4]])
    assert g.dtype == np.uint8 and g.shape == (2, 2) and g[0, 1] == 9


@pytest.mark.parametrize(
    "value, message",
    [
        ([[1, 2], [3]], "ragged"),
        ([[10]], "colour 10"),
        ([[-1]], "colour -1"),
        ([[0] * 31] * 31, "31x31"),
        ([], "non-empty"),
        ([[]], "0"),
        ([[1.5]], "not an integer"),
        ([[True]], "not an integer"),
        ([["1"]], "not an integer"),
        ("12", "non-empty list"),
    ],
)
def test_as_grid_rejects_invalid(value, message):
    with pytest.raises(GridError, match=message):
        as_grid(value)


def test_content_hash_sees_shape_and_cells():
    a = Task("a", (Pair(as_grid([[1, 2]]), as_grid([[2, 1]])),), (Pair(as_grid([[1]])),))
    b = Task("b", (Pair(as_grid([[1], [2]]), as_grid([[2, 1]])),), (Pair(as_grid([[1]])),))
    c = Task("c", (Pair(as_grid([[1, 2]]), as_grid([[2, 1]])),), (Pair(as_grid([[1]])),))
    assert a.content_hash() != b.content_hash()  # same bytes, different shape
    assert a.content_hash() == c.content_hash()  # the id is not part of the content


def test_taskset_indexing():
    t = Task("x", (Pair(as_grid([[1]]), as_grid([[1]])),), (Pair(as_grid([[1]])),))
    ts = TaskSet([t], name="s")
    assert ts["x"] is t and ts[0] is t and "x" in ts and len(ts) == 1
    assert len(ts.filter(lambda task: False)) == 0


@pytest.mark.parametrize(
    "value, message",
    [
        ([[10**30]], r"cell \(0,0\) is a 100-bit integer; colours are integers 0\.\.9"),
        ([[1, 2**63]], r"cell \(0,1\) is a 64-bit integer"),
        ([[-(2**63) - 1]], r"a negative 64-bit integer"),
        ([[10**5000]], r"a 16610-bit integer"),
    ],
)
def test_integers_numpy_cannot_hold_are_grid_errors_with_short_messages(value, message):
    with pytest.raises(GridError, match=message) as e:
        as_grid(value)
    assert len(str(e.value)) < 80


def test_a_deeply_nested_cell_is_described_briefly():
    cell = 1
    for _ in range(500):
        cell = [cell]
    with pytest.raises(GridError, match=r"cell \(0,0\) is \[\[\[.*\.\.\..*not an integer colour") as e:
        as_grid([[cell]])
    assert len(str(e.value)) < 80


def test_arrays_must_hold_integers():
    assert as_grid(np.array([[1, 2]], dtype=np.int64)).dtype == np.uint8
    with pytest.raises(GridError, match="float64"):
        as_grid(np.array([[1.0]]))
