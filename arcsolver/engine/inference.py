"""Augmented inference: run every augmented version of each test input, map the predictions
back through the inverse augmentation and vote."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from arcsolver.data.augment import Augmentation
from arcsolver.data.encoding import CANVAS_SIDES, PAD, decode_batch, encode_grid, fitting_side
from arcsolver.data.task import Grid, Task
from arcsolver.engine.scoring import cell_accuracy, task_score
from arcsolver.engine.voting import Candidate, vote
from arcsolver.model.loss import stablemax_log_probs


@dataclass(frozen=True)
class Query:
    """One augmented version of one test input, and the puzzle row that knows its task."""

    task_id: str
    test_index: int
    puzzle_id: int
    augmentation: Augmentation


def queries_for(task: Task, versions: list[tuple[int, Augmentation]], max_versions: int | None = None) -> list[Query]:
    """A query per (test input, version); versions are (puzzle id, augmentation), identity first."""
    chosen = versions if max_versions is None else versions[:max_versions]
    return [Query(task.id, i, pid, aug) for i in range(len(task.test)) for pid, aug in chosen]


def autocast_for(device: torch.device, dtype: torch.dtype | None):
    """bf16 autocast on the device, or nothing for float32."""
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def model_canvases(config) -> int | tuple[int, ...]:
    """The canvases a model (its TRMConfig) can run: every side of CANVAS_SIDES with rope2d
    positions (grid-sized, up to 30x30 whatever it was trained on), its one canvas with rope1d."""
    return tuple(CANVAS_SIDES) if config.positions == "rope2d" else config.canvas


def inference_side(task: Task, test_index: int, sides: Sequence[int]) -> int:
    """The canvas side for a test input on grid-sized canvases: it must hold the input and the
    output, whose size is unknown. The demonstrations guess it: outputs the size of their inputs,
    or all of one size; otherwise the largest grid of the task."""
    grid = task.test[test_index].input
    demos = task.train
    if all(p.output.shape == p.input.shape for p in demos):
        output = grid.shape
    elif len({p.output.shape for p in demos}) == 1:
        output = demos[0].output.shape
    else:
        output = (max(max(g.shape) for p in demos for g in (p.input, p.output)),) * 2
    return fitting_side([grid.shape, output], sides)


def query_sides(tasks: dict[str, Task], queries: list[Query], canvas: int | Sequence[int]) -> list[int]:
    """Each query's canvas side: the fixed canvas, or (given the sides of a grid-sized layout)
    inference_side of its test input (augmentations keep a grid's longest side)."""
    if isinstance(canvas, int):
        return [canvas] * len(queries)
    memo: dict[tuple[str, int], int] = {}
    for q in queries:
        key = (q.task_id, q.test_index)
        if key not in memo:
            memo[key] = inference_side(tasks[q.task_id], q.test_index, canvas)
    return [memo[(q.task_id, q.test_index)] for q in queries]


@torch.no_grad()
def predict(
    model,
    tasks: dict[str, Task],
    queries: list[Query],
    canvas: int | Sequence[int],
    batch_size: int,
    dtype: torch.dtype | None = None,
    keep_log_probs: bool = False,
) -> tuple[list[tuple[Grid | None, float]], list[torch.Tensor] | None]:
    """(predicted grid in the task's own frame, halt logit) for every query, in order; with
    keep_log_probs also each query's log-probabilities [side*side, vocab] (bf16, on CPU), from
    which `likelihoods` scores any candidate without another forward pass.

    canvas: one fixed side for every query, or the sides of a grid-sized layout (then queries
    run in batches of one side each; see query_sides).
    """
    device = next(model.parameters()).device
    sides = query_sides(tasks, queries, canvas)
    results: list = [None] * len(queries)
    kept: list = [None] * len(queries)
    for side in sorted(set(sides)):
        mine = [k for k, s in enumerate(sides) if s == side]
        for start in range(0, len(mine), batch_size):
            chunk = mine[start : start + batch_size]
            boards = np.stack(
                [
                    encode_grid(
                        queries[k].augmentation.apply_grid(tasks[queries[k].task_id].test[queries[k].test_index].input),
                        side,
                    )
                    for k in chunk
                ]
            )
            inputs = torch.from_numpy(boards).to(device=device, dtype=torch.long)
            ids = torch.tensor([queries[k].puzzle_id for k in chunk], device=device)
            with autocast_for(device, dtype):
                logits, halt_logit = model.predict(inputs, ids)
            if keep_log_probs:
                for k, lp in zip(chunk, stablemax_log_probs(logits.float()).to("cpu", torch.bfloat16)):
                    kept[k] = lp
            tokens = logits.argmax(-1).view(len(chunk), side, side).cpu().numpy()
            for k, grid, halt in zip(chunk, decode_batch(tokens), halt_logit.float().cpu().tolist()):
                back = None if grid is None else queries[k].augmentation.inverse().apply_grid(grid)
                results[k] = (back, halt)
    return results, (kept if keep_log_probs else None)


def likelihoods(
    candidates: list[Candidate], queries: list[Query], log_probs: Sequence[torch.Tensor], canvas: int | None = None
) -> list[float]:
    """Each candidate's log-likelihood summed over the queries' augmented frames: the candidate
    is mapped into each frame, encoded as a target on that query's canvas (its side follows
    from the log-probabilities' length), and its non-PAD tokens scored. A candidate that does
    not fit a query's canvas scores -inf there."""
    scores = []
    for cand in candidates:
        total = 0.0
        for q, lp in zip(queries, log_probs):
            side = math.isqrt(lp.shape[0])
            grid = q.augmentation.apply_grid(cand.grid)
            if max(grid.shape) > side:
                total = float("-inf")
                break
            labels = torch.from_numpy(encode_grid(grid, side).reshape(-1)).long()
            token_lp = lp.float().gather(-1, labels[:, None]).squeeze(-1)
            total += float(token_lp.masked_fill(labels == PAD, 0.0).sum())
        scores.append(total)
    return scores


def rank_by_likelihood(
    candidates: list[Candidate], queries: list[Query], log_probs: Sequence[torch.Tensor], canvas: int | None, top: int
) -> list[Candidate]:
    """The top voted candidates re-ranked by likelihood; the rest follow in vote order."""
    head, tail = candidates[:top], candidates[top:]
    scores = likelihoods(head, queries, log_probs, canvas)
    order = sorted(range(len(head)), key=lambda i: scores[i], reverse=True)
    return [head[i] for i in order] + tail


def vote_queries(
    queries: list[Query], predictions: list[tuple[Grid | None, float]]
) -> dict[tuple[str, int], list[Candidate]]:
    """Ranked candidates for every (task id, test index) among the queries."""
    grouped: dict[tuple[str, int], list] = {}
    for q, p in zip(queries, predictions):
        grouped.setdefault((q.task_id, q.test_index), []).append(p)
    return {key: vote(preds) for key, preds in grouped.items()}


def heldout_scores(tasks: dict[str, Task], ranked: dict[tuple[str, int], list[Candidate]]) -> dict[str, float]:
    """pass@1 and pass@2 (ARC scoring), and the per-cell accuracy of the first attempt (0 where its
    shape is wrong), over the tasks whose every test output was queried; each task counts once."""
    totals = {"pass@1": 0.0, "pass@2": 0.0, "cell_accuracy": 0.0}
    n = 0
    for task in tasks.values():
        keys = [(task.id, i) for i in range(len(task.test))]
        if not task.has_solutions or any(k not in ranked for k in keys):
            continue
        attempts = [[c.grid for c in ranked[k][:2]] for k in keys]
        answers = [p.output for p in task.test]
        totals["pass@1"] += task_score(attempts, answers, k=1)
        totals["pass@2"] += task_score(attempts, answers, k=2)
        firsts = [a[0] if a else None for a in attempts]
        totals["cell_accuracy"] += sum(cell_accuracy(a, t) for a, t in zip(firsts, answers)) / len(answers)
        n += 1
    return {**{k: v / max(n, 1) for k, v in totals.items()}, "tasks": n}
