"""Tests for arcsolver/data/encoding.py: grids on token canvases and back."""

import numpy as np
import pytest
from helpers.strategies import FAST, grids
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from arcsolver.data.encoding import (
    CANVAS,
    COLOUR_OFFSET,
    EOS,
    PAD,
    VOCAB_SIZE,
    decode_batch,
    decode_grid,
    encode_grid,
    encode_pairs,
    translation_offset,
)
from arcsolver.data.task import Pair, as_grid


def reference_decode(tokens):
    """The decoding rule written as plainly as possible, row by row."""
    best, best_shape, min_width = 0, None, None
    for r in range(min(tokens.shape[0], 30)):
        width = 0
        while width < min(tokens.shape[1], 30) and 2 <= tokens[r, width] <= 11:
            width += 1
        if width == 0:
            break
        min_width = width if min_width is None else min(min_width, width)
        if (r + 1) * min_width > best:
            best, best_shape = (r + 1) * min_width, (r + 1, min_width)
    if best_shape is None:
        return None
    h, w = best_shape
    return (tokens[:h, :w] - 2).astype(np.uint8)


def assert_matches_reference(decoded, board):
    expected = reference_decode(board)
    if expected is None:
        assert decoded is None
    else:
        assert_valid_grid(decoded)
        np.testing.assert_array_equal(decoded, expected)


def assert_valid_grid(grid):
    assert isinstance(grid, np.ndarray) and grid.dtype == np.uint8
    np.testing.assert_array_equal(as_grid(grid), grid)


# -- hand-checked examples ------------------------------------------------------------------------


def test_constants():
    assert (PAD, EOS, COLOUR_OFFSET, VOCAB_SIZE, CANVAS) == (0, 1, 2, 12, 30)


def test_encode_small_example():
    board = encode_grid(as_grid([[1, 2], [3, 4]]), canvas=4)
    assert board.dtype == np.uint8
    assert board.tolist() == [
        [3, 4, 1, 0],
        [5, 6, 1, 0],
        [1, 1, 1, 0],
        [0, 0, 0, 0],
    ]


def test_encode_with_offset_and_edges():
    grid = as_grid([[0, 9]])
    assert encode_grid(grid, canvas=4, offset=(1, 1)).tolist() == [
        [0, 0, 0, 0],
        [0, 2, 11, 1],
        [0, 1, 1, 1],
        [0, 0, 0, 0],
    ]
    # Touching the bottom-right edge: no EOS cell fits.
    assert encode_grid(grid, canvas=3, offset=(2, 1)).tolist() == [
        [0, 0, 0],
        [0, 0, 0],
        [0, 2, 11],
    ]
    # Touching only the right edge: the EOS row remains, the EOS column is cut off.
    assert encode_grid(grid, canvas=3, offset=(0, 1)).tolist() == [
        [0, 2, 11],
        [0, 1, 1],
        [0, 0, 0],
    ]


def test_encode_rejects_what_does_not_fit():
    grid = np.zeros((3, 5), dtype=np.uint8)
    with pytest.raises(ValueError, match="does not fit"):
        encode_grid(grid, canvas=4)
    with pytest.raises(ValueError, match="does not fit"):
        encode_grid(grid, canvas=30, offset=(28, 0))
    with pytest.raises(ValueError, match="negative"):
        encode_grid(grid, canvas=30, offset=(-1, 0))
    with pytest.raises(ValueError, match="2-D"):
        encode_grid(np.zeros(3, dtype=np.uint8))


def test_decode_small_examples():
    assert decode_grid(np.zeros((30, 30), dtype=np.int64)) is None
    board = np.zeros((4, 4), dtype=np.int32)
    board[0, 0] = EOS
    assert decode_grid(board) is None
    board = np.array(
        [
            [2, 3, 4, 5],
            [6, 7, 8, 1],
            [9, 10, 0, 0],
            [11, 1, 0, 0],
        ]
    )
    # widths 4, 3, 2, 1: areas 4, 6, 6, 4, the first largest (2 x 3) wins
    assert decode_grid(board).tolist() == [[0, 1, 2], [4, 5, 6]]
    board[1, 1] = 0  # widths 4, 1 -> the 1 x 4 top row
    assert decode_grid(board).tolist() == [[0, 1, 2, 3]]


def test_decode_flat_and_out_of_vocab():
    board = encode_grid(as_grid([[5, 6], [7, 8]]))
    assert decode_grid(board.reshape(-1)).tolist() == [[5, 6], [7, 8]]
    noisy = board.astype(np.int64)
    noisy[0, 1] = 12  # not a token: ends the first row's colour run
    assert decode_grid(noisy).tolist() == [[5], [7]]
    with pytest.raises(ValueError):
        decode_grid(np.zeros((3, 4)))
    with pytest.raises(ValueError):
        decode_grid(np.zeros(10))


def test_pairs():
    a = as_grid([[1, 2, 3]])
    b = as_grid([[4], [5]])
    xs, ys = encode_pairs([Pair(a, b), Pair(b, a)], offsets=[(0, 0), (5, 6)])
    assert xs.shape == ys.shape == (2, CANVAS, CANVAS) and xs.dtype == ys.dtype == np.uint8
    np.testing.assert_array_equal(xs[1], encode_grid(b, offset=(5, 6)))
    np.testing.assert_array_equal(ys[1], encode_grid(a, offset=(5, 6)))
    with pytest.raises(ValueError):
        encode_pairs([Pair(a, b), Pair(a, None)])
    with pytest.raises(ValueError):
        encode_pairs([Pair(a, b), Pair(b, a)], offsets=[(0, 0)])
    inputs, labels = encode_pairs([Pair(a, b), Pair(b, a)])
    assert [g.tolist() for g in decode_batch(inputs)] == [a.tolist(), b.tolist()]
    assert [g.tolist() for g in decode_batch(labels.reshape(2, -1))] == [b.tolist(), a.tolist()]
    assert encode_pairs([])[0].shape == (0, CANVAS, CANVAS)


# -- properties -----------------------------------------------------------------------------------


@FAST
@given(grids(), st.integers(0, 4))
def test_encode_decode_round_trip(grid, extra):
    canvas = max(grid.shape) + extra
    board = encode_grid(grid, canvas=canvas)
    assert board.shape == (canvas, canvas) and board.dtype == np.uint8
    decoded = decode_grid(board)
    assert_valid_grid(decoded)
    np.testing.assert_array_equal(decoded, grid)


@FAST
@given(grids(), st.integers(0, 2**32 - 1))
def test_translation_keeps_the_grid_recoverable(grid, seed):
    rng = np.random.default_rng(seed)
    r0, c0 = translation_offset(rng.random(2), [grid.shape], CANVAS)
    h, w = grid.shape
    board = encode_grid(grid, offset=(r0, c0))
    np.testing.assert_array_equal(board[r0 : r0 + h, c0 : c0 + w] - COLOUR_OFFSET, grid)
    # Everything else is PAD except the EOS border just below and right of the grid.
    rest = board.copy()
    rest[r0 : r0 + h, c0 : c0 + w] = PAD
    eos = rest == EOS
    assert np.all(rest[~eos] == PAD)
    row_fits, column_fits = r0 + h < CANVAS, c0 + w < CANVAS
    expected_eos = row_fits * w + column_fits * h + (row_fits and column_fits)  # + the corner
    assert eos.sum() == expected_eos
    # Shifting the canvas back to the top-left and decoding recovers the grid.
    shifted = np.full_like(board, PAD)
    shifted[: CANVAS - r0, : CANVAS - c0] = board[r0:, c0:]
    np.testing.assert_array_equal(decode_grid(shifted), grid)


@FAST
@given(
    st.lists(st.tuples(st.integers(1, 30), st.integers(1, 30)), min_size=1, max_size=4),
    st.integers(0, 2**32 - 1),
)
def test_translation_offset_fits_every_shape(shapes, seed):
    rng = np.random.default_rng(seed)
    for shift in [(0.0, 0.0), (0.9999999, 0.9999999), *rng.random((5, 2))]:
        r0, c0 = translation_offset(shift, shapes)
        for h, w in shapes:
            assert 0 <= r0 and r0 + h <= CANVAS and 0 <= c0 and c0 + w <= CANVAS
            encode_grid(np.zeros((h, w), dtype=np.uint8), offset=(r0, c0))


def test_translation_offset_errors_and_spread():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        translation_offset((0.5, 0.5), [])
    with pytest.raises(ValueError):
        translation_offset((0.5, 0.5), [(31, 1)])
    assert translation_offset((0.99, 0.99), [(30, 30)]) == (0, 0)
    assert translation_offset((0.0, 0.99), [(29, 28), (3, 3)]) == (0, 2)
    offsets = {translation_offset(rng.random(2), [(29, 28)]) for _ in range(200)}
    assert offsets == {(r, c) for r in range(2) for c in range(3)}


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 34),
    st.sampled_from([np.uint8, np.int16, np.int64]),
    st.floats(0.0, 0.3),
    st.integers(0, 2**32 - 1),
)
def test_decode_of_arbitrary_canvases_is_always_valid(canvas, dtype, stop_rate, seed):
    rng = np.random.default_rng(seed)
    # Mostly colour tokens with some PAD/EOS, so that large rectangles occur as well as small.
    board = rng.integers(COLOUR_OFFSET, VOCAB_SIZE, (canvas, canvas))
    stops = rng.random((canvas, canvas)) < stop_rate
    board[stops] = rng.integers(0, COLOUR_OFFSET, stops.sum())
    board = board.astype(dtype)
    assert_matches_reference(decode_grid(board), board)


@FAST
@given(hnp.arrays(np.int64, (3, 31, 31), elements=st.integers(-3, 20)))
def test_decode_batch_of_anything_matches_reference(boards):
    for decoded, board in zip(decode_batch(boards), boards):
        assert_matches_reference(decoded, board)


@settings(max_examples=30, deadline=None)
@given(st.lists(grids(), min_size=1, max_size=6), st.integers(0, 2**32 - 1))
def test_pairs_match_single_grids(grid_list, seed):
    rng = np.random.default_rng(seed)
    pairs = [Pair(g, g.T.copy()) for g in grid_list]
    offsets = [translation_offset(rng.random(2), [p.input.shape, p.output.shape]) for p in pairs]
    inputs, labels = encode_pairs(pairs, offsets=offsets)
    for x, y, pair, offset in zip(inputs, labels, pairs, offsets):
        np.testing.assert_array_equal(x, encode_grid(pair.input, offset=offset))
        np.testing.assert_array_equal(y, encode_grid(pair.output, offset=offset))
    plain, _ = encode_pairs(pairs)
    for decoded, grid in zip(decode_batch(plain), grid_list):
        np.testing.assert_array_equal(decoded, grid)
