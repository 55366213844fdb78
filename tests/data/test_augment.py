"""Tests for arcsolver/data/augment.py: dihedral transforms, colour permutations, distinct_augmentations."""

import time

import numpy as np
import pytest
from helpers.strategies import FAST, grids
from hypothesis import given, settings
from hypothesis import strategies as st

from arcsolver.data.augment import (
    DIHEDRAL_INVERSE,
    DIHEDRAL_NAMES,
    N_DIHEDRAL,
    Augmentation,
    augmented_id,
    distinct_augmentations,
    split_augmented_id,
)
from arcsolver.data.task import Pair, Task, as_grid

IDENTITY_COLOURS = tuple(range(10))
permutations = st.permutations(list(range(10))).map(tuple)
augmentations = st.builds(Augmentation, st.integers(0, N_DIHEDRAL - 1), permutations)


def transform(grid, index):
    """Dihedral transform `index` of a grid, colours kept."""
    return Augmentation(index, IDENTITY_COLOURS).apply_grid(grid)


@st.composite
def pairs(draw, max_side=8, allow_unknown=False):
    output = draw(grids(max_side))
    if allow_unknown and draw(st.booleans()):
        output = None
    return Pair(draw(grids(max_side)), output)


@st.composite
def tasks(draw):
    train = draw(st.lists(pairs(), min_size=1, max_size=3))
    test = draw(st.lists(pairs(allow_unknown=True), min_size=1, max_size=2))
    return Task("abcd1234", tuple(train), tuple(test))


def version_of(task: Task, aug: Augmentation) -> Task:
    """The augmented version of a task, as the training stream builds it pair by pair."""
    train, test = tuple(map(aug.apply_pair, task.train)), tuple(map(aug.apply_pair, task.test))
    return Task(augmented_id(task.id, aug), train, test)


# -- hand-checked examples ------------------------------------------------------------------------

SQUARE = as_grid([[1, 2], [3, 4]])
WIDE = as_grid([[1, 2, 3], [4, 5, 6]])

# Rotations are counter-clockwise, as numpy's rot90.
EXPECTED_SQUARE = {
    "identity": [[1, 2], [3, 4]],
    "rot90": [[2, 4], [1, 3]],
    "rot180": [[4, 3], [2, 1]],
    "rot270": [[3, 1], [4, 2]],
    "flip_lr": [[2, 1], [4, 3]],
    "flip_ud": [[3, 4], [1, 2]],
    "transpose": [[1, 3], [2, 4]],
    "anti_transpose": [[4, 2], [3, 1]],
}
EXPECTED_WIDE = {
    "identity": [[1, 2, 3], [4, 5, 6]],
    "rot90": [[3, 6], [2, 5], [1, 4]],
    "rot180": [[6, 5, 4], [3, 2, 1]],
    "rot270": [[4, 1], [5, 2], [6, 3]],
    "flip_lr": [[3, 2, 1], [6, 5, 4]],
    "flip_ud": [[4, 5, 6], [1, 2, 3]],
    "transpose": [[1, 4], [2, 5], [3, 6]],
    "anti_transpose": [[6, 3], [5, 2], [4, 1]],
}


def test_names_and_order():
    assert DIHEDRAL_NAMES == tuple(EXPECTED_SQUARE)
    assert N_DIHEDRAL == 8
    assert DIHEDRAL_INVERSE == (0, 3, 2, 1, 4, 5, 6, 7)


@pytest.mark.parametrize("index", range(N_DIHEDRAL))
def test_hand_checked_transforms(index):
    name = DIHEDRAL_NAMES[index]
    for grid, expected in ((SQUARE, EXPECTED_SQUARE), (WIDE, EXPECTED_WIDE)):
        out = transform(grid, index)
        assert out.tolist() == expected[name]
        assert out.dtype == np.uint8 and out.flags["C_CONTIGUOUS"]
    assert transform(SQUARE, 1).tolist() == np.rot90(SQUARE).tolist()


def test_bad_dihedral_index():
    with pytest.raises(ValueError):
        Augmentation(8, tuple(range(10)))
    with pytest.raises(ValueError):
        Augmentation(0, (1, 1, 2, 3, 4, 5, 6, 7, 8, 9))


def test_apply_order_is_colours_then_transform():
    swap_1_2 = (0, 2, 1, 3, 4, 5, 6, 7, 8, 9)
    aug = Augmentation(1, swap_1_2)
    # colours: [[2, 1], [3, 4]], then rot90 (counter-clockwise): [[1, 4], [2, 3]]
    assert aug.apply_grid(SQUARE).tolist() == [[1, 4], [2, 3]]
    inv = aug.inverse()
    assert inv == Augmentation(3, swap_1_2)
    assert inv.apply_grid(as_grid([[1, 4], [2, 3]])).tolist() == SQUARE.tolist()


def test_inverse_of_a_three_cycle():
    cycle = (0, 2, 3, 1, 4, 5, 6, 7, 8, 9)  # 1 -> 2 -> 3 -> 1
    inv = Augmentation(6, cycle).inverse()
    assert inv.colours == (0, 3, 1, 2, 4, 5, 6, 7, 8, 9)
    assert inv.dihedral == 6


def test_string_form_examples():
    assert str(Augmentation.identity()) == "t0.c0123456789"
    aug = Augmentation.parse("t3.c0712345689")
    assert aug.dihedral == 3
    assert aug.colours == (0, 7, 1, 2, 3, 4, 5, 6, 8, 9)
    for bad in ("", "t8.c0123456789", "t1.c012345678", "t1.c0123456788", "x1.c0123456789"):
        with pytest.raises(ValueError):
            Augmentation.parse(bad)


def test_ids():
    aug = Augmentation.parse("t2.c0987654321")
    assert augmented_id("my_task", aug) == "my_task_t2.c0987654321"
    assert split_augmented_id("my_task_t2.c0987654321") == ("my_task", aug)
    with pytest.raises(ValueError):
        split_augmented_id("nosuffix")


# -- properties -----------------------------------------------------------------------------------


@FAST
@given(grids(), augmentations)
def test_augmentation_inverse_on_grid(grid, aug):
    out = aug.apply_grid(grid)
    assert out.dtype == np.uint8 and out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(aug.inverse().apply_grid(out), grid)
    np.testing.assert_array_equal(aug.apply_grid(aug.inverse().apply_grid(grid)), grid)
    assert aug.inverse().inverse() == aug
    # "colours then transform" and "transform then colours" agree, as they must.
    lookup = np.asarray(aug.colours, dtype=np.uint8)
    np.testing.assert_array_equal(out, transform(lookup[grid], aug.dihedral))
    np.testing.assert_array_equal(out, lookup[transform(grid, aug.dihedral)])


@FAST
@given(pairs(max_side=30, allow_unknown=True), augmentations)
def test_augmentation_inverse_on_pair(pair, aug):
    back = aug.inverse().apply_pair(aug.apply_pair(pair))
    np.testing.assert_array_equal(back.input, pair.input)
    if pair.output is None:
        assert back.output is None
    else:
        np.testing.assert_array_equal(back.output, pair.output)


@FAST
@given(augmentations)
def test_string_round_trip(aug):
    text = str(aug)
    assert Augmentation.parse(text) == aug
    assert len(text) == len("t0.c0123456789")
    assert split_augmented_id(augmented_id("a_b", aug)) == ("a_b", aug)


# -- distinct_augmentations -----------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(tasks(), st.integers(1, 60), st.integers(0, 2**32 - 1))
def test_distinct_augmentations_properties(task, n, seed):
    augs = distinct_augmentations(task, n, seed)
    assert 1 <= len(augs) <= n
    assert augs[0] == Augmentation.identity()
    hashes = [version_of(task, a).content_hash() for a in augs]
    assert hashes[0] == task.content_hash()
    assert len(set(hashes)) == len(hashes)
    assert all(a.colours[0] == 0 for a in augs)  # black is fixed by default
    assert distinct_augmentations(task, n, np.random.default_rng(seed)) == augs


def real_looking_task():
    rng = np.random.default_rng(7)

    def noise(shape):
        return rng.integers(0, 10, shape, dtype=np.uint8)

    train = tuple(Pair(noise((5, 7)), noise((3, 4))) for _ in range(3))
    return Task("t", train, (Pair(noise((6, 6))),))


def test_distinct_augmentations_reach_n_and_are_deterministic():
    task = real_looking_task()
    a = distinct_augmentations(task, 300, 123)
    b = distinct_augmentations(task, 300, 123)
    c = distinct_augmentations(task, 300, 124)
    assert len(a) == 300
    assert a == b and a != c
    assert {x.dihedral for x in a} == set(range(N_DIHEDRAL))


def test_distinct_augmentations_keep_fixed_colours():
    task = real_looking_task()
    for aug in distinct_augmentations(task, 50, 0, fixed_colours=(0, 5)):
        assert aug.colours[0] == 0 and aug.colours[5] == 5
    with pytest.raises(ValueError):
        distinct_augmentations(task, 5, 0, fixed_colours=(10,))


def test_distinct_augmentations_n_one_and_invalid_n():
    task = real_looking_task()
    assert len(distinct_augmentations(task, 1, 0)) == 1
    with pytest.raises(ValueError):
        distinct_augmentations(task, 0, 0)


def uniform_task(colour, shape):
    grid = np.full(shape, colour, dtype=np.uint8)
    return Task("u", (Pair(grid, grid.copy()),), (Pair(grid.copy(), None),))


@pytest.mark.parametrize(
    "colour, shape, expected",
    [
        (0, (3, 3), 1),  # black is fixed and the square is symmetric: nothing changes
        (0, (2, 3), 2),  # only the shape can change: 2x3 or 3x2
        (5, (3, 3), 9),  # colour 5 may become any of 1..9
        (5, (2, 3), 18),
    ],
)
def test_symmetric_task_yields_few_versions_quickly(colour, shape, expected):
    start = time.perf_counter()
    versions = distinct_augmentations(uniform_task(colour, shape), 1000, 0)
    assert time.perf_counter() - start < 2.0
    assert len(versions) == expected


def test_distinct_augmentations_respect_max_tries():
    versions = distinct_augmentations(real_looking_task(), 1000, 0, max_tries=10)
    assert len(versions) <= 11
