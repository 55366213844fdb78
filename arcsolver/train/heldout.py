"""Held-out evaluation during pretraining: pass@1/pass@2 on the test inputs of the held-out tasks,
voted over their augmented versions, with progress told while it runs."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import arcsolver.console
from arcsolver.config import PretrainConfig
from arcsolver.console import duration
from arcsolver.data.stream import Puzzle
from arcsolver.data.task import Task
from arcsolver.engine.distributed import Dist, sum_over_processes
from arcsolver.evaluation.inference import (
    AnswerLoss,
    Levers,
    Query,
    predict_with_answer_loss,
    queries_for,
    seconds_per_query,
    vote_queries,
)
from arcsolver.evaluation.scoring import heldout_scores
from arcsolver.train.logger import Logger
from arcsolver.train.run import Run


def paced_chunks(items: list, most: int, first: int = 32):
    """Consecutive slices of items, at most `most` long, sized so that each is done in a few
    seconds: progress can then be told between them at least every HEARTBEAT_S. They start at
    `first` items and double while a slice takes under a sixth of HEARTBEAT_S (on a GPU, up to
    `most` within a few slices), and halve when one takes over a third (a slow CPU)."""
    size, start = min(first, most), 0
    while start < len(items):
        began = time.monotonic()
        yield items[start : start + size]
        start += size
        took = time.monotonic() - began
        if took < arcsolver.console.HEARTBEAT_S / 6:
            size = min(size * 2, most)
        elif took > arcsolver.console.HEARTBEAT_S / 3:
            size = max(size // 2, 1)


def evaluate_heldout(
    run: Run,
    puzzles: list[Puzzle],
    heldout: list[Task],
    max_versions: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    deadline: float | None = None,
) -> dict:
    """pass@1/pass@2 and the first attempt's per-cell accuracy of the run's model (its EMA weights
    where it keeps them) on the held-out test inputs, over their augmented versions, voted; and
    `loss`, the held-out loss: the stable-max cross-entropy of the last supervision step's logits
    against the known test output, averaged over every answer cell of every query (each version
    of each test input, in its own frame; a grid's cells and its EOS border, as the training
    labels), before any vote.

    Every process scores its own share of the tasks; the sums are combined. The versions voted
    per test input are the fewer of max_versions and eval.max_versions (None: no limit), each
    also run eval.rollouts times from a noisy start; the record says the depth (T, N_sup) run.
    on_progress(done, total) hears of this process's queries after every batch. Past deadline (a
    monotonic time, checked between batches) no batch begins: the tasks answered whole are
    scored, "cut" counts the held-out tasks left out, and the loss is that of the queries run.
    """
    cfg, d, model = run.cfg, run.d, run.model
    mine = heldout[d.rank :: d.world_size]
    was_training = model.training
    model.eval()
    try:
        with run.ema.applied(model) if run.ema is not None else contextlib.nullcontext():
            queries, preds, loss = heldout_predictions(
                model, cfg, puzzles, mine, max_versions, run.dtype, on_progress, deadline
            )
    finally:
        model.train(was_training)
    answered = queries[: len(preds)]
    # Queries run task by task: a task cut in the middle has only some versions voted, and is left out.
    unanswered = {q.task_id for q in queries[len(preds) :]}
    whole = [t for t in mine if t.id not in unanswered]
    scores = heldout_scores({t.id: t for t in whole}, vote_queries(answered, preds))
    n = scores["tasks"]
    keys = ("pass@1", "pass@2", "cell_accuracy")
    sums = sum_over_processes(
        [scores[k] * n for k in keys] + [loss.nll, loss.cells, n, len(mine) - len(whole)], d, run.device
    )
    nll, cells, tasks, cut = sums[-4:]
    held_out_loss = {"loss": nll / cells} if cells else {}  # no held-out task with a known answer: none
    means = {k: s / max(tasks, 1) for k, s in zip(keys, sums)}
    result = {**means, **held_out_loss, "tasks": int(tasks), **depth_of(model, cfg)}
    return result | ({"cut": int(cut)} if cut else {})


def depth_of(model, cfg: PretrainConfig) -> dict:
    """The depth (T, N_sup) and rollouts a held-out evaluation of model runs under cfg.eval."""
    T, n_sup = Levers.of(cfg.eval, cfg.run.seed).depth(model)
    return {"n_recursions": T, "n_supervision": n_sup, "rollouts": cfg.eval.rollouts}


def heldout_queries(
    cfg: PretrainConfig, puzzles: list[Puzzle], tasks: list[Task], max_versions: int | None = None
) -> list[Query]:
    """The queries of tasks' test inputs, task by task: each input in the fewer of max_versions
    and eval.max_versions of its versions among puzzles (None: no limit), each version also run
    eval.rollouts times from a noisy start."""
    limits = [v for v in (max_versions, cfg.eval.max_versions) if v is not None]
    versions: dict[str, list] = {}
    for pid, puzzle in enumerate(puzzles, start=1):
        versions.setdefault(puzzle.task.id, []).append((pid, puzzle.augmentation))
    return [q for t in tasks for q in queries_for(t, versions[t.id], min(limits, default=None), cfg.eval.rollouts)]


def heldout_predictions(
    model,
    cfg: PretrainConfig,
    puzzles: list[Puzzle],
    tasks: list[Task],
    max_versions: int | None,
    dtype,
    on_progress: Callable[[int, int], None] | None = None,
    deadline: float | None = None,
) -> tuple[list[Query], list, AnswerLoss]:
    """(queries, predictions, the cross-entropy of the known answers) of model on the test inputs
    of tasks (heldout_queries), with eval's depth and rollouts. Past deadline (a monotonic time,
    checked between batches) no batch begins: the predictions are then those of the queries'
    first part."""
    queries = heldout_queries(cfg, puzzles, tasks, max_versions)
    levers = Levers.of(cfg.eval, cfg.run.seed)
    by_id = {t.id: t for t in tasks}
    preds: list = []
    loss = AnswerLoss()
    for chunk in paced_chunks(queries, cfg.eval.batch_size):
        if deadline is not None and time.monotonic() > deadline:
            break
        chunk_preds, chunk_loss = predict_with_answer_loss(
            model, by_id, chunk, cfg.canvas_sides() or cfg.model.canvas, cfg.eval.batch_size, dtype, levers
        )
        preds += chunk_preds
        loss.nll, loss.cells = loss.nll + chunk_loss.nll, loss.cells + chunk_loss.cells
        if on_progress is not None:
            on_progress(len(preds), len(queries))
    return queries, preds, loss


def evaluation_seconds(run: Run, puzzles: list[Puzzle], heldout: list[Task], limit_s: float) -> tuple[float, int]:
    """(seconds the final held-out evaluation of this process's share will take, its queries),
    from one query timed, then a sample of them across its canvases where that takes under a
    twentieth of limit_s. Neither the model nor any random generator is changed."""
    cfg, d = run.cfg, run.d
    mine = heldout[d.rank :: d.world_size]
    queries = heldout_queries(cfg, puzzles, mine)
    if not queries:
        return 0.0, 0
    n = min(cfg.eval.batch_size, 32, len(queries))
    sample = queries[:: max(len(queries) // n, 1)][:n]  # across the canvases, as the evaluation runs them
    canvas = cfg.canvas_sides() or cfg.model.canvas
    levers = Levers.of(cfg.eval, cfg.run.seed)  # the depth it runs at
    tasks = {t.id: t for t in mine}
    per_query = seconds_per_query(
        run.model, tasks, sample, canvas, cfg.eval.batch_size, run.dtype, limit_s / 20, levers
    )
    return per_query * len(queries), len(queries)


def eval_progress(logger: Logger, what: str, d: Dist) -> Callable[[int, int], None]:
    """An on_progress for evaluate_heldout: plain lines off a terminal, as the steps have."""
    started = time.monotonic()
    whose = " of this process" if d.enabled else ""  # the main process tells its own share

    def on_progress(done: int, total: int) -> None:
        logger.heartbeat(lambda: f"{what}: {done}/{total} queries{whose}, {duration(time.monotonic() - started)}")

    return on_progress


def evaluate_logged(
    run: Run,
    puzzles: list[Puzzle],
    heldout: list[Task],
    logger: Logger,
    step: int,
    final: bool,
    deadline: float | None = None,
) -> dict:
    """evaluate_heldout of the model at step, told as it runs and recorded in metrics.jsonl: a
    periodic evaluation (over at most eval.periodic_max_versions versions) or the final one;
    one cut short at deadline says so."""
    what = "held-out evaluation" if final else f"step {step}: held-out evaluation"
    max_versions = None if final else run.cfg.eval.periodic_max_versions
    scores = evaluate_heldout(run, puzzles, heldout, max_versions, eval_progress(logger, what, run.d), deadline)
    if scores.get("cut"):
        logger.print(
            f"{what} stopped at the time limit: {scores['tasks']} tasks scored, {scores['cut']} left out "
            "(raise run.time_limit_s, or lower eval.max_versions, to score them all)"
        )
    logger.log_evaluation(step, scores)
    return scores
