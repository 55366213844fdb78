"""Augmentation: the 8 dihedral transforms times colour permutations, and their inverses.

An `Augmentation` is one dihedral transform plus one colour permutation. It maps a grid by
permuting its colours and transforming its cells; the two steps act on different things (values
and positions) so they commute, and the result does not depend on their order. We still define
one order, "colours then transform", and undo it as "inverse transform then inverse colours".

Rotations follow numpy's convention: rot90 turns the grid a quarter turn counter-clockwise, as
`np.rot90(grid, 1)`, so rot90 of [[1, 2], [3, 4]] is [[2, 4], [1, 3]].

String form (stable, used in logs, ids and files): "t<d>.c<ten digits>", where <d> is the
dihedral index 0..7 and the digits are the colour mapping, digit i being the colour that colour
i becomes. The identity is "t0.c0123456789"; "t1.c0213456789" is rot90 with colours 1 and 2
swapped.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field

import numpy as np

from arcsolver.data.task import N_COLOURS, Grid, Pair, Task

# Index i of each tuple below describes dihedral transform i.
DIHEDRAL_NAMES: tuple[str, ...] = (
    "identity",
    "rot90",
    "rot180",
    "rot270",
    "flip_lr",
    "flip_ud",
    "transpose",
    "anti_transpose",
)
N_DIHEDRAL = len(DIHEDRAL_NAMES)

# Plain slicing gives views without copies (and is much cheaper than np.rot90 / np.flip calls).
_TRANSFORMS = (
    lambda g: g,
    lambda g: g.T[::-1],  # rot90, counter-clockwise: np.rot90(g, 1)
    lambda g: g[::-1, ::-1],  # rot180
    lambda g: g[::-1].T,  # rot270: np.rot90(g, 3)
    lambda g: g[:, ::-1],  # flip left-right
    lambda g: g[::-1],  # flip up-down
    lambda g: g.T,  # transpose (reflection across the main diagonal)
    lambda g: g[::-1, ::-1].T,  # anti-transpose (reflection across the anti-diagonal)
)

# rot90 and rot270 undo each other; every other transform is its own inverse.
DIHEDRAL_INVERSE: tuple[int, ...] = (0, 3, 2, 1, 4, 5, 6, 7)

DEFAULT_FIXED_COLOURS: tuple[int, ...] = (0,)  # black is the usual background

# Separates a task id from the augmentation that produced a version of it: "007bbfc7_t3.c0...".
ID_SEPARATOR = "_"

_STRING_FORM = re.compile(r"t([0-7])\.c([0-9]{10})")


def _free_colours(fixed_colours) -> list[int]:
    """The colours a permutation may move, after checking fixed_colours."""
    fixed = {int(c) for c in fixed_colours}
    if any(not 0 <= c < N_COLOURS for c in fixed):
        raise ValueError(f"fixed colours {sorted(fixed)} must lie in 0..{N_COLOURS - 1}")
    return [c for c in range(N_COLOURS) if c not in fixed]


def _permute_free(rng: np.random.Generator, free: list[int]) -> tuple[int, ...]:
    mapping = list(range(N_COLOURS))
    for c, image in zip(free, rng.permutation(free).tolist()):
        mapping[c] = image
    return tuple(mapping)


@dataclass(frozen=True)
class Augmentation:
    """One dihedral transform and one colour permutation (colours[i] is the image of colour i)."""

    dihedral: int
    colours: tuple[int, ...]
    _lookup: np.ndarray = field(init=False, repr=False, compare=False)  # colours as an array

    def __post_init__(self) -> None:
        if not (isinstance(self.dihedral, (int, np.integer)) and 0 <= self.dihedral < N_DIHEDRAL):
            raise ValueError(f"dihedral index {self.dihedral!r} is not in 0..{N_DIHEDRAL - 1}")
        colours = tuple(int(c) for c in self.colours)
        if sorted(colours) != list(range(N_COLOURS)):
            raise ValueError(f"colours {self.colours!r} is not a permutation of 0..{N_COLOURS - 1}")
        # Normalise numpy ints to Python ints so equality, hashing and str() are predictable.
        object.__setattr__(self, "dihedral", int(self.dihedral))
        object.__setattr__(self, "colours", colours)
        object.__setattr__(self, "_lookup", np.asarray(colours, dtype=np.uint8))

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def identity(cls) -> Augmentation:
        return cls(0, tuple(range(N_COLOURS)))

    @classmethod
    def parse(cls, text: str) -> Augmentation:
        """Read the string form "t<d>.c<ten digits>" back (see the module docstring)."""
        match = _STRING_FORM.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not an augmentation string like 't3.c0712345689'")
        return cls(int(match.group(1)), tuple(int(ch) for ch in match.group(2)))

    def __str__(self) -> str:
        return f"t{self.dihedral}.c{''.join(str(c) for c in self.colours)}"

    # -- algebra --------------------------------------------------------------------------------

    def inverse(self) -> Augmentation:
        """The augmentation that undoes this one: a.inverse().apply_grid(a.apply_grid(g)) == g."""
        inverse_colours = [0] * N_COLOURS
        for c, image in enumerate(self.colours):
            inverse_colours[image] = c
        return Augmentation(DIHEDRAL_INVERSE[self.dihedral], tuple(inverse_colours))

    # -- application ----------------------------------------------------------------------------

    def apply_grid(self, grid: Grid) -> Grid:
        """Permute the grid's colours, then transform it; returns a new contiguous uint8 grid."""
        # Transform first (a view, no copy), then take() writes one new contiguous array.
        return self._lookup.take(_TRANSFORMS[self.dihedral](grid))

    def apply_pair(self, pair: Pair) -> Pair:
        """Both grids of the pair augmented; an unknown (None) output stays None."""
        output = None if pair.output is None else self.apply_grid(pair.output)
        return Pair(self.apply_grid(pair.input), output)


def augmented_id(task_id: str, augmentation: Augmentation) -> str:
    """The id of one augmented version of a task: "<task id>_<augmentation string>"."""
    return f"{task_id}{ID_SEPARATOR}{augmentation}"


def split_augmented_id(augmented: str) -> tuple[str, Augmentation]:
    """Undo augmented_id: the original task id and the augmentation."""
    task_id, sep, text = augmented.rpartition(ID_SEPARATOR)
    if not sep:
        raise ValueError(f"{augmented!r} is not an augmented id like 'abcd1234_t3.c0712345689'")
    return task_id, Augmentation.parse(text)


def _colours_used(task: Task) -> np.ndarray:
    used = np.zeros(N_COLOURS, dtype=bool)
    for grid in task.grids():
        used[np.unique(grid)] = True
    return np.flatnonzero(used)


class _VersionKeys:
    """Content keys of a task's augmented versions without building them: per dihedral
    transform the grids' shapes and their cells in one array, so a version's key is one colour
    lookup over that array and a hash (the shapes are part of the key, as in content_hash)."""

    def __init__(self, task: Task):
        grids = [g for pair in (*task.train, *task.test) for g in (pair.input, pair.output)]
        self.shapes, self.cells = [], []
        for transform in _TRANSFORMS:
            images = [None if g is None else transform(g) for g in grids]
            self.shapes.append(repr([None if im is None else im.shape for im in images]).encode())
            parts = [np.ascontiguousarray(im).ravel() for im in images if im is not None]
            self.cells.append(np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint8))

    def key(self, augmentation: Augmentation) -> bytes:
        h = hashlib.blake2b(self.shapes[augmentation.dihedral], digest_size=16)
        h.update(augmentation._lookup.take(self.cells[augmentation.dihedral]).tobytes())
        return h.digest()


def distinct_augmentations(
    task: Task,
    n: int,
    rng_or_seed: np.random.Generator | int,
    fixed_colours=DEFAULT_FIXED_COLOURS,
    *,
    max_tries: int | None = None,
) -> list[Augmentation]:
    """Up to n augmentations giving distinct versions of a task, the identity first.

    Versions are random (dihedral, colour permutation) draws, kept only when the augmented task's
    content is new. A task with fewer than n distinct versions yields fewer: drawing stops
    after max_tries draws (default 10 * n + 100) or once every distinct draw has been seen.
    The same seed (or a generator in the same state) gives the same list. Augmented ids follow
    augmented_id(); the identity version is renamed too, so every version has its own id.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng = np.random.default_rng(rng_or_seed)
    free = _free_colours(fixed_colours)
    if max_tries is None:
        max_tries = 10 * n + 100

    identity = Augmentation.identity()
    contents = _VersionKeys(task)
    chosen = [identity]
    seen = {contents.key(identity)}

    # Two draws with the same transform that agree on the task's own colours give the same task,
    # so we skip them before building anything; this also bounds how many draws can be new.
    used_free = [int(c) for c in _colours_used(task) if c in free]
    n_keys = N_DIHEDRAL * math.perm(len(free), len(used_free))
    keys = {(0, tuple(used_free))}

    for _ in range(max_tries):
        if len(chosen) >= n or len(keys) >= n_keys:
            break
        # A random transform and colour permutation, checked cheaply for a duplicate before building.
        index = int(rng.integers(N_DIHEDRAL))
        colours = _permute_free(rng, free)
        key = (index, tuple(colours[c] for c in used_free))
        if key in keys:
            continue
        keys.add(key)
        augmentation = Augmentation(index, colours)
        digest = contents.key(augmentation)
        if digest in seen:
            continue  # a symmetry of the task maps this draw onto a version we already have
        seen.add(digest)
        chosen.append(augmentation)
    return chosen
