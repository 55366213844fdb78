"""The TRM training protocol over augmented ARC tasks, generated lazily.

Every task gets up to N augmented versions (dihedral x colour permutation, deduplicated); each
version is its own puzzle with its own embedding row (id 0 is the blank puzzle). We keep only the
(task, augmentation) of each version and augment grids when a batch is drawn, instead of writing
N copies of the dataset to disk.

Training examples: every pair of the `train_tasks` and the demonstration pairs of the
`heldout_tasks`, in every version. The held-out tasks' test pairs are never trained on: they are
what evaluation scores.

Two ways to walk through them. "reference" is TRM's: an epoch draws one random version of every
task and takes all of that version's pairs, so every task weighs the same whatever its number of
distinct versions. "uniform" shuffles all (version, pair) examples into one epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from arcsolver.data.augment import Augmentation, augmented_id, distinct_augmentations
from arcsolver.data.encoding import encode_pairs, fitting_side, translation_offset
from arcsolver.data.task import Pair, Task


@dataclass(frozen=True)
class Puzzle:
    """One augmented version of a task: puzzle id i is row i of the puzzle-embedding table."""

    task: Task
    augmentation: Augmentation

    @property
    def name(self) -> str:
        return augmented_id(self.task.id, self.augmentation)


def build_puzzles(tasks: list[Task], n_augmentations: int, seed: int, fixed_colours=(0,)) -> list[Puzzle]:
    """The augmented versions of tasks, in task order, the identity first for each task."""
    puzzles: list[Puzzle] = []
    for i, task in enumerate(tasks):
        # One seed per task (not one stream for all) so adding a task leaves the others' versions.
        rng = np.random.default_rng([seed, i])
        puzzles.extend(Puzzle(task, aug) for aug in distinct_augmentations(task, n_augmentations, rng, fixed_colours))
    return puzzles


@dataclass
class Batch:
    """Token canvases of a batch of examples, as numpy arrays (the loop moves them to torch)."""

    inputs: np.ndarray  # [B, canvas, canvas] uint8 tokens
    labels: np.ndarray  # [B, canvas, canvas] uint8 tokens (PAD where unsupervised)
    puzzle_ids: np.ndarray  # [B] int64


Sampling = Literal["reference", "uniform"]


class TrainStream:
    """An endless, seeded stream of training batches, addressable by batch index.

    Batch b is a pure function of (seed, b): a resumed run continues with exactly the batches it
    would have seen, and every process of a distributed run agrees on the global batch and
    encodes only its own slice of it. Global batches run through the epochs without a gap, so
    an epoch may end inside a batch.
    """

    def __init__(
        self,
        puzzles: list[Puzzle],
        trainable: dict[str, tuple[Pair, ...]],
        canvas: int,
        seed: int,
        translate: bool = True,
        first_id: int = 1,
        *,
        sampling: Sampling,  # no default: pretraining passes data.sampling, adaptation chooses its own
    ):
        self.puzzles = puzzles
        self.trainable = trainable
        self.canvas = canvas
        self.seed = seed
        self.translate = translate
        self.sampling = sampling
        pair_counts = np.asarray([len(trainable[p.task.id]) for p in puzzles], dtype=np.int64)
        if not pair_counts.sum():
            raise ValueError("no training examples: every task was filtered out")
        # Row r of examples is (puzzle id, pair index), puzzle by puzzle: puzzle p owns the rows
        # from first_row[p] on.
        self.examples = np.stack(
            [
                np.repeat(first_id + np.arange(len(puzzles)), pair_counts),
                np.concatenate([np.arange(n) for n in pair_counts]),
            ],
            axis=1,
        )
        self.first_id = first_id
        self._first_row = np.concatenate([[0], np.cumsum(pair_counts)[:-1]])
        self._group_versions_by_task(pair_counts)
        self._epoch, self._order = -1, np.empty(0, dtype=np.int64)

    def _group_versions_by_task(self, pair_counts: np.ndarray) -> None:
        """For the reference sampling: task t's versions are the puzzles
        self._versions[self._version_start[t]:][:self._n_versions[t]], each with self._task_pairs[t] pairs."""
        by_task: dict[str, list[int]] = {}
        for p, puzzle in enumerate(self.puzzles):
            by_task.setdefault(puzzle.task.id, []).append(p)
        groups = list(by_task.values())
        self._versions = np.concatenate([np.asarray(g, dtype=np.int64) for g in groups])
        self._n_versions = np.asarray([len(g) for g in groups], dtype=np.int64)
        self._version_start = np.concatenate([[0], np.cumsum(self._n_versions)[:-1]])
        self._task_pairs = pair_counts[[g[0] for g in groups]]
        # Position of each example of an epoch within its version's pairs.
        self._pair_within = np.concatenate([np.arange(n) for n in self._task_pairs])

    def __len__(self) -> int:
        """The number of distinct training examples: every pair of every version."""
        return len(self.examples)

    def side_of(self, batch_index: int) -> int:
        """The canvas side of every batch (a SizedStream's vary)."""
        return self.canvas

    @property
    def examples_per_epoch(self) -> int:
        """Examples in one epoch: the trainable pairs of every task once (reference sampling),
        or every pair of every version once (uniform sampling)."""
        return int(self._task_pairs.sum()) if self.sampling == "reference" else len(self)

    def _uniform_epoch(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, 0, epoch]).permutation(len(self))

    def _reference_epoch(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, 2, epoch])
        version = self._versions[self._version_start + rng.integers(self._n_versions)]
        rows = np.repeat(self._first_row[version], self._task_pairs) + self._pair_within
        return rng.permutation(rows)

    def _epoch_order(self, epoch: int) -> np.ndarray:
        """The rows of self.examples that make up epoch `epoch`, in the order they are trained."""
        if epoch != self._epoch:
            draw = self._reference_epoch if self.sampling == "reference" else self._uniform_epoch
            self._epoch, self._order = epoch, draw(epoch)
        return self._order

    def example_indices(self, batch_index: int, batch_size: int) -> np.ndarray:
        """Which examples (rows of self.examples) make up global batch batch_index."""
        length = self.examples_per_epoch
        positions = batch_index * batch_size + np.arange(batch_size)
        out = np.empty(batch_size, dtype=np.int64)
        for epoch in np.unique(positions // length):
            mask = positions // length == epoch
            out[mask] = self._epoch_order(int(epoch))[positions[mask] % length]
        return out

    def batch(self, batch_index: int, batch_size: int, rank: int = 0, world_size: int = 1) -> Batch:
        """This process's slice of global batch batch_index (batch_size is the global size)."""
        rows = self.example_indices(batch_index, batch_size)
        # Translation draws for the whole global batch, so they do not depend on the world size.
        shifts = np.random.default_rng([self.seed, 1, batch_index]).random((batch_size, 2))
        local = slice(rank * batch_size // world_size, (rank + 1) * batch_size // world_size)
        pairs, offsets, ids = [], [], []
        for (puzzle_id, pair_index), shift in zip(self.examples[rows[local]], shifts[local]):
            puzzle = self.puzzles[puzzle_id - self.first_id]
            pair = puzzle.augmentation.apply_pair(self.trainable[puzzle.task.id][pair_index])
            offset = (0, 0)
            # The first pair of every puzzle stays at the top-left corner, as at inference.
            if self.translate and pair_index > 0:
                offset = translation_offset(shift, [pair.input.shape, pair.output.shape], self.canvas)
            pairs.append(pair)
            offsets.append(offset)
            ids.append(puzzle_id)
        inputs, labels = encode_pairs(pairs, self.canvas, offsets)
        return Batch(inputs, labels, np.asarray(ids, dtype=np.int64))


class SizedStream:
    """A TrainStream per canvas side: each example sits on the smallest canvas of `sides` that
    holds its grids, and each global batch is drawn from one side, so the network computes on
    grids, not on padding.

    Batch k's side is a pure function of (seed, k), drawn with probability proportional to the
    side's share of an epoch's examples; batch k is then that side's next batch. Every process
    agrees on the side, so collectives see the same shapes. The deep-supervision carry is kept
    per side by the training loop: a sample's y and z only ever meet samples of its own canvas.
    """

    BLOCK = 1024  # batch sides are drawn this many at a time

    def __init__(
        self,
        puzzles: list[Puzzle],
        trainable: dict[str, tuple[Pair, ...]],
        sides,
        seed: int,
        translate: bool = True,
        first_id: int = 1,
        *,
        sampling: Sampling,
    ):
        by_side: dict[int, dict[str, tuple[Pair, ...]]] = {}
        for task_id, pairs in trainable.items():
            for pair in pairs:
                assert pair.output is not None, "trainable pairs have outputs"
                side = fitting_side([pair.input.shape, pair.output.shape], sides)
                by_side.setdefault(side, {}).setdefault(task_id, ())
                by_side[side][task_id] += (pair,)
        if not by_side:
            raise ValueError("no training examples: every task was filtered out")
        self.seed = seed
        self.streams = {}
        for side in sorted(by_side):
            side_pairs = {task_id: by_side[side].get(task_id, ()) for task_id in trainable}
            self.streams[side] = TrainStream(puzzles, side_pairs, side, seed, translate, first_id, sampling=sampling)
        self.sides = np.asarray(list(self.streams), dtype=np.int64)
        weights = np.asarray([s.examples_per_epoch for s in self.streams.values()], dtype=np.float64)
        self.probabilities = weights / weights.sum()
        self._counts = [np.zeros(len(self.sides), dtype=np.int64)]  # per side, batches before block b

    def __len__(self) -> int:
        return sum(len(s) for s in self.streams.values())

    @property
    def examples_per_epoch(self) -> int:
        return sum(s.examples_per_epoch for s in self.streams.values())

    def _block(self, block: int) -> np.ndarray:
        """Indices into self.sides of the batches of one block."""
        rng = np.random.default_rng([self.seed, 3, block])
        return rng.choice(len(self.sides), self.BLOCK, p=self.probabilities)

    def _position(self, batch_index: int) -> tuple[int, int]:
        """(side index, that side's batch number) of global batch batch_index."""
        block, within = divmod(batch_index, self.BLOCK)
        while len(self._counts) <= block:
            drawn = self._block(len(self._counts) - 1)
            self._counts.append(self._counts[-1] + np.bincount(drawn, minlength=len(self.sides)))
        drawn = self._block(block)
        which = int(drawn[within])
        return which, int(self._counts[block][which] + np.count_nonzero(drawn[:within] == which))

    def side_of(self, batch_index: int) -> int:
        """The canvas side of global batch batch_index."""
        return int(self.sides[self._position(batch_index)[0]])

    def batch(self, batch_index: int, batch_size: int, rank: int = 0, world_size: int = 1) -> Batch:
        """This process's slice of global batch batch_index, on that batch's canvas."""
        which, number = self._position(batch_index)
        return self.streams[int(self.sides[which])].batch(number, batch_size, rank, world_size)


def stream_for(
    puzzles: list[Puzzle],
    trainable: dict[str, tuple[Pair, ...]],
    canvas: int | Sequence[int],
    seed: int,
    translate: bool,
    sampling: Sampling,
    first_id: int = 1,
) -> TrainStream | SizedStream:
    """The stream of a run's examples: on one fixed canvas (an int), or on the sides of a
    grid-sized layout (see canvas_sides), each example on the smallest that holds it."""
    if isinstance(canvas, int):
        return TrainStream(puzzles, trainable, canvas, seed, translate, first_id, sampling=sampling)
    return SizedStream(puzzles, trainable, canvas, seed, translate, first_id, sampling=sampling)


def trainable_pairs(train_tasks: list[Task], heldout_tasks: list[Task]) -> dict[str, tuple[Pair, ...]]:
    """Task id -> the pairs we may train on: all pairs of a training task (its test pairs when
    their outputs are known), only the demonstrations of a held-out task."""
    pairs = {t.id: t.train + tuple(p for p in t.test if p.output is not None) for t in train_tasks}
    pairs.update({t.id: t.train for t in heldout_tasks})
    return pairs
