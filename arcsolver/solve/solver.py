"""`arcsolver solve`: challenges file in, Kaggle submission out, whatever happens in between.

The order of work guarantees a valid file at every moment: first every task gets fallback
attempts and the file is written; then the model adapts to the tasks; then each task's
inference replaces its fallback, and the file is rewritten every few seconds (writer.py) and at
the end. A bad task, a task too big for the
model's canvas, an inference error or the time budget costs only the tasks concerned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from arcsolver.config import SolveConfig
from arcsolver.console import Heartbeat, duration, projected_total
from arcsolver.console import one_line as escaped
from arcsolver.data.task import Task, task_label
from arcsolver.engine.checkpoint import find_checkpoint
from arcsolver.engine.device import limit_gpu_memory, resolve_device, resolve_dtype, seed_everything
from arcsolver.engine.pretrained import load_model, trained_versions
from arcsolver.errors import ArcsolverError
from arcsolver.evaluation.canvas import model_canvases
from arcsolver.evaluation.inference import (
    DeadlineReached,
    Levers,
    predict,
    predict_with_log_probs,
    queries_for,
    rank_by_likelihood,
    vote_queries,
)
from arcsolver.solve.adapt import adapt_or_restore, error_line, pick_micro_batch
from arcsolver.solve.budget import InferencePace, adaptation_deadline, safety_margin, solve_deadline
from arcsolver.solve.submission import read_for_submission
from arcsolver.solve.writer import (
    Submissions,
    attempt_sources,
    checkpoint_path,
    fallback_names,
    fallback_sources,
    from_model,
    two_attempts,
)
from arcsolver.trackers import Trackers, check_trackers

NO_GRID = "the model's answers hold no valid grid"


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
    say = lambda text: console.print(escaped(text), highlight=False, soft_wrap=True)  # noqa: E731
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
    solving = Solving(cfg, console, Path(out), order, tasks, fallbacks, subs, report, say, say_fallback, device, dtype)
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


@dataclass
class Solving:
    """What every checkpoint of a solve works with: the recipe, the console, the files and the tasks."""

    cfg: SolveConfig
    console: Any
    out: Path
    order: list[str]
    tasks: Any  # task id -> Task, those that parsed
    fallbacks: dict
    subs: Submissions
    report: SolveReport
    say: Callable[[str], None]
    say_fallback: FallbackLines
    device: torch.device
    dtype: torch.dtype


def answer_with(
    checkpoint: str, index: int, n_checkpoints: int, share: float | None, s: Solving, answered: dict[str, list[Answers]]
) -> None:
    """One checkpoint of a solve loads, adapts to the tasks it can take and answers them before
    share (a monotonic time; None: no budget), adding its answers to each task's in answered."""
    cfg, console, out, order, tasks, fallbacks = s.cfg, s.console, s.out, s.order, s.tasks, s.fallbacks
    subs, report, say, say_fallback, device, dtype = s.subs, s.report, s.say, s.say_fallback, s.device, s.dtype
    whose = f" ({index + 1} of {n_checkpoints})" if n_checkpoints > 1 else ""
    own = checkpoint_submissions(Path(out), index, order, fallbacks, cfg) if n_checkpoints > 1 else None
    model, _, ckpt_dir = load_model(checkpoint, device)
    canvas = model_canvases(model.config)  # grid-sized sides (rope2d) or the one trained canvas
    largest = canvas if isinstance(canvas, int) else max(canvas)
    todo: list[Task] = []
    for tid in order:
        if tid not in tasks:
            continue
        if tasks[tid].max_side() > largest:
            reason = f"grids up to {tasks[tid].max_side()}x{tasks[tid].max_side()} exceed the model's {largest}x{largest} canvas"
            if tid not in report.fallbacks and tid not in answered:  # said once, not once per checkpoint
                report.fallbacks[tid] = reason
                say_fallback(tid, reason)
        else:
            todo.append(tasks[tid])
    T, n_sup = Levers.of(cfg.infer, cfg.run.seed).depth(model)
    rollouts = f", {cfg.infer.rollouts} noisy rollouts of each query" if cfg.infer.rollouts else ""
    say(
        f"checkpoint {ckpt_dir}{whose}; {len(todo)} of {len(order)} tasks for the model; {device}, "
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

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
    )
    heartbeat = Heartbeat(console)  # plain lines where the console is not a terminal
    # Off a terminal the bars would only land at the log's end, beside the heartbeat's lines.
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        bar = progress.add_task(f"adapting {len(todo)} tasks", total=cfg.adapt.steps, status="")
        adapt_started = time.monotonic()

        def on_step(step, loss, metrics):
            elapsed = time.monotonic() - adapt_started
            if trackers is not None:
                trackers.log({"step": step, "loss": loss, **metrics, "time_s": elapsed})
            status = f"loss {loss:.3f} exact {metrics['exact_accuracy']:.2f}"
            # The time budget may end adaptation before adapt.steps: the total shown follows it.
            total = projected_total(cfg.adapt.steps, step, 0, adapt_started, adapt_deadline)
            progress.update(bar, completed=step, total=total, status=status)
            heartbeat(lambda: f"adapting {len(todo)} tasks: step {step}/{total}, {status}; {duration(elapsed)} elapsed")

        trackers = (
            Trackers(cfg.run.trackers, trackers_dir(Path(out)), Path(out).stem, cfg.model_dump(mode="json"))
            if cfg.run.trackers and todo and cfg.adapt.steps
            else None
        )
        try:
            adapted, report.adapt_error = adapt_or_restore(
                model,
                todo,
                cfg,
                dtype,
                adapt_deadline,
                on_step,
                micro,
                lambda text: progress.console.print(escaped(text), highlight=False),
                trained,
            )
        finally:
            if trackers is not None:
                trackers.close()
        if report.adapt_error is not None:
            console.print(
                f"[yellow]adaptation failed[/] ({escaped(report.adapt_error)}); "
                "the tasks are answered by the unadapted network",
                highlight=False,
                soft_wrap=True,
            )
        progress.update(bar, completed=adapted.steps, total=max(adapted.steps, 1))
        report.adapt_steps, report.adapt_s = report.adapt_steps + adapted.steps, report.adapt_s + adapted.seconds

        infer_started = time.monotonic()
        bar = progress.add_task("inference", total=len(todo), status="")
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
                        *run_task(
                            model,
                            task,
                            adapted.versions[task.id],
                            cfg,
                            canvas,
                            dtype,
                            share,
                            fewer,
                        ),
                    ),
                    task,
                    cfg,
                    subs,
                    own,
                    fallbacks,
                    answered,
                    report,
                    say_fallback,
                    keep=index < n_checkpoints - 1,
                )
                pace.observe(pace.queries_of(len(task.test), versions), time.monotonic() - began)
            progress.update(bar, advance=1)
            heartbeat(
                lambda done=done: (
                    f"inference: task {done}/{len(todo)}, {report.solved_by_model} answered by the model; "
                    f"{duration(time.monotonic() - infer_started)} elapsed"
                )
            )
        report.infer_s += time.monotonic() - infer_started
    if own is not None:
        own.write()


def trackers_dir(out: Path) -> Path:
    """Where the trackers of a solve writing out keep their files: <out stem>.trackers beside it."""
    return out.with_name(f"{out.stem}.trackers")


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


class FallbackLines:
    """One line per task that keeps its fallback attempts, and why, for the first LISTED of
    them; past those, one line at the end counts the rest by reason (a budget that runs out
    over thousands of tasks is one line, not thousands)."""

    LISTED = 30

    def __init__(self, console):
        self.console, self.said = console, 0
        self.unsaid: dict[str, int] = {}

    def __call__(self, task_id: str, reason: str) -> None:
        self.line(f"task {task_label(task_id)}: {reason}", reason)

    def line(self, text: str, reason: str = "malformed") -> None:
        if self.said < self.LISTED:
            self.console.print(f"[yellow]fallback[/] {escaped(text)}", highlight=False, soft_wrap=True)
            self.said += 1
        else:
            kind = reason.split(":")[0]
            self.unsaid[kind] = self.unsaid.get(kind, 0) + 1

    def summarise(self) -> None:
        """The line counting the fallbacks not listed, if there were any."""
        if self.unsaid:
            counts = "; ".join(f"{n} {kind}" for kind, n in sorted(self.unsaid.items(), key=lambda kv: -kv[1]))
            self.console.print(
                f"[yellow]fallback[/] {sum(self.unsaid.values())} more tasks ({escaped(counts)})",
                highlight=False,
                soft_wrap=True,
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
