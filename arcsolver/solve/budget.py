"""The solve's time budget: when the whole solve must end, and when adaptation must stop so that
inference of every task fits before that, measured on the real model; then, as tasks finish,
how many versions each task left can have in its share of the time left."""

from __future__ import annotations

import math
import time

from arcsolver.config import SolveConfig
from arcsolver.data.augment import Augmentation
from arcsolver.data.task import Task
from arcsolver.evaluation.canvas import query_sides
from arcsolver.evaluation.inference import Levers, queries_for, seconds_per_query

INFERENCE_SPARE = 1.25  # adaptation leaves inference its estimate and a quarter more
MEASURE_SHARE = 0.05  # past its first query, measuring the inference rate takes at most this share of the time left
MARGIN_SHARE = 0.5  # the safety margin keeps at most this share of the budget: the rest is for the tasks


def safety_margin(cfg: SolveConfig) -> float:
    """The seconds kept free at the end of the budget: run.safety_margin_s, or half the budget
    where the margin would take more (a budget of 30 s with the default 60 s margin would leave
    no time to answer a single task)."""
    budget = cfg.run.time_budget_s
    return cfg.run.safety_margin_s if budget is None else min(cfg.run.safety_margin_s, MARGIN_SHARE * budget)


def budget_left(cfg: SolveConfig, started: float) -> float | None:
    """What remains of the time budget that began at started (monotonic): what a process
    started now may take; None without a budget."""
    budget = cfg.run.time_budget_s
    return None if budget is None else max(budget - (time.monotonic() - started), 0.001)


def solve_deadline(cfg: SolveConfig, started: float | None = None) -> float | None:
    """The monotonic time by which the solve must be done (its budget from started, default now,
    less the safety margin); None without a budget."""
    budget = cfg.run.time_budget_s
    began = time.monotonic() if started is None else started
    return None if budget is None else began + budget - safety_margin(cfg)


class InferencePace:
    """Seconds per query of inference: measured before adaptation, then observed as tasks are
    answered. With it, each task left gets the versions its share of the time left allows
    (at least one, at most the recipe's): a budget that runs short costs versions, spread over
    every task, rather than whole tasks at the end. rollouts: the noisy runs each version adds,
    each a query like the version's own."""

    def __init__(self, per_query: float | None = None, rollouts: int = 0):
        self.per_query = per_query
        self.per_version = 1 + rollouts  # queries per test input and version
        self.queries, self.seconds = 0, 0.0

    def observe(self, queries: int, seconds: float) -> None:
        """queries were answered in seconds."""
        self.queries += queries
        self.seconds += seconds
        self.per_query = self.seconds / max(self.queries, 1)

    def queries_of(self, n_tests: int, n_versions: int) -> int:
        """The queries a task of n_tests test inputs runs on n_versions versions, rollouts included."""
        return n_tests * n_versions * self.per_version

    def tasks_within(self, tasks: list[Task], deadline: float | None) -> int:
        """How many of tasks, in order, one version per test input each, the time until deadline
        can answer (all of them without a deadline or a measured pace)."""
        if deadline is None or not self.per_query:
            return len(tasks)
        left, n = deadline - time.monotonic(), 0
        for task in tasks:
            left -= self.per_query * self.queries_of(len(task.test), 1)
            if left < 0:
                break
            n += 1
        return n

    def versions_for(self, n_tests: int, n_versions: int, tasks_left: int, deadline: float | None) -> int:
        """The versions per test input a task may run, with tasks_left tasks (this one included)
        sharing the time until deadline."""
        if deadline is None or not self.per_query:
            return n_versions
        share = (
            (deadline - time.monotonic()) / max(tasks_left, 1) / INFERENCE_SPARE
        )  # a quarter spare, as adaptation leaves
        fits = math.floor(share / (self.per_query * self.queries_of(max(n_tests, 1), 1)))
        return max(1, min(n_versions, fits))


def adaptation_deadline(
    model, todo: list[Task], cfg: SolveConfig, canvas, dtype, deadline: float | None, say, pace=None
) -> float | None:
    """The monotonic time at which adaptation must stop for the inference of todo to end by
    deadline (one line to say with the estimate and how long measuring it took); None without
    a deadline or tasks. pace (an InferencePace) learns the measured seconds per query."""
    if deadline is None or not todo:
        return None
    if time.monotonic() >= deadline:  # reading the tasks took it all: nothing is measured or prepared
        if pace is not None:
            pace.per_query = math.inf
        say("the time budget is spent before the model could run: every task keeps its fallback")
        return deadline
    n_versions = min(cfg.data.n_augmentations, cfg.infer.max_versions or cfg.data.n_augmentations)
    n_versions *= 1 + cfg.infer.rollouts  # each version's rollouts cost what it does
    n_queries = sum(len(t.test) for t in todo) * n_versions
    began = time.monotonic()
    estimate = inference_seconds(model, todo, cfg, canvas, dtype, n_versions, deadline)
    took = time.monotonic() - began
    if pace is not None:
        pace.per_query = estimate / max(n_queries, 1)
    stop = deadline - INFERENCE_SPARE * estimate
    say(
        f"inference estimate {estimate:.0f}s for {n_queries} queries (measured in {took:.1f}s); "
        f"adaptation until {max(stop - time.monotonic(), 0):.0f}s from now"
    )
    return stop


def inference_seconds(
    model, todo: list[Task], cfg: SolveConfig, canvas, dtype, n_versions: int, deadline: float | None = None
) -> float:
    """Seconds the inference of every task will take: one query timed on the largest canvas the
    tasks need, then a batch of them where that fits a small share of the time left before
    deadline (a batch runs faster per query); the other canvases scaled by their cost per query
    (tokens times the cost of a token, whose attention part grows with the sequence). The model
    is not changed."""
    identity = [(0, Augmentation.identity())]
    probes = [q for t in todo for q in queries_for(t, identity)]
    tasks = {t.id: t for t in todo}
    sides = query_sides(tasks, probes, canvas)
    prefix, width = model.config.puzzle_emb_len, model.config.hidden_size

    def cost(side: int) -> float:
        length = prefix + side * side
        return length * (3 * width + length)  # per layer: 12 D^2 per token in matrices, 4 L D in attention

    largest = max(range(len(probes)), key=lambda k: sides[k])
    levers = Levers.of(cfg.infer, cfg.run.seed)  # the depth a query runs at
    left = math.inf if deadline is None else deadline - time.monotonic()
    sample = [probes[largest]] * min(cfg.infer.batch_size, 64)
    per_query = seconds_per_query(
        model, tasks, sample, canvas, cfg.infer.batch_size, dtype, MEASURE_SHARE * left, levers
    )
    return per_query * n_versions * sum(cost(side) for side in sides) / cost(sides[largest])
