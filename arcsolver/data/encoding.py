"""Grids to token canvases and back: the model reads and writes fixed canvases of 12 tokens.

A grid sits on a canvas x canvas board (30 x 30 by default, read row-major as 900 tokens).
Colour c is token c + 2; the row just below the grid and the column just right of it are EOS,
which tells the model (and the decoder) the grid's height and width; every other cell is PAD.
With a translation offset (r0, c0) the grid's top-left cell sits at (r0, c0) instead of (0, 0).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from arcsolver.data.task import MAX_SIDE, N_COLOURS, Grid, Pair

PAD = 0
EOS = 1
COLOUR_OFFSET = 2  # colour c is token c + COLOUR_OFFSET
VOCAB_SIZE = COLOUR_OFFSET + N_COLOURS  # 12
CANVAS = MAX_SIDE  # the largest ARC grid fills the whole default canvas

Offset = tuple[int, int]

# Square canvas sides a grid-sized layout draws from: a few fixed sizes (so a compiled network
# sees a few shapes), every 4 cells, which keeps about 80% of the saving of exact sizes.
CANVAS_SIDES = (6, 10, 14, 18, 22, 26, 30)


def fitting_side(shapes: Iterable[tuple[int, ...]], sides: Sequence[int] = CANVAS_SIDES) -> int:
    """The smallest side in `sides` whose square canvas holds grids of these shapes with their
    EOS border (a grid as long as the largest side needs none: the canvas edge marks it)."""
    longest, largest = max(max(shape) for shape in shapes), max(sides)
    if longest > largest:
        raise ValueError(f"no canvas side in {tuple(sides)} holds a grid of side {longest}")
    return min(side for side in sides if side >= min(longest + 1, largest))


def canvas_sides(
    positions: str, canvas: int, layout: str = "auto", sides: Sequence[int] = CANVAS_SIDES
) -> tuple[int, ...] | None:
    """The sides of a grid-sized layout (those of sides below canvas, and canvas itself), or None
    where every example sits on the one canvas: layout "fixed" asks for it, and rope1d positions
    know one canvas ("auto" is sized with rope2d). Each example then takes `fitting_side`."""
    sized = layout == "sized" or (layout == "auto" and positions == "rope2d")
    if not sized:
        return None
    return tuple(sorted({s for s in sides if s < canvas} | {canvas}))


def _check_fits(shape: tuple[int, ...], canvas: int, offset: Offset) -> tuple[int, int]:
    """The offset as two ints, or a ValueError saying why the grid does not fit there."""
    if len(shape) != 2:
        raise ValueError(f"a grid must be 2-D, got shape {shape}")
    h, w = shape
    r0, c0 = (int(v) for v in offset)
    if r0 < 0 or c0 < 0:
        raise ValueError(f"offset {offset} must not be negative")
    if r0 + h > canvas or c0 + w > canvas:
        raise ValueError(f"a {h}x{w} grid at offset ({r0}, {c0}) does not fit a {canvas}x{canvas} canvas")
    return r0, c0


def _write_grid(board: np.ndarray, grid: Grid, offset: Offset) -> None:
    """Draw grid and its EOS border onto a PAD-filled [canvas, canvas] board, in place."""
    canvas = board.shape[0]
    r0, c0 = _check_fits(grid.shape, canvas, offset)
    h, w = grid.shape
    board[r0 : r0 + h, c0 : c0 + w] = grid + COLOUR_OFFSET
    # Slices past the canvas edge are cut short by numpy, which is exactly the "skip" we want;
    # the corner (r0 + h, c0 + w) is on both the EOS row and the EOS column.
    if r0 + h < canvas:
        board[r0 + h, c0 : c0 + w + 1] = EOS
    if c0 + w < canvas:
        board[r0 : r0 + h + 1, c0 + w] = EOS


def encode_grid(grid: Grid, canvas: int = CANVAS, offset: Offset = (0, 0)) -> np.ndarray:
    """A [canvas, canvas] uint8 token array: PAD, the grid's colour tokens at offset, EOS border."""
    board = np.full((canvas, canvas), PAD, dtype=np.uint8)
    _write_grid(board, grid, offset)
    return board


def encode_pairs(
    pairs: Sequence[Pair], canvas: int = CANVAS, offsets: Sequence[Offset] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels), each [len(pairs), canvas, canvas] uint8: pair i's input and output grids,
    both at offsets[i] (default (0, 0)), each with its EOS border."""
    if offsets is not None and len(offsets) != len(pairs):
        raise ValueError(f"{len(offsets)} offsets for {len(pairs)} pairs")
    inputs = np.full((len(pairs), canvas, canvas), PAD, dtype=np.uint8)
    labels = np.full((len(pairs), canvas, canvas), PAD, dtype=np.uint8)
    for i, pair in enumerate(pairs):
        if pair.output is None:
            raise ValueError("a pair without an output has no label; encode its input with encode_grid")
        offset = (0, 0) if offsets is None else offsets[i]
        _write_grid(inputs[i], pair.input, offset)
        _write_grid(labels[i], pair.output, offset)
    return inputs, labels


def translation_offset(shift: Sequence[float], shapes: Iterable[tuple[int, int]], canvas: int = CANVAS) -> Offset:
    """The top-left offset at which every grid of the given shapes fits the canvas, chosen by a
    uniform draw `shift` in [0, 1) x [0, 1): every offset that fits is equally likely.

    Translation augmentation: one draw per example, its offset used for both input and output.
    The grid may touch the canvas edge, in which case its EOS row or column is cut off.
    """
    shapes = [(int(s[0]), int(s[1])) for s in shapes]
    if not shapes:
        raise ValueError("translation_offset needs at least one grid shape")
    max_h = max(s[0] for s in shapes)
    max_w = max(s[1] for s in shapes)
    if max_h > canvas or max_w > canvas:
        raise ValueError(f"a {max_h}x{max_w} extent does not fit a {canvas}x{canvas} canvas")
    return int(shift[0] * (canvas - max_h + 1)), int(shift[1] * (canvas - max_w + 1))


def _as_boards(tokens, batched: bool) -> np.ndarray:
    """Token input as a [B, canvas, canvas] array; flat canvases (canvas * canvas) are reshaped."""
    arr = np.asarray(tokens)
    square_ndim = 3 if batched else 2
    if arr.ndim == square_ndim - 1:  # flat canvases, as the model's sequence dimension gives them
        side = int(round(np.sqrt(arr.shape[-1])))
        if side * side != arr.shape[-1]:
            raise ValueError(f"a flat canvas of {arr.shape[-1]} tokens is not square")
        arr = arr.reshape(*arr.shape[:-1], side, side)
    if arr.ndim != square_ndim or arr.shape[-1] != arr.shape[-2]:
        expected = "[batch, canvas, canvas]" if batched else "[canvas, canvas]"
        raise ValueError(f"expected tokens shaped {expected}, got {arr.shape}")
    return arr if batched else arr[None]


def _decode_boards(boards: np.ndarray) -> list[Grid | None]:
    # A prediction may be any token anywhere, and the canvas may exceed MAX_SIDE; looking only at
    # the top-left MAX_SIDE x MAX_SIDE keeps every answer a valid grid.
    view = boards[:, :MAX_SIDE, :MAX_SIDE]
    is_colour = (view >= COLOUR_OFFSET) & (view < VOCAB_SIZE)
    leading = np.cumprod(is_colour, axis=2, dtype=np.int32).sum(axis=2)  # colour run of each row
    # Narrowest row so far: once a row has no leading colour, every later width is 0 (we stop).
    width_so_far = np.minimum.accumulate(leading, axis=1)
    areas = width_so_far * np.arange(1, view.shape[1] + 1)
    best = areas.argmax(axis=1)  # the first of equal areas wins (the shorter, wider rectangle)
    grids: list[Grid | None] = []
    for b, row in enumerate(best):
        h, w = int(row) + 1, int(width_so_far[b, row])
        if w == 0:
            grids.append(None)  # the top-left cell is not a colour
        else:
            grids.append(np.ascontiguousarray(view[b, :h, :w] - COLOUR_OFFSET, dtype=np.uint8))
    return grids


def decode_grid(tokens) -> Grid | None:
    """The grid a token canvas shows, or None when its top-left cell is not a colour.

    Takes the largest-area top-left rectangle made only of colour tokens (each row counts its
    leading colour cells; the first row with none ends the search). Accepts any integer dtype,
    shaped [canvas, canvas] or flat [canvas * canvas].
    """
    return _decode_boards(_as_boards(tokens, batched=False))[0]


def decode_batch(tokens) -> list[Grid | None]:
    """decode_grid of each canvas of a [batch, canvas, canvas] or [batch, canvas * canvas] array."""
    return _decode_boards(_as_boards(tokens, batched=True))
