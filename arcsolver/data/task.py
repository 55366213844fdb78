"""ARC's vocabulary: a grid, a pair of grids, a task, a set of tasks."""

from __future__ import annotations

import hashlib
import reprlib
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

MAX_SIDE = 30
N_COLOURS = 10

# A grid is a 2-D uint8 array, 1..30 per side, values 0..9. We keep the plain array (no wrapper
# class) so numpy's whole API applies; `as_grid` is the one gate that checks the invariants.
Grid = np.ndarray


class GridError(ValueError):
    """A value that is not a valid ARC grid; the message says what is wrong."""


def _describe(cell) -> str:
    """A non-colour cell for an error message, short even for a 10**4000 from a hostile file."""
    if isinstance(cell, (int, np.integer)) and not isinstance(cell, bool):
        return f"a {'negative ' if cell < 0 else ''}{int(abs(cell)).bit_length()}-bit integer"
    return reprlib.repr(cell)  # bounded in length and depth


def _check_rows(rows: list | tuple) -> tuple[int, int]:
    """(rows, columns) of nested lists, checked to be a list of rows of one length."""
    for r, row in enumerate(rows):
        if not isinstance(row, (list, tuple)):
            raise GridError(f"row {r} is not a list")
    widths = {len(row) for row in rows}
    if len(widths) != 1:
        raise GridError(f"ragged grid: rows have lengths {sorted(widths)}")
    return len(rows), widths.pop()


def _check_cells(rows: list | tuple) -> None:
    """Every cell an integer colour 0..9, checked on the Python values (numpy cannot hold an
    integer like 10**30 and would raise OverflowError)."""
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            # bool is an int subclass; a float like 3.0 is not a colour either.
            if not isinstance(cell, (int, np.integer)) or isinstance(cell, bool):
                raise GridError(f"cell ({r},{c}) is {_describe(cell)}, not an integer colour 0..{N_COLOURS - 1}")
            if abs(cell) >= 10**6:
                raise GridError(f"cell ({r},{c}) is {_describe(cell)}; colours are integers 0..{N_COLOURS - 1}")
            if not 0 <= cell < N_COLOURS:
                raise GridError(f"colour {cell} is outside 0..{N_COLOURS - 1}")


def _check_shape(h: int, w: int) -> None:
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise GridError(f"grid is {h}x{w}; each side must be 1..{MAX_SIDE}")


def as_grid(value) -> Grid:
    """Convert nested lists (or an array) to a grid, raising GridError on anything invalid."""
    if isinstance(value, np.ndarray):
        return _array_grid(value)
    if not isinstance(value, (list, tuple)) or len(value) == 0:
        raise GridError("a grid must be a non-empty list of rows")
    _check_shape(*_check_rows(value))
    _check_cells(value)
    return np.asarray(value, dtype=np.uint8)


def _array_grid(arr: np.ndarray) -> Grid:
    if arr.dtype.kind not in "iu":
        raise GridError(f"a grid must hold integers, got an array of {arr.dtype}")
    if arr.ndim != 2:
        raise GridError(f"a grid must be 2-D, got {arr.ndim}-D")
    _check_shape(*arr.shape)
    if arr.min() < 0 or arr.max() >= N_COLOURS:
        bad = int(arr.max()) if arr.max() >= N_COLOURS else int(arr.min())
        raise GridError(f"colour {bad} is outside 0..{N_COLOURS - 1}")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def task_label(task_id: str) -> str:
    """A task id as messages show it: as written, but quoted where it holds control characters
    (a newline would split the message) and shortened where it is very long."""
    label = task_id if task_id.isprintable() else repr(task_id)
    return label if len(label) <= 80 else f"{label[:60]}... ({len(task_id)} characters)"


def grid_to_list(grid: Grid) -> list[list[int]]:
    """A grid as nested lists of Python ints (for JSON)."""
    return grid.astype(int).tolist()


@dataclass(frozen=True)
class Pair:
    """An input grid and its output grid; the output is None where it is unknown (hidden tests)."""

    input: Grid
    output: Grid | None = None


@dataclass(frozen=True)
class Task:
    """One ARC task: demonstration (train) pairs and test pairs."""

    id: str
    train: tuple[Pair, ...]
    test: tuple[Pair, ...]

    def grids(self) -> Iterator[Grid]:
        """Every grid of the task, in a fixed order (train then test, input then output)."""
        for pair in (*self.train, *self.test):
            yield pair.input
            if pair.output is not None:
                yield pair.output

    def content_hash(self) -> str:
        """A hash of all the task's grids (shapes and cells), not of its id: finds one task in two sets."""
        h = hashlib.blake2b(digest_size=16)
        for pair in (*self.train, *self.test):
            for grid in (pair.input, pair.output):
                if grid is None:
                    h.update(b"-")
                else:
                    h.update(np.asarray(grid.shape, dtype=np.uint8).tobytes())
                    h.update(grid.tobytes())
        return h.hexdigest()

    @property
    def has_solutions(self) -> bool:
        return all(p.output is not None for p in self.test)

    def max_side(self) -> int:
        """The longest side of any grid in the task."""
        return max(max(g.shape) for g in self.grids())


@dataclass
class TaskSet:
    """An ordered collection of tasks, indexable by id or position."""

    tasks: list[Task]
    name: str = ""
    _by_id: dict[str, Task] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_id = {t.id: t for t in self.tasks}

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    def __getitem__(self, key: str | int) -> Task:
        if isinstance(key, str):
            return self._by_id[key]
        return self.tasks[key]

    def __contains__(self, task_id: str) -> bool:
        return task_id in self._by_id

    def ids(self) -> list[str]:
        return [t.id for t in self.tasks]

    def filter(self, keep) -> "TaskSet":
        """The tasks for which keep(task) is true, as a new set with the same name."""
        return TaskSet([t for t in self.tasks if keep(t)], name=self.name)
