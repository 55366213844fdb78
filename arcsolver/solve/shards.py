"""`arcsolver solve --workers N`: one worker process per GPU over disjoint shards of the tasks,
each writing its own files, merged by the parent into the submission (and its side files) while
they run. The workers die with the parent, so a killed solve leaves no orphan on the GPUs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from arcsolver import STARTED
from arcsolver.atomic import parent_death_signal, reported_writes, write_problem
from arcsolver.config import SolveConfig
from arcsolver.console import one_line as escaped
from arcsolver.environment import env_integer
from arcsolver.solve.budget import budget_left
from arcsolver.solve.submission import read_for_submission, submission_json, write_submission
from arcsolver.solve.writer import RANKINGS, checkpoint_path, fallback_sources, side_path

# The parent's pid, for a shard worker to notice that it has become an orphan.
PARENT_PID_ENV = "ARCSOLVER_PARENT_PID"
MERGE_EVERY_S = 2.0  # how often the parent merges the shards' files while they run


def visible_gpus() -> int:
    """The CUDA devices this process sees (0 without CUDA): one worker each with --workers auto."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def solve_sharded(
    challenges: Path,
    out: Path,
    checkpoints: list[str],
    recipe: str,
    overrides: list[str],
    workers: int,
    cfg: SolveConfig,
    console,
    merge_every_s: float = MERGE_EVERY_S,
) -> ShardsReport:
    """One process per GPU over disjoint task shards, merged into out (and its side files) every
    merge_every_s seconds while they run and once more at the end: a parent killed mid-run
    leaves every task finished so far answered. The workers die with the parent. Returns what
    the workers reported: a worker that failed counts as answering none of its tasks."""
    _, tasks, _, fallback = read_for_submission(challenges)
    base = submission_json(fallback)
    # The sources record starts, as the solve's own does, from every task's fallback sources.
    sources = {tid: fallback_sources(tasks[tid] if tid in tasks else None, fb) for tid, fb in fallback.items()}
    bases = {side_path(Path(out), "sources"): sources}
    workers = capped_workers(workers, len(base), console)
    targets = merge_targets(Path(out), workers, cfg.infer.write_all_rankings, len(checkpoints))
    shard_files = [part for parts in targets.values() for part in parts]
    for part in shard_files + [report_path(shard_path(Path(out), k)) for k in range(workers)]:
        part.unlink(missing_ok=True)  # an earlier run's shard must not be merged into this one
    with reported_writes(out):  # before any work: nothing is lost by stopping here
        merge_shards(targets, base, bases)
    procs = [
        start_worker(k, workers, challenges, Path(out), checkpoints, recipe, overrides, cfg) for k in range(workers)
    ]
    seen: dict = {}
    warned = False
    while any(p.poll() is None for p in procs):
        wait_some(procs, merge_every_s)
        now = file_stamps(shard_files)
        if now != seen:
            try:
                merge_shards(targets, base, bases)
            except OSError as e:  # a full disk may clear: the next round tries again, the end reports it
                if not warned:
                    console.print(
                        f"[yellow]{escaped(f'{out}: cannot write ({write_problem(e)}); trying again')}",
                        highlight=False,
                        soft_wrap=True,
                    )
                warned = True
                continue
            seen = now
    with reported_writes(out, "the file there keeps its last complete merge"):
        problems = merge_shards(targets, base, bases)[Path(out)]
    for problem in problems:
        console.print(f"[yellow]{escaped(problem)}; its tasks keep their fallbacks", highlight=False, soft_wrap=True)
    report = ShardsReport(tasks=len(base), workers=workers)
    for k, p in enumerate(procs):
        if p.returncode:
            console.print(f"[yellow]shard {k} exited with {p.returncode}", highlight=False)
            report.failed.append(k)
            continue
        try:
            counts = json.loads(report_path(shard_path(Path(out), k)).read_text())
            report.solved_by_model += int(counts["solved_by_model"])
        except (OSError, ValueError, KeyError, TypeError):
            report.failed.append(k)
        report_path(shard_path(Path(out), k)).unlink(missing_ok=True)
    return report


@dataclass
class ShardsReport:
    """What a sharded solve's workers did: its tasks, those the model answered, the shards that failed."""

    tasks: int
    workers: int
    solved_by_model: int = 0
    failed: list[int] = field(default_factory=list)

    def line(self, out: Path) -> str:
        """The solve's last line: what the merged file holds, and whether the model answered anything."""
        shards = f"merged from {self.workers} shards" + (
            f", {len(self.failed)} of which failed (errors above)" if self.failed else ""
        )
        if self.tasks and not self.solved_by_model:
            return f"wrote {out} ({shards}): {self.tasks} tasks, fallbacks only: the model answered none of them"
        return f"wrote {out} ({shards}): {self.tasks} tasks, {self.solved_by_model} from the model"


def report_path(shard_out: Path) -> Path:
    """Where a worker leaves its counts for the parent: submission.shard0.json -> submission.shard0.report.json."""
    return side_path(shard_out, "report")


def capped_workers(workers: int, tasks: int, console) -> int:
    """No more workers than tasks (each loads the model for nothing otherwise), with a line when
    they outnumber the GPUs (or, without one, the CPU cores) they will share."""
    if workers > max(tasks, 1):
        console.print(f"{workers} workers for {tasks} tasks: starting {max(tasks, 1)}", highlight=False)
        workers = max(tasks, 1)
    gpus = visible_gpus()
    room, what = (gpus, "GPUs") if gpus else (os.cpu_count() or 1, "CPU cores")
    if workers > room:
        console.print(
            f"[yellow]{workers} workers share {room} {what}: each runs slower; --workers {room} is usually faster",
            highlight=False,
        )
    return workers


def shard_path(out: Path, k: int) -> Path:
    """Where worker k writes its submission: submission.json -> submission.shard<k>.json."""
    return side_path(out, f"shard{k}")


def merge_targets(out: Path, workers: int, write_all: bool, checkpoints: int = 1) -> dict[Path, list[Path]]:
    """Each file the parent writes, and the shard files merged into it (an ensemble's per
    checkpoint too)."""
    targets = {out: [shard_path(out, k) for k in range(workers)]}
    if write_all:
        for rule in RANKINGS:
            targets[side_path(out, rule)] = [side_path(shard_path(out, k), rule) for k in range(workers)]
    if write_all:
        targets[side_path(out, "sources")] = [side_path(shard_path(out, k), "sources") for k in range(workers)]
    if checkpoints > 1:
        for c in range(checkpoints):
            targets[checkpoint_path(out, c)] = [checkpoint_path(shard_path(out, k), c) for k in range(workers)]
    return targets


def merge_shards(targets: dict[Path, list[Path]], base: dict, bases: dict | None = None) -> dict[Path, list[str]]:
    """Write every target: base (the fallbacks; bases[target] where given) overlaid with its shard
    files' entries. Returns, per target, a line for each shard file that could not be read."""
    problems: dict[Path, list[str]] = {}
    for target, parts in targets.items():
        merged, problems[target] = dict((bases or {}).get(target, base)), []
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


def start_worker(
    k: int,
    workers: int,
    challenges: Path,
    out: Path,
    checkpoints: list[str],
    recipe: str,
    overrides: list[str],
    cfg: SolveConfig,
) -> subprocess.Popen:
    """The worker of shard k (arcsolver/solve/worker.py), writing its own files beside out, tied to
    this process."""
    from arcsolver.solve.worker import worker_command  # here: worker.py imports this module

    # The worker runs without the current directory on its path: it finds the very arcsolver
    # this process runs, however that was found.
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, PARENT_PID_ENV: str(os.getpid()), "PYTHONPATH": path}
    if visible_gpus():
        env["CUDA_VISIBLE_DEVICES"] = str(k)
    cmd = worker_command(
        k,
        workers,
        challenges,
        shard_path(out, k),
        [str(c) for c in checkpoints],
        recipe,
        overrides,
        budget_left(cfg, STARTED),
    )
    return subprocess.Popen(cmd, env=env, preexec_fn=parent_death_signal())


def exit_with_parent() -> None:
    """In a shard worker, end this process with SIGTERM once the parent that started it is gone
    (it is then adopted by another process): the portable backstop of parent_death_signal."""
    parent = env_integer(PARENT_PID_ENV, None, 1, 2**31 - 1, "a process id")
    if parent is None:
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
