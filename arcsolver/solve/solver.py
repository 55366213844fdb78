"""`arcsolver solve`: challenges file in, Kaggle submission out, whatever happens in between.

The order of work guarantees a valid file at every moment: first every task gets fallback
attempts and the file is written; then the model adapts to the tasks; then each task's
inference replaces its fallback and the file is rewritten. A bad task, a task too big for the
model's canvas, an inference error or the time budget costs only the tasks concerned.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from arcsolver.atomic import reported_writes, write_problem
from arcsolver.console import Heartbeat, duration
from arcsolver.console import one_line as escaped
from arcsolver.data.loaders import read_json, read_challenges_only
from arcsolver.data.task import GridError, Task, as_grid, task_label
from arcsolver.errors import ArcsolverError, DataError
from arcsolver.solve.adapt import Adapted, adapt, add_puzzles, load_model, versions_of
from arcsolver.config import SolveConfig
from arcsolver.engine.inference import model_canvases, predict, queries_for, query_sides, rank_by_likelihood, vote_queries
from arcsolver.solve.submission import fallback_attempts, submission_json, write_submission
from arcsolver.engine.device import limit_gpu_memory, resolve_device, resolve_dtype
from arcsolver.engine.memory import choose_micro_batch

RANKINGS = ("votes", "likelihood")


@dataclass
class SolveReport:
    tasks: int = 0
    solved_by_model: int = 0  # tasks whose attempts came from the model (not fallbacks)
    fallbacks: dict[str, str] = field(default_factory=dict)  # task id -> reason
    adapt_steps: int = 0
    adapt_s: float = 0.0
    adapt_error: str | None = None  # why adaptation failed; the unadapted network answered
    infer_s: float = 0.0
    gpu_peak_gib: float | None = None  # the most GPU memory torch held at once
    unwritten: dict[str, str] = field(default_factory=dict)  # file -> why its last write failed


def raw_fallback(obj) -> list[tuple]:
    """Attempts for a task that did not even parse: its test inputs where they are grids, else [[0]]."""
    tests = obj.get("test") if isinstance(obj, dict) else None
    entries = []
    for item in tests if isinstance(tests, list) and tests else [None]:
        try:
            grid = as_grid(item["input"])
        except (GridError, TypeError, KeyError):
            grid = np.zeros((1, 1), dtype=np.uint8)
        entries.append((grid, grid))
    return entries


def read_for_submission(challenges: Path):
    """(raw task map, parsed tasks, problems, fallback attempts of every task id in the file).

    Only a file that cannot be read at all, or is not a task map, is an error: every id it
    holds gets an entry, parsed or not.
    """
    raw = read_json(Path(challenges))
    if not isinstance(raw, dict):
        raise DataError(f"{challenges}: expected an object mapping task ids to tasks, got {type(raw).__name__}")
    tasks, problems = read_challenges_only(challenges)
    fallbacks = {tid: fallback_attempts(tasks[tid]) if tid in tasks else raw_fallback(obj) for tid, obj in raw.items()}
    return raw, tasks, problems, fallbacks


def side_path(out: Path, tag: str) -> Path:
    return out.with_name(f"{out.stem}.{tag}{out.suffix}")


class Submissions:
    """The attempts of every task under each ranking rule, written after every change.

    A write that fails (a full disk) leaves the file as its last complete write; it is reported
    once through on_problem and tried again at the next write. `unwritten` holds the files whose
    latest write failed, with why.
    """

    def __init__(self, out: Path, order: list[str], fallbacks: dict[str, list], main: str, write_all: bool,
                 on_problem=None):
        self.out, self.order, self.main, self.write_all = out, order, main, write_all
        self.entries = {rule: dict(fallbacks) for rule in RANKINGS}
        self.on_problem = on_problem or (lambda text: None)
        self.unwritten: dict[Path, str] = {}

    def set(self, task_id: str, rule: str, attempts: list) -> None:
        self.entries[rule][task_id] = attempts

    def write(self) -> None:
        """The main file under the chosen rule; with write_all also <out>.<rule>.json per rule."""
        for rule in RANKINGS:
            obj = submission_json({tid: self.entries[rule][tid] for tid in self.order})
            if rule == self.main:
                self._write(self.out, obj)
            if self.write_all:
                self._write(side_path(self.out, rule), obj)

    def _write(self, path: Path, obj: dict) -> None:
        try:
            write_submission(path, obj)
        except OSError as e:
            if path not in self.unwritten:
                self.on_problem(f"{path}: cannot write ({write_problem(e)}); the file there keeps its last complete "
                                "write, and each later task tries again")
            self.unwritten[path] = write_problem(e)
        else:
            self.unwritten.pop(path, None)


def two_attempts(ranked: list, fallback: tuple) -> tuple:
    """The top two distinct grids, topped up from the fallback when the vote has fewer."""
    grids = [c.grid for c in ranked[:2]]
    for g in fallback:
        if len(grids) >= 2:
            break
        if not any(g.shape == h.shape and (g == h).all() for h in grids):
            grids.append(g)
    while len(grids) < 2:
        grids.append(grids[0])
    return tuple(grids)


def solve(challenges: Path, out: Path, checkpoint: str, cfg: SolveConfig, console, shard: tuple[int, int] = (0, 1)) -> SolveReport:
    """Adapt to the tasks of a challenges file (this shard of them) and write the submission."""
    started = time.monotonic()
    budget = cfg.run.time_budget_s
    deadline = None if budget is None else started + budget - cfg.run.safety_margin_s
    report = SolveReport()

    raw, tasks, problems, fallbacks = read_for_submission(challenges)
    order = [tid for i, tid in enumerate(raw) if i % shard[1] == shard[0]]
    say = lambda text: console.print(escaped(text), highlight=False, soft_wrap=True)  # noqa: E731
    for problem in problems:
        if problem.task_id in order:
            report.fallbacks[problem.task_id] = f"malformed: {problem.message}"
            console.print(f"[yellow]fallback[/] {escaped(str(problem))}", highlight=False, soft_wrap=True)
    subs = Submissions(Path(out), order, fallbacks, cfg.infer.ranking, cfg.infer.write_all_rankings)
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
    model, pcfg, ckpt_dir = load_model(checkpoint, device)
    canvas = model_canvases(model.config)  # grid-sized sides (rope2d) or the one trained canvas
    largest = canvas if isinstance(canvas, int) else max(canvas)
    todo: list[Task] = []
    for tid in order:
        if tid not in tasks:
            continue
        if tasks[tid].max_side() > largest:
            reason = f"grids up to {tasks[tid].max_side()}x{tasks[tid].max_side()} exceed the model's {largest}x{largest} canvas"
            report.fallbacks[tid] = reason
            say_fallback(console, tid, reason)
        else:
            todo.append(tasks[tid])
    say(f"checkpoint {ckpt_dir}; {len(todo)} of {len(order)} tasks for the model; {device}, "
        f"{str(dtype).removeprefix('torch.')}")

    micro = pick_micro_batch(model, cfg, dtype, device, say) if todo and cfg.adapt.steps else None

    # Budget: leave inference the time it needs, measured on the real model; the rest adapts.
    n_versions = min(cfg.data.n_augmentations, cfg.infer.max_versions or cfg.data.n_augmentations)
    n_queries = sum(len(t.test) for t in todo) * n_versions
    adapt_deadline = None
    if deadline is not None and todo:
        estimate = inference_seconds(model, todo, cfg, canvas, dtype, n_versions)
        adapt_deadline = deadline - 1.25 * estimate
        say(f"inference estimate {estimate:.0f}s for {n_queries} queries; "
            f"adaptation until {max(adapt_deadline - time.monotonic(), 0):.0f}s from now")

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[status]}"))
    heartbeat = Heartbeat(console)  # plain lines where the console is not a terminal
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task(f"adapting {len(todo)} tasks", total=cfg.adapt.steps, status="")
        adapt_started = time.monotonic()

        def on_step(step, loss, metrics):
            status = f"loss {loss:.3f} exact {metrics['exact_accuracy']:.2f}"
            progress.update(bar, completed=step, status=status)
            heartbeat(lambda: f"adapting {len(todo)} tasks: step {step}/{cfg.adapt.steps}, {status}; "
                              f"{duration(time.monotonic() - adapt_started)} elapsed")

        adapted, report.adapt_error = adapt_or_restore(model, todo, cfg, dtype, adapt_deadline, on_step, micro,
                                                       lambda text: progress.console.print(escaped(text), highlight=False))
        if report.adapt_error is not None:
            console.print(f"[yellow]adaptation failed[/] ({escaped(report.adapt_error)}); "
                          "the tasks are answered by the unadapted network", highlight=False, soft_wrap=True)
        progress.update(bar, completed=adapted.steps, total=max(adapted.steps, 1))
        report.adapt_steps, report.adapt_s = adapted.steps, adapted.seconds

        infer_started = time.monotonic()
        bar = progress.add_task("inference", total=len(todo), status="")
        for done, task in enumerate(todo, start=1):
            if deadline is not None and time.monotonic() > deadline:
                report.fallbacks[task.id] = "time budget reached before its inference"
            else:
                infer_task_into(model, task, adapted, cfg, canvas, dtype, subs, fallbacks, report, console)
            progress.update(bar, advance=1)
            heartbeat(lambda: f"inference: task {done}/{len(todo)}, {report.solved_by_model} answered by the model; "
                              f"{duration(time.monotonic() - infer_started)} elapsed")
        report.infer_s = time.monotonic() - infer_started
    for tid, reason in report.fallbacks.items():
        if reason.startswith("time budget"):
            say_fallback(console, tid, reason)
    subs.write()
    report.unwritten = {str(path): reason for path, reason in subs.unwritten.items()}
    if device.type == "cuda":
        report.gpu_peak_gib = torch.cuda.max_memory_allocated(device) / 2**30
    return report


def say_fallback(console, task_id: str, reason: str) -> None:
    """One line: this task keeps its fallback attempts, and why."""
    console.print(f"[yellow]fallback[/] {escaped(f'task {task_label(task_id)}: {reason}')}", highlight=False, soft_wrap=True)


def infer_task_into(model, task: Task, adapted: Adapted, cfg: SolveConfig, canvas, dtype, subs: Submissions,
                    fallbacks: dict, report: SolveReport, console) -> None:
    """Answer one task with the model and rewrite the files; a failure costs this task only."""
    try:
        rankings = infer_task(model, task, adapted.versions[task.id], cfg, canvas, dtype)
    except Exception as e:  # one task's failure must not cost the others
        report.fallbacks[task.id] = f"inference failed: {one_line(e)}"
        say_fallback(console, task.id, report.fallbacks[task.id])
        return
    for rule, ranked in rankings.items():
        subs.set(task.id, rule, [two_attempts(r, fb) for r, fb in zip(ranked, fallbacks[task.id])])
    subs.write()
    report.solved_by_model += 1


def pick_micro_batch(model, cfg: SolveConfig, dtype, device, say) -> int | None:
    """The adaptation's micro-batch (see choose_micro_batch); if measuring fails, the whole
    batch, which the out-of-memory retry then shrinks as needed."""
    try:
        return choose_micro_batch(cfg.optim.micro_batch_size, model, cfg.optim.global_batch_size, dtype, device,
                                  cfg.run.gpu_memory_gb, say)
    except Exception as e:  # the measurement must never cost the solve
        say(f"could not measure the adaptation's memory ({one_line(e)}); starting with the whole batch")
        return None


def adapt_or_restore(model, tasks: list[Task], cfg: SolveConfig, dtype, deadline: float | None,
                     on_step, micro_batch: int | None = None, on_message=None) -> tuple[Adapted, str | None]:
    """Adapt model to tasks, or, if adaptation fails for any reason, put the network back as it
    was and return why: the tasks' rows exist either way, so inference can always run."""
    started = time.monotonic()
    saved = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    added = add_puzzles(model, tasks, cfg)
    try:
        return adapt(model, tasks, cfg, dtype, deadline, on_step, micro_batch=micro_batch, on_message=on_message,
                     added=added), None
    except Exception as e:  # out of GPU memory included: the unadapted network still answers
        reason = one_line(e)
    # Past the except block the exception is gone, and with it the failed step's tensors.
    restore(model, saved, added)
    return Adapted(versions_of(*added), 0, time.monotonic() - started), reason


def one_line(e: BaseException, limit: int = 200) -> str:
    """An exception as its type and the first line of its message, cut at limit characters
    (CUDA's out-of-memory message runs to several hundred)."""
    lines = str(e).strip().splitlines()
    text = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def restore(model, saved: dict[str, torch.Tensor], added: tuple[list, int]) -> None:
    """The state saved before add_puzzles, and the same new rows again (same ids, same mean)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    model.load_state_dict(saved)  # the puzzle table shrinks back to its saved rows
    puzzles, first_id = added
    assert model.grow_puzzles(len(puzzles)).start == first_id
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()


def inference_seconds(model, todo: list[Task], cfg: SolveConfig, canvas, dtype, n_versions: int) -> float:
    """Seconds the inference of every task will take: one batch timed on the largest canvas the
    tasks need, the other canvases scaled by their cost per query (tokens times the cost of a
    token, whose attention part grows with the sequence). The model is not changed."""
    from arcsolver.data.augment import Augmentation

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
    predict(model, tasks, timed, canvas, cfg.infer.batch_size, dtype)
    per_query = (time.monotonic() - begin) / n
    return per_query * n_versions * sum(cost(side) for side in sides) / cost(sides[largest])


def infer_task(model, task: Task, versions: list, cfg: SolveConfig, canvas, dtype) -> dict[str, list]:
    """Ranked candidates per test input of one task, under each ranking rule."""
    queries = queries_for(task, versions, cfg.infer.max_versions)
    need_lp = cfg.infer.ranking == "likelihood" or cfg.infer.write_all_rankings
    preds, log_probs = predict(model, {task.id: task}, queries, canvas, cfg.infer.batch_size, dtype, keep_log_probs=need_lp)
    voted = vote_queries(queries, preds)
    by_votes = [voted.get((task.id, i), []) for i in range(len(task.test))]
    out = {"votes": by_votes}
    if need_lp:
        out["likelihood"] = []
        for i, ranked in enumerate(by_votes):
            mine = [k for k, q in enumerate(queries) if q.test_index == i]
            out["likelihood"].append(
                rank_by_likelihood(ranked, [queries[k] for k in mine], [log_probs[k] for k in mine], canvas, cfg.infer.likelihood_candidates)
                if ranked else ranked
            )
    else:
        out["likelihood"] = by_votes
    return out


def visible_gpus() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


# The parent's pid, for a shard worker to notice that it has become an orphan.
PARENT_PID_ENV = "ARCSOLVER_PARENT_PID"
MERGE_EVERY_S = 2.0  # how often the parent merges the shards' files while they run
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def solve_sharded(challenges: Path, out: Path, checkpoint: str, recipe: str, overrides: list[str], workers: int,
                  cfg: SolveConfig, console, merge_every_s: float = MERGE_EVERY_S) -> None:
    """One process per GPU over disjoint task shards, merged into out (and its side files) every
    merge_every_s seconds while they run and once more at the end: a parent killed mid-run
    leaves every task finished so far answered. The workers die with the parent."""
    _, _, _, fallback = read_for_submission(challenges)
    base = submission_json(fallback)
    targets = merge_targets(Path(out), workers, cfg.infer.write_all_rankings)
    shard_files = [part for parts in targets.values() for part in parts]
    for part in shard_files:
        part.unlink(missing_ok=True)  # an earlier run's shard must not be merged into this one
    with reported_writes(out):  # before any work: nothing is lost by stopping here
        merge_shards(targets, base)
    procs = [start_worker(k, workers, challenges, Path(out), checkpoint, recipe, overrides, cfg) for k in range(workers)]
    seen: dict = {}
    warned = False
    while any(p.poll() is None for p in procs):
        wait_some(procs, merge_every_s)
        now = file_stamps(shard_files)
        if now != seen:
            try:
                merge_shards(targets, base)
            except OSError as e:  # a full disk may clear: the next round tries again, the end reports it
                if not warned:
                    console.print(f"[yellow]{escaped(f'{out}: cannot write ({write_problem(e)}); trying again')}",
                                  highlight=False, soft_wrap=True)
                warned = True
                continue
            seen = now
    with reported_writes(out, "the file there keeps its last complete merge"):
        problems = merge_shards(targets, base)[Path(out)]
    for problem in problems:
        console.print(f"[yellow]{escaped(problem)}; its tasks keep their fallbacks", highlight=False, soft_wrap=True)
    for k, p in enumerate(procs):
        if p.returncode:
            console.print(f"[yellow]shard {k} exited with {p.returncode}", highlight=False)


def shard_path(out: Path, k: int) -> Path:
    return side_path(out, f"shard{k}")


def merge_targets(out: Path, workers: int, write_all: bool) -> dict[Path, list[Path]]:
    """Each file the parent writes, and the shard files merged into it."""
    targets = {out: [shard_path(out, k) for k in range(workers)]}
    if write_all:
        for rule in RANKINGS:
            targets[side_path(out, rule)] = [side_path(shard_path(out, k), rule) for k in range(workers)]
    return targets


def merge_shards(targets: dict[Path, list[Path]], base: dict) -> dict[Path, list[str]]:
    """Write every target: base (the fallbacks) overlaid with its shard files' entries. Returns,
    per target, a line for each shard file that could not be read."""
    problems: dict[Path, list[str]] = {}
    for target, parts in targets.items():
        merged, problems[target] = dict(base), []
        for part in parts:
            try:
                entries = json.loads(part.read_text())
            except (OSError, json.JSONDecodeError) as e:
                problems[target].append(f"{part}: not readable ({e})")
                continue
            if isinstance(entries, dict):
                merged.update({tid: v for tid, v in entries.items() if tid in base})
        write_submission(target, merged)
    return problems


def file_stamps(paths: list[Path]) -> dict[Path, tuple]:
    """What changes when a file is rewritten (atomically: a new inode), per existing file."""
    stamps = {}
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            continue
        stamps[path] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return stamps


def wait_some(procs: list[subprocess.Popen], seconds: float) -> None:
    """Wait until every process has ended or the seconds have passed, whichever comes first."""
    end = time.monotonic() + seconds
    for p in procs:
        try:
            p.wait(timeout=max(end - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            return


def start_worker(k: int, workers: int, challenges: Path, out: Path, checkpoint: str, recipe: str,
                 overrides: list[str], cfg: SolveConfig) -> subprocess.Popen:
    """`arcsolver solve` over shard k, writing its own files beside out, tied to this process."""
    env = {**os.environ, PARENT_PID_ENV: str(os.getpid())}
    if visible_gpus():
        env["CUDA_VISIBLE_DEVICES"] = str(k)
    cmd = [sys.executable, "-m", "arcsolver", "solve", str(challenges), "--out", str(shard_path(out, k)),
           "--checkpoint", str(checkpoint), "--recipe", recipe, "--shard", f"{k}/{workers}", "--workers", "1",
           *[x for s in overrides for x in ("--set", s)]]
    if cfg.run.time_budget_s:
        cmd += ["--time-budget", str(cfg.run.time_budget_s)]
    return subprocess.Popen(cmd, env=env, preexec_fn=parent_death_signal())


def parent_death_signal():
    """A preexec_fn by which Linux sends the child SIGTERM when this process dies; None elsewhere
    (there exit_with_parent's watch in the worker is all there is)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        # Looked up here, in the parent: between fork and exec the child should do no more than call it.
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return arm


def exit_with_parent() -> None:
    """In a shard worker, end this process with SIGTERM once the parent that started it is gone
    (it is then adopted by another process): the portable backstop of parent_death_signal."""
    parent = os.environ.get(PARENT_PID_ENV)
    if not parent or not parent.isdigit():
        return

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
