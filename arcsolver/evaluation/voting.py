"""Voting over the predictions of a test input's augmented versions.

Each augmented version yields one predicted grid (already mapped back through the inverse
augmentation). Identical grids are grouped; groups are ranked by how many versions produced them,
ties broken by the mean halting confidence (sigmoid of the halting logit), as TRM does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from arcsolver.data.task import Grid


@dataclass(frozen=True)
class Candidate:
    """A distinct predicted grid and the evidence for it."""

    grid: Grid
    votes: int
    halt_confidence: float  # mean sigmoid(halt_logit) over the versions that produced it
    # Where its votes came from (a solve's checkpoints and rollouts), for the sources record.
    origin: dict | None = field(default=None, compare=False)


def _key(grid: Grid) -> tuple:
    return (grid.shape, grid.tobytes())


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def vote(predictions: list[tuple[Grid | None, float]]) -> list[Candidate]:
    """Rank (grid, halt_logit) predictions; undecodable predictions (None) cast no vote."""
    groups: dict[tuple, list] = {}
    for grid, halt_logit in predictions:
        if grid is None:
            continue
        entry = groups.setdefault(_key(grid), [grid, 0, 0.0])
        entry[1] += 1
        entry[2] += _sigmoid(float(halt_logit))
    candidates = [Candidate(grid, n, conf / n) for grid, n, conf in groups.values()]
    # Python's sort is stable: equal candidates keep first-seen order, so ranking is deterministic.
    candidates.sort(key=lambda c: (c.votes, c.halt_confidence), reverse=True)
    return candidates
