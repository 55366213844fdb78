"""Tests for arcsolver/data/augment.py: dihedral transforms, colour permutations, augment_task."""

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arcsolver.data.augment import (
    DIHEDRAL_INVERSE,
    DIHEDRAL_NAMES,
    DIHEDRAL_PRODUCT,
    N_DIHEDRAL,
    Augmentation,
    apply_dihedral,
    augment_task,
    augmented_id,
    invert_dihedral,
    random_colour_permutation,
    split_augmented_id,
)
from arcsolver.data.task import Pair, Task, as_grid

from strategies import FAST, grids


permutations = st.permutations(list(range(10))).map(tuple)
augmentations = st.builds(Augmentation, st.integers(0, N_DIHEDRAL - 1), permutations)


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


def assert_tasks_equal(a: Task, b: Task) -> None:
    assert a.id == b.id
    assert len(a.train) == len(b.train) and len(a.test) == len(b.test)
    for p, q in zip((*a.train, *a.test), (*b.train, *b.test)):
        np.testing.assert_array_equal(p.input, q.input)
        if p.output is None or q.output is None:
            assert p.output is None and q.output is None
        else:
            np.testing.assert_array_equal(p.output, q.output)


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
        out = apply_dihedral(grid, index)
        assert out.tolist() == expected[name]
        assert out.dtype == np.uint8 and out.flags["C_CONTIGUOUS"]
    assert apply_dihedral(SQUARE, 1).tolist() == np.rot90(SQUARE).tolist()


def test_bad_dihedral_index():
    with pytest.raises(ValueError):
        apply_dihedral(SQUARE, 8)
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
    task = Task("my_task", (Pair(SQUARE, WIDE),), (Pair(WIDE),))
    renamed = aug.apply_task(task)
    kept = aug.apply_task(task, keep_id=True)
    assert kept.id == "my_task"
    assert renamed.id == augmented_id("my_task", aug) == "my_task_t2.c0987654321"
    assert split_augmented_id(renamed.id) == ("my_task", aug)
    assert renamed.test[0].output is None
    with pytest.raises(ValueError):
        split_augmented_id("nosuffix")


# -- properties -----------------------------------------------------------------------------------


@FAST
@given(grids(), st.integers(0, N_DIHEDRAL - 1))
def test_inverse_transform_undoes_transform(grid, index):
    out = apply_dihedral(grid, index)
    np.testing.assert_array_equal(invert_dihedral(out, index), grid)
    np.testing.assert_array_equal(apply_dihedral(invert_dihedral(grid, index), index), grid)


def test_product_table_is_the_dihedral_group():
    for a in range(N_DIHEDRAL):
        assert DIHEDRAL_PRODUCT[0][a] == DIHEDRAL_PRODUCT[a][0] == a
        assert DIHEDRAL_PRODUCT[a][DIHEDRAL_INVERSE[a]] == 0
        assert sorted(DIHEDRAL_PRODUCT[a]) == list(range(N_DIHEDRAL))


@FAST
@given(grids(), augmentations)
def test_augmentation_inverse_on_grid(grid, aug):
    out = aug.apply_grid(grid)
    assert out.dtype == np.uint8 and out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(aug.inverse().apply_grid(out), grid)
    np.testing.assert_array_equal(aug.apply_grid(aug.inverse().apply_grid(grid)), grid)
    # "colours then transform" and "transform then colours" agree, as they must.
    lookup = np.asarray(aug.colours, dtype=np.uint8)
    np.testing.assert_array_equal(out, apply_dihedral(lookup[grid], aug.dihedral))
    np.testing.assert_array_equal(out, lookup[apply_dihedral(grid, aug.dihedral)])


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
@given(tasks(), augmentations)
def test_augmentation_inverse_on_task(task, aug):
    forward = aug.apply_task(task, keep_id=True)
    assert_tasks_equal(aug.inverse().apply_task(forward, keep_id=True), task)


@FAST
@given(augmentations, augmentations, grids(max_side=10))
def test_composition(a, b, grid):
    np.testing.assert_array_equal(a.then(b).apply_grid(grid), b.apply_grid(a.apply_grid(grid)))
    assert a.then(a.inverse()).is_identity
    assert a.inverse().then(a).is_identity
    assert a.inverse().inverse() == a


@FAST
@given(augmentations)
def test_string_round_trip(aug):
    text = str(aug)
    assert Augmentation.parse(text) == aug
    assert len(text) == len("t0.c0123456789")
    assert split_augmented_id(augmented_id("a_b", aug)) == ("a_b", aug)


@FAST
@given(st.integers(0, 2**32 - 1), st.sets(st.integers(0, 9), max_size=10))
def test_random_colour_permutation_keeps_fixed(seed, fixed):
    mapping = random_colour_permutation(np.random.default_rng(seed), fixed)
    assert sorted(mapping) == list(range(10))
    assert all(mapping[c] == c for c in fixed)
    again = random_colour_permutation(np.random.default_rng(seed), fixed)
    assert mapping == again


def test_random_augmentation_default_keeps_black():
    rng = np.random.default_rng(0)
    draws = [Augmentation.random(rng) for _ in range(200)]
    assert all(a.colours[0] == 0 for a in draws)
    assert {a.dihedral for a in draws} == set(range(N_DIHEDRAL))


# -- augment_task ---------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(tasks(), st.integers(1, 60), st.integers(0, 2**32 - 1))
def test_augment_task_properties(task, n, seed):
    versions = augment_task(task, n, seed)
    assert 1 <= len(versions) <= n
    first_aug, first_task = versions[0]
    assert first_aug.is_identity
    assert first_task.content_hash() == task.content_hash()
    hashes = [t.content_hash() for _, t in versions]
    assert len(set(hashes)) == len(hashes)
    for aug, version in versions:
        assert aug.colours[0] == 0
        assert version.id == augmented_id(task.id, aug)
        assert_tasks_equal(version, aug.apply_task(task))
    again = augment_task(task, n, np.random.default_rng(seed))
    assert [a for a, _ in again] == [a for a, _ in versions]


def real_looking_task():
    rng = np.random.default_rng(7)
    def noise(shape):
        return rng.integers(0, 10, shape, dtype=np.uint8)

    train = tuple(Pair(noise((5, 7)), noise((3, 4))) for _ in range(3))
    return Task("t", train, (Pair(noise((6, 6))),))


def test_augment_task_reaches_n_and_is_deterministic():
    task = real_looking_task()
    a = augment_task(task, 300, 123)
    b = augment_task(task, 300, 123)
    c = augment_task(task, 300, 124)
    assert len(a) == 300
    assert [str(x) for x, _ in a] == [str(x) for x, _ in b]
    assert [str(x) for x, _ in a] != [str(x) for x, _ in c]


def test_augment_task_fixed_colours():
    task = real_looking_task()
    for aug, _ in augment_task(task, 50, 0, fixed_colours=(0, 5)):
        assert aug.colours[0] == 0 and aug.colours[5] == 5


def test_augment_task_n_one_and_invalid_n():
    task = real_looking_task()
    assert len(augment_task(task, 1, 0)) == 1
    with pytest.raises(ValueError):
        augment_task(task, 0, 0)


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
    versions = augment_task(uniform_task(colour, shape), 1000, 0)
    assert time.perf_counter() - start < 2.0
    assert len(versions) == expected


def test_augment_task_respects_max_tries():
    versions = augment_task(real_looking_task(), 1000, 0, max_tries=10)
    assert len(versions) <= 11
