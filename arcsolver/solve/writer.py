"""The submission written as tasks finish: every task's two attempts under each ranking rule,
the main file and, on request, a side file per rule, each rewritten whole (and atomically) at
most every WRITE_EVERY_S seconds while tasks finish, and once more at the end. A write costs
time in the number of tasks, so writing after every task would cost time in its square."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from arcsolver.atomic import write_problem
from arcsolver.solve.submission import ATTEMPT_KEYS, attempts_entry, write_submission

RANKINGS = ("votes", "likelihood")
WRITE_EVERY_S = 5.0  # the most answers a kill can lose: those of the last few seconds
WRITE_SHARE_INVERSE = 10  # and writing takes at most about a tenth of the time


def side_path(out: Path, tag: str) -> Path:
    """The file beside out tagged tag: submission.json -> submission.<tag>.json."""
    return out.with_name(f"{out.stem}.{tag}{out.suffix}")


def checkpoint_path(out: Path, index: int) -> Path:
    """Where an ensemble's checkpoint index writes its own attempts: submission.ckpt-<index>.json."""
    return side_path(out, f"ckpt-{index}")


class Submissions:
    """The attempts of every task under each ranking rule, written by write() (now) or
    write_due() (if every_s seconds have passed since the last write).

    A write that fails (a full disk) leaves the file as its last complete write; it is reported
    once through on_problem and tried again at the next write. `unwritten` holds the files whose
    latest write failed, with why.
    """

    def __init__(
        self,
        out: Path,
        order: list[str],
        fallbacks: dict[str, list],
        main: str,
        write_all: bool,
        on_problem=None,
        every_s: float | None = None,
    ):
        self.out, self.order, self.main, self.write_all = out, order, main, write_all
        # Each task's entries as the file holds them, checked and converted once (not at every
        # write: a write of 100,000 tasks would check 400,000 grids again); a fallback's are
        # shared by every rule.
        fallback_json = {tid: [checked_entry(a1, a2) for a1, a2 in attempts] for tid, attempts in fallbacks.items()}
        self.entries = {rule: dict(fallback_json) for rule in RANKINGS}
        # Per rule, task id -> per test input where its attempts came from (attempt_sources);
        # written beside the files as <out>.sources.json for the main rule, where given.
        self.sources: dict[str, dict] | None = None
        self.on_problem = on_problem or (lambda text: None)
        self.unwritten: dict[Path, str] = {}
        self.every_s = WRITE_EVERY_S if every_s is None else every_s
        self.last_write, self.last_took = -float("inf"), 0.0
        self.writes = 0  # how many times the files were written, for the record

    def set(self, task_id: str, rule: str, attempts: list, sources: list | None = None) -> None:
        """Give task_id these (attempt_1, attempt_2) per test input under rule, and where they
        came from (attempt_sources) where the sources record is kept."""
        self.entries[rule][task_id] = [attempts_entry(a1, a2) for a1, a2 in attempts]
        if sources is not None and self.sources is not None:
            self.sources[rule][task_id] = sources

    def keep_sources(self, fallback_sources: dict[str, list]) -> None:
        """Write the sources record too, starting from every task's fallback sources."""
        self.sources = {rule: dict(fallback_sources) for rule in RANKINGS}

    def source_counts(self) -> tuple[int, int]:
        """(tasks the model gave an attempt of, tasks whose every attempt is a fallback), counted
        from the sources record of the main rule: what <out>.sources.json says (keep_sources first)."""
        assert self.sources is not None, "the sources record is not kept"
        by_model = sum(from_model(self.sources[self.main][tid]) for tid in self.order)
        return by_model, len(self.order) - by_model

    def write_due(self) -> None:
        """write(), if every_s seconds have passed since the last one ended, and at least
        WRITE_SHARE_INVERSE times as long as the last one took: a write of a large file (seconds
        at 20,000 tasks) then takes a bounded share of the time, whatever the number of tasks."""
        if time.monotonic() - self.last_write >= max(self.every_s, WRITE_SHARE_INVERSE * self.last_took):
            self.write()

    def write(self) -> None:
        """The main file under the chosen rule; with write_all also <out>.<rule>.json per rule."""
        started = time.monotonic()
        self._write_all()
        self.last_write, self.writes = time.monotonic(), self.writes + 1
        self.last_took = self.last_write - started

    def _write_all(self) -> None:
        for rule in RANKINGS:
            obj = {tid: self.entries[rule][tid] for tid in self.order}
            if rule == self.main:
                self._write(self.out, obj)
            if self.write_all:
                self._write(side_path(self.out, rule), obj)
        if self.write_all and self.sources is not None:
            self._write(side_path(self.out, "sources"), {tid: self.sources[self.main][tid] for tid in self.order})

    def _write(self, path: Path, obj: dict) -> None:
        try:
            write_submission(path, obj)
        except OSError as e:
            if path not in self.unwritten:
                self.on_problem(
                    f"{path}: cannot write ({write_problem(e)}); the file there keeps its last complete "
                    "write, and each later write tries again"
                )
            self.unwritten[path] = write_problem(e)
        else:
            self.unwritten.pop(path, None)


def checked_entry(attempt_1, attempt_2) -> dict:
    """attempts_entry, but for grids that are arrays already (the fallbacks: their checks were
    the task's own, as it was parsed) only their conversion."""
    if isinstance(attempt_1, np.ndarray) and isinstance(attempt_2, np.ndarray):
        return {"attempt_1": attempt_1.tolist(), "attempt_2": attempt_2.tolist()}
    return attempts_entry(attempt_1, attempt_2)


def two_attempts(ranked: list, fallback: tuple) -> tuple:
    """The top two distinct grids, topped up from the fallback when the vote has fewer."""
    return tuple(grid for grid, _ in chosen_attempts(ranked, fallback))


def chosen_attempts(ranked: list, fallback: tuple) -> list[tuple]:
    """two_attempts' grids, each with where it came from: ("model", its candidate) or
    ("fallback", its index in fallback)."""
    chosen: list[tuple] = [(c.grid, ("model", c)) for c in ranked[:2]]
    for k, g in enumerate(fallback):
        if len(chosen) >= 2:
            break
        if not any(g.shape == h.shape and (g == h).all() for h, _ in chosen):
            chosen.append((g, ("fallback", k)))
    while len(chosen) < 2:
        chosen.append(chosen[0])
    return chosen


def attempt_sources(ranked: list, fallback: tuple, fallback_names: tuple) -> dict:
    """Where each of a test input's two attempts came from, for the sources record: the model's
    candidate (its votes, and how many of them each checkpoint and the noisy rollouts cast), or
    the fallback named in fallback_names."""
    sources = {}
    for key, (_, (kind, what)) in zip(ATTEMPT_KEYS, chosen_attempts(ranked, fallback)):
        if kind == "fallback":
            sources[key] = {"source": f"fallback: {fallback_names[what]}"}
        else:
            sources[key] = {"source": "model", "votes": what.votes, **(what.origin or {})}
    return sources


def from_model(task_sources: list[dict]) -> bool:
    """Whether the model gave any attempt of a task, by its sources record (attempt_sources)."""
    return any(attempt["source"] == "model" for test in task_sources for attempt in test.values())


def fallback_names(task, fallback: list) -> list[tuple[str, str]]:
    """Per test input, what its two fallback attempts are (submission.fallback_attempts makes them)."""
    if task is None:
        return [("a task that did not parse", "a task that did not parse")] * len(fallback)
    names = []
    for pair, (_, second) in zip(task.test, fallback):
        same = second.shape == pair.input.shape and bool((second == pair.input).all())
        names.append(
            ("the test input", "the test input" if same else "the demonstrations' usual output shape and colour")
        )
    return names


def fallback_sources(task, fallback: list) -> list[dict]:
    """The sources record of a task that keeps its fallback attempts."""
    return [
        {key: {"source": f"fallback: {name}"} for key, name in zip(ATTEMPT_KEYS, names)}
        for names in fallback_names(task, fallback)
    ]
