"""A task's answers: one checkpoint's queries, predictions and log-probabilities of its test
inputs (run_task), ranked under each rule and voted over every checkpoint's answers together
(rank_answers), each candidate saying which checkpoints voted for it (vote_origins)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from arcsolver.config import SolveConfig
from arcsolver.data.task import Task
from arcsolver.evaluation.inference import (
    Levers,
    predict,
    predict_with_log_probs,
    queries_for,
    rank_by_likelihood,
    vote_queries,
)


@dataclass
class Answers:
    """One checkpoint's run of one task: the checkpoint (ckpt-<k>: its directory, k its place
    among the solve's checkpoints), the queries, their predictions and (where a ranking needs
    them) their log-probabilities."""

    checkpoint: str
    queries: list
    preds: list
    log_probs: list


def run_task(
    model,
    task: Task,
    versions: list,
    cfg: SolveConfig,
    canvas,
    dtype,
    deadline: float | None = None,
    max_versions: int | None = None,
) -> tuple[list, list, list]:
    """(queries, predictions, log-probabilities) of one task's test inputs on one model
    (max_versions per test input, default the recipe's, each with its rollouts); the
    log-probabilities only where a likelihood ranking is needed. DeadlineReached where deadline
    passes before its last batch."""
    queries = queries_for(task, versions, max_versions or cfg.infer.max_versions, cfg.infer.rollouts)
    need_lp = cfg.infer.ranking == "likelihood" or cfg.infer.write_all_rankings
    tasks = {task.id: task}
    size = cfg.infer.batch_size
    levers = Levers.of(cfg.infer, cfg.run.seed)
    if need_lp:
        preds, log_probs = predict_with_log_probs(model, tasks, queries, canvas, size, dtype, levers, deadline)
    else:
        preds, log_probs = predict(model, tasks, queries, canvas, size, dtype, levers, deadline), []
    return queries, preds, log_probs


def infer_task(
    model,
    task: Task,
    versions: list,
    cfg: SolveConfig,
    canvas,
    dtype,
    deadline: float | None = None,
    max_versions: int | None = None,
) -> dict[str, list]:
    """Ranked candidates per test input of one task on one model, under each ranking rule;
    DeadlineReached where deadline passes before its last batch."""
    answers = Answers("ckpt-0", *run_task(model, task, versions, cfg, canvas, dtype, deadline, max_versions))
    return rank_answers(task, [answers], cfg)


def rank_answers(task: Task, answers: list[Answers], cfg: SolveConfig) -> dict[str, list]:
    """Ranked candidates per test input of one task under each ranking rule, voted over every
    checkpoint's answers together; the likelihood sums each candidate's over all their frames."""
    queries = [q for a in answers for q in a.queries]
    preds = [p for a in answers for p in a.preds]
    log_probs = [lp for a in answers for lp in a.log_probs]
    voted = vote_queries(queries, preds)
    origins = vote_origins(answers)
    by_votes = [
        [replace(c, origin=origins[(i, c.grid.shape, c.grid.tobytes())]) for c in voted.get((task.id, i), [])]
        for i in range(len(task.test))
    ]
    out = {"votes": by_votes}
    if log_probs:
        out["likelihood"] = []
        for i, ranked in enumerate(by_votes):
            mine = [k for k, q in enumerate(queries) if q.test_index == i]
            out["likelihood"].append(
                rank_by_likelihood(
                    ranked,
                    [queries[k] for k in mine],
                    [log_probs[k] for k in mine],
                    cfg.infer.likelihood_candidates,
                )
                if ranked
                else ranked
            )
    else:
        out["likelihood"] = by_votes
    return out


def vote_origins(answers: list[Answers]) -> dict[tuple, dict]:
    """Per (test index, grid shape, grid bytes) voted for: how many votes each checkpoint
    (ckpt-<k>: its directory) cast for it, and how many of them came from noisy rollouts."""
    origins: dict[tuple, dict] = {}
    for a in answers:
        for q, (grid, _) in zip(a.queries, a.preds):
            if grid is None:
                continue
            origin = origins.setdefault(
                (q.test_index, grid.shape, grid.tobytes()), {"checkpoints": {}, "rollout_votes": 0}
            )
            origin["checkpoints"][a.checkpoint] = origin["checkpoints"].get(a.checkpoint, 0) + 1
            origin["rollout_votes"] += q.rollout > 0
    return origins
