"""The submission written as tasks finish: every task's two attempts under each ranking rule,
the main file and, on request, a side file per rule, rewritten whole after every change."""

from __future__ import annotations

from pathlib import Path

from arcsolver.atomic import write_problem
from arcsolver.solve.submission import submission_json, write_submission

RANKINGS = ("votes", "likelihood")


def side_path(out: Path, tag: str) -> Path:
    """The file beside out tagged tag: submission.json -> submission.<tag>.json."""
    return out.with_name(f"{out.stem}.{tag}{out.suffix}")


class Submissions:
    """The attempts of every task under each ranking rule, written after every change.

    A write that fails (a full disk) leaves the file as its last complete write; it is reported
    once through on_problem and tried again at the next write. `unwritten` holds the files whose
    latest write failed, with why.
    """

    def __init__(
        self, out: Path, order: list[str], fallbacks: dict[str, list], main: str, write_all: bool, on_problem=None
    ):
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
                self.on_problem(
                    f"{path}: cannot write ({write_problem(e)}); the file there keeps its last complete "
                    "write, and each later task tries again"
                )
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
