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
    on_progress(done, total) hears of this process's queries after every batch.
    """
    cfg, d, model = run.cfg, run.d, run.model
    mine = heldout[d.rank :: d.world_size]
    was_training = model.training
    model.eval()
    try:
        with run.ema.applied(model) if run.ema is not None else contextlib.nullcontext():
            queries, preds, loss = heldout_predictions(model, cfg, puzzles, mine, max_versions, run.dtype, on_progress)
    finally:
        model.train(was_training)
    scores = heldout_scores({t.id: t for t in mine}, vote_queries(queries, preds))
    n = scores["tasks"]
    keys = ("pass@1", "pass@2", "cell_accuracy")
    sums = sum_over_processes([scores[k] * n for k in keys] + [loss.nll, loss.cells, n], d, run.device)
    nll, cells = sums[-3], sums[-2]
    held_out_loss = {"loss": nll / cells} if cells else {}  # no held-out task with a known answer: none
    means = {k: s / max(sums[-1], 1) for k, s in zip(keys, sums)}
    return {**means, **held_out_loss, "tasks": int(sums[-1]), **depth_of(model, cfg)}


def depth_of(model, cfg: PretrainConfig) -> dict:
    """The depth (T, N_sup) and rollouts a held-out evaluation of model runs under cfg.eval."""
    T, n_sup = Levers.of(cfg.eval, cfg.run.seed).depth(model)
    return {"n_recursions": T, "n_supervision": n_sup, "rollouts": cfg.eval.rollouts}


def heldout_predictions(
    model,
    cfg: PretrainConfig,
    puzzles: list[Puzzle],
    tasks: list[Task],
    max_versions: int | None,
    dtype,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Query], list, AnswerLoss]:
    """(queries, predictions, the cross-entropy of the known answers) of model on the test inputs
    of tasks, over the fewer of max_versions and eval.max_versions of their versions among
    puzzles, with eval's depth and rollouts."""
    limits = [v for v in (max_versions, cfg.eval.max_versions) if v is not None]
    versions: dict[str, list] = {}
    for pid, puzzle in enumerate(puzzles, start=1):
        versions.setdefault(puzzle.task.id, []).append((pid, puzzle.augmentation))
    levers = Levers.of(cfg.eval, cfg.run.seed)
    queries = [q for t in tasks for q in queries_for(t, versions[t.id], min(limits, default=None), cfg.eval.rollouts)]
    by_id = {t.id: t for t in tasks}
    preds: list = []
    loss = AnswerLoss()
    for chunk in paced_chunks(queries, cfg.eval.batch_size):
        chunk_preds, chunk_loss = predict_with_answer_loss(
            model, by_id, chunk, cfg.canvas_sides() or cfg.model.canvas, cfg.eval.batch_size, dtype, levers
        )
        preds += chunk_preds
        loss.nll, loss.cells = loss.nll + chunk_loss.nll, loss.cells + chunk_loss.cells
        if on_progress is not None:
            on_progress(len(preds), len(queries))
    return queries, preds, loss


def eval_progress(logger: Logger, what: str, d: Dist) -> Callable[[int, int], None]:
    """An on_progress for evaluate_heldout: plain lines off a terminal, as the steps have."""
    started = time.monotonic()
    whose = " of this process" if d.enabled else ""  # the main process tells its own share

    def on_progress(done: int, total: int) -> None:
        logger.heartbeat(lambda: f"{what}: {done}/{total} queries{whose}, {duration(time.monotonic() - started)}")

    return on_progress


def evaluate_logged(
    run: Run, puzzles: list[Puzzle], heldout: list[Task], logger: Logger, step: int, final: bool
) -> dict:
    """evaluate_heldout of the model at step, told as it runs and recorded in metrics.jsonl: a
    periodic evaluation (over at most eval.periodic_max_versions versions) or the final one."""
    what = "held-out evaluation" if final else f"step {step}: held-out evaluation"
    max_versions = None if final else run.cfg.eval.periodic_max_versions
    scores = evaluate_heldout(run, puzzles, heldout, max_versions, eval_progress(logger, what, run.d))
    logger.log_evaluation(step, scores)
    return scores
