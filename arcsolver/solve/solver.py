"""`arcsolver solve`: challenges file in, Kaggle submission out, whatever happens in between.

The order of work guarantees a valid file at every moment: first every task gets fallback
attempts and the file is written; then the model adapts to the tasks; then each task's
inference replaces its fallback, and the file is rewritten every few seconds (writer.py) and at
the end. A bad task, a task too big for the
model's canvas, an inference error or the time budget costs only the tasks concerned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from arcsolver.config import SolveConfig
from arcsolver.console import one_line as escaped
from arcsolver.engine.checkpoint import find_checkpoint
from arcsolver.engine.device import limit_gpu_memory, resolve_device, resolve_dtype, seed_everything
from arcsolver.errors import ArcsolverError
from arcsolver.solve.answer import Solving, answer_with
from arcsolver.solve.budget import safety_margin, solve_deadline
from arcsolver.solve.progress import FallbackLines, plain_lines, trackers_dir
from arcsolver.solve.ranking import Answers
from arcsolver.solve.submission import read_for_submission
from arcsolver.solve.writer import Submissions, fallback_sources
from arcsolver.trackers import check_trackers


@dataclass
class SolveReport:
    tasks: int = 0
    # Tasks the model gave an attempt of, and those that keep only fallbacks: at the end, as the
    # sources record counts them (Submissions.source_counts), so the last line says what it says.
    solved_by_model: int = 0
    fallback_only: int = 0
    fallbacks: dict[str, str] = field(default_factory=dict)  # task id -> why it keeps its fallbacks
    adapt_steps: int = 0
    adapt_s: float = 0.0
    adapt_error: str | None = None  # why adaptation failed; the unadapted network answered
    infer_s: float = 0.0
    gpu_peak_gib: float | None = None  # the most GPU memory torch held at once
    unwritten: dict[str, str] = field(default_factory=dict)  # file -> why its last write failed


def solve(
    challenges: Path,
    out: Path,
    checkpoints: str | list[str],
    cfg: SolveConfig,
    console,
    shard: tuple[int, int] = (0, 1),
    started: float | None = None,
) -> SolveReport:
    """Adapt to the tasks of a challenges file (this shard of them) and write the submission.
    One seed gives the same files every time, unless the time budget cuts adaptation short.

    Several checkpoints answer as an ensemble: each adapts and answers every task in turn, in
    its share of the time left, and every task's vote takes the candidates of all of them so
    far; each one's own attempts also go to <out stem>.ckpt-<k>.json.
    started: the monotonic time the budget counts from (default: now)."""
    checkpoints = [checkpoints] if isinstance(checkpoints, str) else list(checkpoints)
    # A missing or broken package, or a directory they cannot write, fails here, before any work.
    check_trackers(cfg.run.trackers, trackers_dir(Path(out)) if cfg.adapt.steps else None)
    for checkpoint in checkpoints:  # and so does an ensemble's missing checkpoint, not after the others' work
        find_checkpoint(checkpoint)
    seed_everything(cfg.run.seed)  # adaptation draws from torch's generator (halting exploration)
    deadline = solve_deadline(cfg, started)
    report = SolveReport()

    raw, tasks, problems, fallbacks = read_for_submission(challenges)
    order = [tid for i, tid in enumerate(raw) if i % shard[1] == shard[0]]
    say = plain_lines(console)
    say_fallback = FallbackLines(console)
    mine = set(order)
    for problem in problems:
        if problem.task_id in mine:
            report.fallbacks[problem.task_id] = f"malformed: {problem.message}"
            say_fallback.line(str(problem))
    subs = Submissions(Path(out), order, fallbacks, cfg.infer.ranking, cfg.infer.write_all_rankings)
    subs.keep_sources({tid: fallback_sources(tasks[tid] if tid in tasks else None, fallbacks[tid]) for tid in order})
    subs.write()
    if subs.unwritten:  # before any work: nothing is lost by stopping here
        path, reason = next(iter(subs.unwritten.items()))
        raise ArcsolverError(f"{path}: cannot write ({reason}); the files already there are intact")
    subs.on_problem = lambda text: console.print(f"[yellow]{escaped(text)}", highlight=False, soft_wrap=True)
    report.tasks = len(order)

    device = resolve_device(cfg.run.device)
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    dtype = resolve_dtype(cfg.run.dtype, device)
    limit_gpu_memory(cfg.run.gpu_memory_gb, device)
    if cfg.run.time_budget_s is not None and safety_margin(cfg) < cfg.run.safety_margin_s:
        say(
            f"run.safety_margin_s {cfg.run.safety_margin_s:g}s is more than half the budget: {safety_margin(cfg):g}s kept"
        )
    answered: dict[str, list[Answers]] = {}  # task id -> each checkpoint's answers so far
    solving = Solving(cfg, console, tasks, fallbacks, subs, report, say_fallback, device, dtype)
    for index, checkpoint in enumerate(checkpoints):
        # Each checkpoint adapts as a solve of it alone would, within its share of the time left.
        seed_everything(cfg.run.seed)
        left = len(checkpoints) - index
        share = None if deadline is None else time.monotonic() + (deadline - time.monotonic()) / left
        answer_with(checkpoint, index, len(checkpoints), share, solving, answered)
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the last checkpoint's model is gone: free its memory for the next
    for tid, reason in report.fallbacks.items():
        if reason.startswith("time budget"):
            say_fallback(tid, reason)
    say_fallback.summarise()
    subs.write()
    report.solved_by_model, report.fallback_only = subs.source_counts()
    report.unwritten = {str(path): reason for path, reason in subs.unwritten.items()}
    if device.type == "cuda":
        report.gpu_peak_gib = torch.cuda.max_memory_allocated(device) / 2**30
    return report


def summary_line(out: Path, report: SolveReport) -> str:
    """The last line of a solve: what the file holds and where the time went."""
    adaptation = "failed" if report.adapt_error else f"{report.adapt_steps} steps"
    if report.tasks and not report.solved_by_model:
        holds = f"{report.tasks} tasks, fallbacks only: the model answered none of them (reasons above)"
    else:
        holds = f"{report.tasks} tasks, {report.solved_by_model} from the model, {report.fallback_only} fallbacks"
    return (
        f"wrote {out}: {holds}; adaptation {adaptation} in {report.adapt_s:.0f}s, inference {report.infer_s:.0f}s"
        + ("" if report.gpu_peak_gib is None else f"; peak GPU memory {report.gpu_peak_gib:.1f} GiB")
    )


def unwritten_error(report: SolveReport) -> ArcsolverError:
    """The error of a solve whose last write of a file failed: the file keeps its last complete write."""
    path, reason = next(iter(report.unwritten.items()))
    return ArcsolverError(
        f"{path}: cannot write ({reason}); the file there is its last complete write: free space and run solve again"
    )
