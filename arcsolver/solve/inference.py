"""Augmented inference: run every augmented version of each test input, map the predictions
back through the inverse augmentation and vote."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from arcsolver.data.augment import Augmentation
from arcsolver.data.encoding import PAD, decode_batch, encode_grid
from arcsolver.model.loss import stablemax_log_probs
from arcsolver.data.task import Grid, Task
from arcsolver.solve.scoring import task_score
from arcsolver.solve.voting import Candidate, vote


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


@torch.no_grad()
def predict(
    model,
    tasks: dict[str, Task],
    queries: list[Query],
    canvas: int,
    batch_size: int,
    dtype: torch.dtype | None = None,
    keep_log_probs: bool = False,
) -> tuple[list[tuple[Grid | None, float]], torch.Tensor | None]:
    """(predicted grid in the task's own frame, halt logit) for every query, in order; with
    keep_log_probs also the model's log-probabilities [Q, canvas*canvas, vocab] (bf16, on CPU),
    from which `likelihoods` scores any candidate without another forward pass."""
    device = next(model.parameters()).device
    results: list[tuple[Grid | None, float]] = []
    kept = []
    for start in range(0, len(queries), batch_size):
        chunk = queries[start : start + batch_size]
        boards = np.stack(
            [encode_grid(q.augmentation.apply_grid(tasks[q.task_id].test[q.test_index].input), canvas) for q in chunk]
        )
        inputs = torch.from_numpy(boards).to(device=device, dtype=torch.long)
        ids = torch.tensor([q.puzzle_id for q in chunk], device=device)
        with autocast_for(device, dtype):
            logits, halt_logit = model.predict(inputs, ids)
        if keep_log_probs:
            kept.append(stablemax_log_probs(logits.float()).to("cpu", torch.bfloat16))
        tokens = logits.argmax(-1).view(len(chunk), canvas, canvas).cpu().numpy()
        for q, grid, halt in zip(chunk, decode_batch(tokens), halt_logit.float().cpu().tolist()):
            back = None if grid is None else q.augmentation.inverse().apply_grid(grid)
            results.append((back, halt))
    return results, (torch.cat(kept) if kept else None)


def likelihoods(candidates: list[Candidate], queries: list[Query], log_probs: torch.Tensor, canvas: int) -> list[float]:
    """Each candidate's log-likelihood summed over the queries' augmented frames: the candidate
    is mapped into each frame, encoded as a target canvas, and its non-PAD tokens scored."""
    scores = []
    for cand in candidates:
        labels = np.stack([encode_grid(q.augmentation.apply_grid(cand.grid), canvas) for q in queries])
        labels = torch.from_numpy(labels.reshape(len(queries), -1)).long()
        token_lp = log_probs.float().gather(-1, labels[..., None]).squeeze(-1)
        scores.append(float(token_lp.masked_fill(labels == PAD, 0.0).sum()))
    return scores


def rank_by_likelihood(candidates: list[Candidate], queries: list[Query], log_probs: torch.Tensor, canvas: int, top: int) -> list[Candidate]:
    """The top voted candidates re-ranked by likelihood; the rest follow in vote order."""
    head, tail = candidates[:top], candidates[top:]
    scores = likelihoods(head, queries, log_probs, canvas)
    order = sorted(range(len(head)), key=lambda i: scores[i], reverse=True)
    return [head[i] for i in order] + tail


def vote_queries(queries: list[Query], predictions: list[tuple[Grid | None, float]]) -> dict[tuple[str, int], list[Candidate]]:
    """Ranked candidates for every (task id, test index) among the queries."""
    grouped: dict[tuple[str, int], list] = {}
    for q, p in zip(queries, predictions):
        grouped.setdefault((q.task_id, q.test_index), []).append(p)
    return {key: vote(preds) for key, preds in grouped.items()}


def heldout_scores(tasks: dict[str, Task], ranked: dict[tuple[str, int], list[Candidate]]) -> dict[str, float]:
    """pass@1 and pass@2 (ARC scoring) over the tasks whose every test output was queried."""
    totals = {"pass@1": 0.0, "pass@2": 0.0}
    n = 0
    for task in tasks.values():
        keys = [(task.id, i) for i in range(len(task.test))]
        if not task.has_solutions or any(k not in ranked for k in keys):
            continue
        attempts = [[c.grid for c in ranked[k][:2]] for k in keys]
        answers = [p.output for p in task.test]
        totals["pass@1"] += task_score(attempts, answers, k=1)
        totals["pass@2"] += task_score(attempts, answers, k=2)
        n += 1
    return {**{k: v / max(n, 1) for k, v in totals.items()}, "tasks": n}
