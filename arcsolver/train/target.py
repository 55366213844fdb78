"""Time to target: a run that stops when its held-out loss first reaches run.target_heldout_loss.

A speedrun's one figure is how soon a run gets good: the FLOPs, steps and seconds at which the
held-out loss first reaches a fixed target. Every run.target_every steps the model (its EMA
weights where it keeps them) answers one fixed sample of the held-out test inputs, the same
run.target_queries queries at every check (one version each, spread over the tasks, at the
model's own depth, no rollouts, no vote), and its loss is the answers' cross-entropy, as the
held-out evaluation's. A check is cheap but not free: its FLOPs are added to the run's count
(so to its run.flops budget) and its seconds pass on the run's clock, as a user's would.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch

from arcsolver.data.stream import Puzzle
from arcsolver.data.task import Task
from arcsolver.engine.distributed import sum_over_processes
from arcsolver.engine.flops import flop_counter
from arcsolver.evaluation.inference import Query, predict_with_answer_loss
from arcsolver.train.heldout import heldout_queries
from arcsolver.train.run import Run


def target_sample(run: Run, puzzles: list[Puzzle], heldout: list[Task]) -> list[Query]:
    """The check's fixed queries: run.target_queries of the held-out test inputs' first versions,
    evenly spaced over the tasks (all of them where there are fewer)."""
    queries = [q for q in heldout_queries(run.cfg, puzzles, heldout, max_versions=1) if q.rollout == 0]
    n = min(run.cfg.run.target_queries, len(queries))
    return queries[:: max(len(queries) // max(n, 1), 1)][:n]


@dataclass
class TargetCheck:
    """The held-out loss of a fixed sample, checked every run.target_every steps, and where it
    first reached run.target_heldout_loss."""

    run: Run
    tasks: dict[str, Task]
    sample: list[Query]
    reached_at: int | None = None

    @classmethod
    def of(cls, run: Run, puzzles: list[Puzzle], heldout: list[Task]) -> TargetCheck | None:
        """The run's check, or None where it sets no target or has no held-out task to check on."""
        if run.cfg.run.target_heldout_loss is None or not heldout:
            return None
        return cls(run, {t.id: t for t in heldout}, target_sample(run, puzzles, heldout))

    def due(self, step: int) -> bool:
        return self.reached_at is None and step % self.run.cfg.run.target_every == 0

    def loss(self) -> tuple[float, int]:
        """(the sample's held-out loss, the FLOPs its forward passes took, over all processes).
        The model is left in the mode it was in, and no random stream moves."""
        run = self.run
        model, d = run.model, run.d
        mine = self.sample[d.rank :: d.world_size]
        was_training = model.training
        model.eval()
        counter = flop_counter()
        forked = [run.device] if run.device.type == "cuda" else []
        try:
            with (
                torch.random.fork_rng(devices=forked),
                run.ema.applied(model) if run.ema is not None else contextlib.nullcontext(),
                counter,
            ):
                _, answer = predict_with_answer_loss(
                    model,
                    self.tasks,
                    mine,
                    run.cfg.canvas_sides() or run.cfg.model.canvas,
                    run.cfg.eval.batch_size,
                    run.dtype,
                )
        finally:
            model.train(was_training)
        nll, cells, flops = sum_over_processes(
            [answer.nll, answer.cells, float(counter.get_total_flops())], d, run.device
        )
        return (nll / cells if cells else math.nan), int(flops)

    def reached(self, loss: float) -> bool:
        return math.isfinite(loss) and loss <= self.run.cfg.run.target_heldout_loss
