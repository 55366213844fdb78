"""The solve's time budget: when the whole solve must end, and when adaptation must stop so that
inference of every task fits before that, measured on the real model."""

from __future__ import annotations

import time

from arcsolver.config import SolveConfig
from arcsolver.data.augment import Augmentation
from arcsolver.data.task import Task
from arcsolver.evaluation.canvas import query_sides
from arcsolver.evaluation.inference import Levers, predict, queries_for

INFERENCE_SPARE = 1.25  # adaptation leaves inference its estimate and a quarter more


def solve_deadline(cfg: SolveConfig) -> float | None:
    """The monotonic time by which the solve must be done (its budget from now, less the safety
    margin); None without a budget."""
    budget = cfg.run.time_budget_s
    return None if budget is None else time.monotonic() + budget - cfg.run.safety_margin_s


def adaptation_deadline(
    model, todo: list[Task], cfg: SolveConfig, canvas, dtype, deadline: float | None, say
) -> float | None:
    """The monotonic time at which adaptation must stop for the inference of todo to end by
    deadline (one line to say with the estimate); None without a deadline or tasks."""
    if deadline is None or not todo:
        return None
    n_versions = min(cfg.data.n_augmentations, cfg.infer.max_versions or cfg.data.n_augmentations)
    n_versions *= 1 + cfg.infer.rollouts  # each version's rollouts cost what it does
    n_queries = sum(len(t.test) for t in todo) * n_versions
    estimate = inference_seconds(model, todo, cfg, canvas, dtype, n_versions)
    stop = deadline - INFERENCE_SPARE * estimate
    say(
        f"inference estimate {estimate:.0f}s for {n_queries} queries; "
        f"adaptation until {max(stop - time.monotonic(), 0):.0f}s from now"
    )
    return stop


def inference_seconds(model, todo: list[Task], cfg: SolveConfig, canvas, dtype, n_versions: int) -> float:
    """Seconds the inference of every task will take: one batch timed on the largest canvas the
    tasks need, the other canvases scaled by their cost per query (tokens times the cost of a
    token, whose attention part grows with the sequence). The model is not changed."""
    identity = [(0, Augmentation.identity())]
    probes = [q for t in todo for q in queries_for(t, identity)]
    tasks = {t.id: t for t in todo}
    sides = query_sides(tasks, probes, canvas)
    prefix, width = model.config.puzzle_emb_len, model.config.hidden_size

    def cost(side: int) -> float:
        length = prefix + side * side
        return length * (3 * width + length)  # per layer: 12 D^2 per token in matrices, 4 L D in attention

    largest = max(range(len(probes)), key=lambda k: sides[k])
    n = min(cfg.infer.batch_size, 64)
    timed = [probes[largest]] * n
    begin = time.monotonic()
    predict(model, tasks, timed, canvas, cfg.infer.batch_size, dtype, Levers.of(cfg.infer, cfg.run.seed))
    per_query = (time.monotonic() - begin) / n
    return per_query * n_versions * sum(cost(side) for side in sides) / cost(sides[largest])
