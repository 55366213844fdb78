"""Augmented inference: run every augmented version of each test input, map the predictions
back through the inverse augmentation and vote."""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from arcsolver.data.augment import Augmentation
from arcsolver.data.encoding import PAD, decode_batch, encode_grid
from arcsolver.data.task import Grid, Task
from arcsolver.evaluation.canvas import query_sides
from arcsolver.evaluation.voting import Candidate, vote
from arcsolver.model.loss import stablemax_cross_entropy, stablemax_log_probs


class DeadlineReached(Exception):
    """The deadline passed before a batch of queries: the answers so far are not all there is."""


@dataclass(frozen=True)
class Query:
    """One augmented version of one test input, and the puzzle row that knows its task.
    rollout k > 0: the k-th run of it from a noisy start of y and z (0: the plain run)."""

    task_id: str
    test_index: int
    puzzle_id: int
    augmentation: Augmentation
    rollout: int = 0


def queries_for(
    task: Task, versions: list[tuple[int, Augmentation]], max_versions: int | None = None, rollouts: int = 0
) -> list[Query]:
    """A query per (test input, version); versions are (puzzle id, augmentation), identity first.
    With rollouts K, K noisy copies of every query follow all the plain ones (which keep their
    order, and so win the vote's last ties)."""
    chosen = versions if max_versions is None else versions[:max_versions]
    plain = [Query(task.id, i, pid, aug) for i in range(len(task.test)) for pid, aug in chosen]
    return plain + [
        Query(q.task_id, q.test_index, q.puzzle_id, q.augmentation, k) for k in range(1, rollouts + 1) for q in plain
    ]


@dataclass(frozen=True)
class Levers:
    """How deep a forward pass recurses and how noisy the rollouts start: None takes the model's
    own T (n_recursions) and N_sup (n_supervision). The rollouts' noise is drawn per query from
    seed and the query itself, so it is the same however the queries are batched."""

    n_recursions: int | None = None
    n_supervision: int | None = None
    rollout_noise: float = 0.0
    seed: int = 0

    @classmethod
    def of(cls, settings, seed: int) -> Levers:
        """The levers of an eval or infer section (config.InferenceLevers)."""
        return cls(settings.n_recursions, settings.n_supervision, settings.rollout_noise, seed)

    def depth(self, model) -> tuple[int, int]:
        """(T, N_sup) that a forward pass of model runs under these levers."""
        return self.n_recursions or model.config.n_recursions, self.n_supervision or model.config.n_supervision


def start_noise(model, queries: list[Query], side: int, levers: Levers, device) -> torch.Tensor | None:
    """[B, 2, L, D] for queries on a side x side canvas: rollout_noise-scaled Gaussian noise on
    y's and z's start for each rollout query, zeros for plain ones; None when no query is a rollout."""
    if not any(q.rollout for q in queries):
        return None
    shape = (2, model.config.puzzle_emb_len + side * side, model.config.hidden_size)
    noise = torch.zeros((len(queries), *shape), device=device)
    for row, q in enumerate(queries):
        if q.rollout:
            key = f"{levers.seed}/{q.task_id}/{q.test_index}/{q.puzzle_id}/{q.rollout}".encode()
            generator = torch.Generator(device=device)
            generator.manual_seed(int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") >> 1)
            noise[row] = torch.randn(shape, generator=generator, device=device) * levers.rollout_noise
    return noise


def autocast_for(device: torch.device, dtype: torch.dtype | None):
    """bf16 autocast on the device, or nothing for float32."""
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def predict(
    model,
    tasks: dict[str, Task],
    queries: list[Query],
    canvas: int | Sequence[int],
    batch_size: int,
    dtype=None,
    levers: Levers = Levers(),
    deadline: float | None = None,
) -> list[tuple[Grid | None, float]]:
    """(predicted grid in the task's own frame, halt logit) for every query, in order.

    canvas: one fixed side for every query, or the sides of a grid-sized layout (then queries
    run in batches of one side each; see query_sides). levers: the depth and the rollouts' noise.
    deadline: a monotonic time checked before every batch; DeadlineReached once it has passed.
    """
    return _run_queries(model, tasks, queries, canvas, batch_size, dtype, levers, False, deadline=deadline)[0]


@dataclass
class AnswerLoss:
    """The stable-max cross-entropy of known answers, summed over their cells (each grid's cells
    and its EOS border, the training labels' cells), and the number of those cells."""

    nll: float = 0.0
    cells: int = 0


def predict_with_answer_loss(
    model,
    tasks: dict[str, Task],
    queries: list[Query],
    canvas: int | Sequence[int],
    batch_size: int,
    dtype=None,
    levers: Levers = Levers(),
) -> tuple[list[tuple[Grid | None, float]], AnswerLoss]:
    """predict's answers, and the cross-entropy of the last supervision step's logits against each
    query's known test output in the query's frame (queries without one, or whose output does not
    fit their canvas, count nowhere)."""
    loss = AnswerLoss()
    predictions = _run_queries(model, tasks, queries, canvas, batch_size, dtype, levers, False, loss)[0]
    return predictions, loss


def answer_labels(task: Task, query: Query, side: int) -> np.ndarray | None:
    """The query's known test output as training labels on its canvas (None: unknown, or too large)."""
    output = task.test[query.test_index].output
    if output is None or max(output.shape) > side:
        return None
    return encode_grid(query.augmentation.apply_grid(output), side)


def predict_with_log_probs(
    model,
    tasks: dict[str, Task],
    queries: list[Query],
    canvas: int | Sequence[int],
    batch_size: int,
    dtype=None,
    levers: Levers = Levers(),
    deadline: float | None = None,
) -> tuple[list[tuple[Grid | None, float]], list[torch.Tensor]]:
    """predict's answers, and each query's log-probabilities [side*side, vocab] (bf16, on CPU),
    from which `likelihoods` scores any candidate without another forward pass."""
    return _run_queries(model, tasks, queries, canvas, batch_size, dtype, levers, True, deadline=deadline)


def seconds_per_query(
    model,
    tasks: dict[str, Task],
    sample: list[Query],
    canvas,
    batch_size: int,
    dtype,
    most_s: float,
    levers: Levers = Levers(),
) -> float:
    """Seconds a query takes: the first of sample run alone, then all of sample in batches where
    that would take under most_s seconds at the first one's pace (a batch runs faster per query).
    A bounded measurement: a slow model costs one query. No random generator moves."""
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        began = time.monotonic()
        predict(model, tasks, sample[:1], canvas, 1, dtype, levers)
        per_query = time.monotonic() - began
        if len(sample) > 1 and per_query * len(sample) <= most_s:
            began = time.monotonic()
            predict(model, tasks, sample, canvas, batch_size, dtype, levers)
            per_query = (time.monotonic() - began) / len(sample)
    return per_query


@torch.no_grad()
def _run_queries(
    model, tasks, queries, canvas, batch_size, dtype, levers: Levers, keep_log_probs: bool, loss=None, deadline=None
):
    """The forward passes behind predict, predict_with_log_probs and predict_with_answer_loss
    (which passes an AnswerLoss to add to), one canvas side at a time; DeadlineReached where
    deadline (a monotonic time) passes before a batch."""
    device = next(model.parameters()).device
    sides = query_sides(tasks, queries, canvas)
    results: list = [None] * len(queries)
    kept: list = [None] * len(queries)
    for side in sorted(set(sides)):
        mine = [k for k, s in enumerate(sides) if s == side]
        for start in range(0, len(mine), batch_size):
            if deadline is not None and time.monotonic() > deadline:
                raise DeadlineReached(f"{len(queries) - sum(r is not None for r in results)} queries not run")
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
            noise = start_noise(model, [queries[k] for k in chunk], side, levers, device)
            with autocast_for(device, dtype):
                logits, halt_logit = model.predict(inputs, ids, levers.n_recursions, levers.n_supervision, noise)
            if keep_log_probs:
                for k, lp in zip(chunk, stablemax_log_probs(logits.float()).to("cpu", torch.bfloat16)):
                    kept[k] = lp
            if loss is not None:
                _add_answer_loss(
                    loss, logits, [answer_labels(tasks[queries[k].task_id], queries[k], side) for k in chunk]
                )
            tokens = logits.argmax(-1).view(len(chunk), side, side).cpu().numpy()
            for k, grid, halt in zip(chunk, decode_batch(tokens), halt_logit.float().cpu().tolist()):
                back = None if grid is None else queries[k].augmentation.inverse().apply_grid(grid)
                results[k] = (back, halt)
    return results, kept


def _add_answer_loss(loss: AnswerLoss, logits: torch.Tensor, labels: list[np.ndarray | None]) -> None:
    known = [i for i, lab in enumerate(labels) if lab is not None]
    if not known:
        return
    targets = torch.from_numpy(np.stack([labels[i] for i in known])).to(logits.device, torch.long)
    nll = stablemax_cross_entropy(logits[known].float(), targets)
    loss.nll += float(nll.sum())
    loss.cells += int((targets != PAD).sum())


def likelihoods(candidates: list[Candidate], queries: list[Query], log_probs: Sequence[torch.Tensor]) -> list[float]:
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
    candidates: list[Candidate], queries: list[Query], log_probs: Sequence[torch.Tensor], top: int
) -> list[Candidate]:
    """The top voted candidates re-ranked by likelihood; the rest follow in vote order."""
    head, tail = candidates[:top], candidates[top:]
    scores = likelihoods(head, queries, log_probs)
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
