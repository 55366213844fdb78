"""One checkpoint's turn in a solve: loaded, adapted to the tasks its canvas takes, within the
time its inference leaves, then answering them one by one, each task's answers voted with those
of the checkpoints before it and written as they come (infer_task_into)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from arcsolver.config import SolveConfig
from arcsolver.console import one_line as escaped
from arcsolver.data.task import Task
from arcsolver.engine.pretrained import load_model, trained_versions
from arcsolver.evaluation.canvas import model_canvases
from arcsolver.evaluation.inference import DeadlineReached, Levers
from arcsolver.solve.adapt import adapt_or_restore, error_line, pick_micro_batch
from arcsolver.solve.budget import InferencePace, adaptation_deadline
from arcsolver.solve.progress import CheckpointProgress, FallbackLines, plain_lines
from arcsolver.solve.ranking import Answers, rank_answers, run_task
from arcsolver.solve.writer import (
    Submissions,
    attempt_sources,
    checkpoint_path,
    fallback_names,
    from_model,
    two_attempts,
)

if TYPE_CHECKING:
    from arcsolver.solve.solver import SolveReport

NO_GRID = "the model's answers hold no valid grid"


@dataclass
class Solving:
    """What every checkpoint of a solve works with: the recipe, the console, the tasks (those
    that parsed, by id) with their fallbacks, the submission (its file and task order) and the
    report, on this device and dtype."""

    cfg: SolveConfig
    console: Any
    tasks: Any  # task id -> Task, those that parsed
    fallbacks: dict
    subs: Submissions
    report: SolveReport
    say_fallback: FallbackLines
    device: torch.device
    dtype: torch.dtype


def answer_with(
    checkpoint: str, index: int, n_checkpoints: int, share: float | None, s: Solving, answered: dict[str, list[Answers]]
) -> None:
    """One checkpoint of a solve loads, adapts to the tasks it can take and answers them before
    share (a monotonic time; None: no budget), adding its answers to each task's in answered."""
    cfg, report, device, dtype = s.cfg, s.report, s.device, s.dtype
    say = plain_lines(s.console)
    whose = f" ({index + 1} of {n_checkpoints})" if n_checkpoints > 1 else ""
    own = checkpoint_submissions(s.subs.out, index, s.subs.order, s.fallbacks, cfg) if n_checkpoints > 1 else None
    model, _, ckpt_dir = load_model(checkpoint, device)
    canvas = model_canvases(model.config)  # grid-sized sides (rope2d) or the one trained canvas
    todo = tasks_for_model(s, canvas if isinstance(canvas, int) else max(canvas), answered)
    T, n_sup = Levers.of(cfg.infer, cfg.run.seed).depth(model)
    rollouts = f", {cfg.infer.rollouts} noisy rollouts of each query" if cfg.infer.rollouts else ""
    say(
        f"checkpoint {ckpt_dir}{whose}; {len(todo)} of {len(s.subs.order)} tasks for the model; {device}, "
        f"{str(dtype).removeprefix('torch.')}; inference at T = {T}, N_sup = {n_sup}{rollouts}"
    )

    trained = trained_versions(ckpt_dir, [t.id for t in todo])
    if trained:
        say(
            f"{len(trained)} of {len(todo)} tasks answered with the {sum(map(len, trained.values()))} task versions "
            f"the checkpoint was trained on, from their trained rows ({ckpt_dir / 'puzzles.txt'})"
        )

    micro = pick_micro_batch(model, cfg, dtype, device, say) if todo and cfg.adapt.steps else None

    # Budget: leave inference the time it needs, measured on the real model; the rest adapts.
    pace = InferencePace(rollouts=cfg.infer.rollouts)
    adapt_deadline = adaptation_deadline(model, todo, cfg, canvas, dtype, share, say, pace)
    # Tasks the time left cannot answer even on one version each are not prepared at all: with
    # 100,000 tasks, their versions alone would take minutes to build.
    reachable = pace.tasks_within(todo, share)
    if reachable < len(todo):
        rest = "the rest keep their fallbacks" if not answered else "the rest keep what earlier checkpoints answered"
        say(f"the time budget reaches {reachable} of the {len(todo)} tasks{whose}; {rest}")
        for task in todo[reachable:]:
            if task.id not in answered:
                report.fallbacks[task.id] = "time budget reached before its inference"
        todo = todo[:reachable]

    with CheckpointProgress(s.console) as shown:
        tracked = bool(todo and cfg.adapt.steps)
        with shown.adapting(len(todo), cfg, s.subs.out, adapt_deadline, tracked) as on_step:
            adapted, report.adapt_error = adapt_or_restore(
                model, todo, cfg, dtype, adapt_deadline, on_step, micro, shown.line, trained
            )
        if report.adapt_error is not None:
            s.console.print(
                f"[yellow]adaptation failed[/] ({escaped(report.adapt_error)}); "
                "the tasks are answered by the unadapted network",
                highlight=False,
                soft_wrap=True,
            )
        shown.adapted(adapted.steps)
        report.adapt_steps, report.adapt_s = report.adapt_steps + adapted.steps, report.adapt_s + adapted.seconds

        infer_started = shown.inferring(len(todo))
        for done, task in enumerate(todo, start=1):
            if share is not None and time.monotonic() > share:
                if task.id not in answered:
                    report.fallbacks[task.id] = "time budget reached before its inference"
            else:
                # The time left is shared anew among the tasks left as each one finishes.
                full = len(adapted.versions[task.id][: cfg.infer.max_versions])
                versions = pace.versions_for(len(task.test), full, len(todo) - done + 1, share)
                fewer = versions if versions < full else None
                began = time.monotonic()
                infer_task_into(
                    lambda task=task, fewer=fewer: Answers(
                        f"ckpt-{index}: {ckpt_dir}",
                        *run_task(model, task, adapted.versions[task.id], cfg, canvas, dtype, share, fewer),
                    ),
                    task,
                    cfg,
                    s.subs,
                    own,
                    s.fallbacks,
                    answered,
                    report,
                    s.say_fallback,
                    keep=index < n_checkpoints - 1,
                )
                pace.observe(pace.queries_of(len(task.test), versions), time.monotonic() - began)
            shown.inferred(done, report.solved_by_model)
        report.infer_s += time.monotonic() - infer_started
    if own is not None:
        own.write()


def tasks_for_model(s: Solving, largest: int, answered: dict[str, list[Answers]]) -> list[Task]:
    """The tasks of the solve, in order, that parsed and fit a canvas of side largest; each other
    one that parsed keeps its fallbacks, said once (not once per checkpoint)."""
    todo: list[Task] = []
    for tid in s.subs.order:
        if tid not in s.tasks:
            continue
        if s.tasks[tid].max_side() > largest:
            side = s.tasks[tid].max_side()
            reason = f"grids up to {side}x{side} exceed the model's {largest}x{largest} canvas"
            if tid not in s.report.fallbacks and tid not in answered:
                s.report.fallbacks[tid] = reason
                s.say_fallback(tid, reason)
        else:
            todo.append(s.tasks[tid])
    return todo


def checkpoint_submissions(out: Path, index: int, order: list[str], fallbacks: dict, cfg: SolveConfig) -> Submissions:
    """The file of one checkpoint's own attempts in an ensemble, <out stem>.ckpt-<index>.json,
    under the main ranking: its gain over the ensemble can be measured."""
    return Submissions(checkpoint_path(out, index), order, fallbacks, cfg.infer.ranking, write_all=False)


def infer_task_into(
    run: Callable[[], Answers],
    task: Task,
    cfg: SolveConfig,
    subs: Submissions,
    own: Submissions | None,
    fallbacks: dict,
    answered: dict[str, list[Answers]],
    report: SolveReport,
    say_fallback,
    keep: bool = False,
) -> None:
    """Add one checkpoint's answers to a task's (run() gives them) and rewrite the files when
    due: the vote takes every checkpoint's answers so far. keep: a later checkpoint will vote
    too, so the answers are kept for it (else only that the task was answered: log-probabilities
    of every task would fill memory). A failure, or the deadline passing during its inference,
    costs this task only (an earlier checkpoint's answers stay; a half-answered run has no vote)."""
    try:
        mine = run()
        rankings = rank_answers(task, [*answered.get(task.id, []), mine], cfg)
        own_rankings = rank_answers(task, [mine], cfg) if own is not None else {}
    except DeadlineReached:
        if task.id not in answered:  # its fallback stays
            report.fallbacks[task.id] = "time budget reached during its inference"
        return
    except Exception as e:  # one task's failure must not cost the others
        if task.id not in answered:
            report.fallbacks[task.id] = f"inference failed: {error_line(e)}"
            say_fallback(task.id, report.fallbacks[task.id])
        return
    answered.setdefault(task.id, []).append(mine if keep else replace(mine, queries=[], preds=[], log_probs=[]))
    names = fallback_names(task, fallbacks[task.id])
    gave_a_grid = False  # by the sources record of the main rule, as the solve's last line counts
    for rule, ranked in rankings.items():
        sources = [attempt_sources(r, fb, nm) for r, fb, nm in zip(ranked, fallbacks[task.id], names)]
        subs.set(task.id, rule, [two_attempts(r, fb) for r, fb in zip(ranked, fallbacks[task.id])], sources)
        if rule == subs.main:
            gave_a_grid = from_model(sources)
    if gave_a_grid:
        report.fallbacks.pop(task.id, None)  # an earlier checkpoint's failure is mended
    elif report.fallbacks.get(task.id) != NO_GRID:  # said once, not once per checkpoint
        report.fallbacks[task.id] = NO_GRID
        say_fallback(task.id, NO_GRID)
    subs.write_due()
    if own is not None:
        for rule, ranked in own_rankings.items():
            own.set(task.id, rule, [two_attempts(r, fb) for r, fb in zip(ranked, fallbacks[task.id])])
        own.write_due()
    report.solved_by_model = len(answered)
