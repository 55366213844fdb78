"""The runs `arcsolver compare` reads: each run's settings, its held-out evaluations and where it
reached its target, and the groups of runs that differ only in their seed."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arcsolver.errors import DataError
from arcsolver.reader import read_json
from arcsolver.recipes import RESUME_MAY_CHANGE, RESUME_MAY_CHANGE_SECTIONS
from arcsolver.report.curves import read_metrics

# (key in a held-out evaluation record, name in the table, True where higher is better)
METRICS = {
    "loss": ("heldout_loss", "held-out loss", False),
    "cell_accuracy": ("heldout_cell_accuracy", "cell accuracy", True),
    "pass@1": ("heldout_pass@1", "pass@1", True),
    "pass@2": ("heldout_pass@2", "pass@2", True),
}
# Settings that do not make runs different experiments: the seed, the run's length, logging,
# checkpoints, evaluation schedule and use of the hardware (what --resume may change).
NOT_COMPARED = {"run.seed", "run.device", *RESUME_MAY_CHANGE}
NOT_COMPARED_SECTIONS = RESUME_MAY_CHANGE_SECTIONS
# Settings that decide what is trained on and what is scored: runs must share them.
SAME_DATA = ("data.train_sets", "data.heldout_sets", "data.max_side", "data.max_tasks", "eval.max_versions")
# The fewest distinct seeds of a group for a verdict: one seed has no spread to judge a difference by.
MIN_SEEDS = 2
# Time to target, from the record of the check that first reached run.target_heldout_loss:
# (key in that record, name, True where higher is better).
TARGET_METRICS = {
    "flops_to_target": ("flops", "FLOPs to target", False),
    "steps_to_target": ("step", "steps to target", False),
}


@dataclass
class RunResult:
    """One run: its directory, settings (section.key -> value), and the evaluation compared."""

    dir: Path
    settings: dict[str, Any]
    evaluations: list[dict]  # held-out evaluation records, by step
    step_flops: float = 0.0  # the most FLOPs of one step, from its training records
    chosen: dict | None = None  # the evaluation compared
    target: dict | None = None  # the record of the check that first reached the target
    budget_ended: bool = False  # its run.flops budget ended it (a record says so)

    def value(self, metric: str) -> float | None:
        if metric in TARGET_METRICS:
            record, key = self.target, TARGET_METRICS[metric][0]
        else:
            record, key = self.chosen, METRICS[metric][0]
        value = None if record is None else record.get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def unreached(self) -> bool:
        """Whether it looked for a target and never reached it."""
        return self.settings.get("run.target_heldout_loss") is not None and self.target is None

    def marks(self) -> list[tuple[float, dict]]:
        """(compute, evaluation) of its evaluations with a FLOPs count. The final evaluation of a
        run that stopped at its budget (run.flops, less than one more step away) counts at the
        budget: runs of one budget stop a little under it, each at its own last step."""
        counted = [(float(e["flops"]), e) for e in self.evaluations if _number(e.get("flops"))]
        budget = self.settings.get("run.flops")
        ended = self.budget_ended or (_number(budget) and counted and counted[-1][0] > budget - self.step_flops)
        if counted and _number(budget) and ended:
            counted[-1] = (max(counted[-1][0], float(budget)), counted[-1][1])
        return counted

    def reached(self) -> float:
        """The most compute of its evaluations (-1 where none has a FLOPs count)."""
        return max((mark for mark, _ in self.marks()), default=-1)


@dataclass
class Group:
    """Runs of one setting, differing only in their seed; its label names how it differs from the first group."""

    label: str
    runs: list[RunResult]

    def values(self, metric: str) -> list[float]:
        """The metric of its runs, where it is finite (NaN or inf measures nothing)."""
        return [v for r in self.runs if (v := r.value(metric)) is not None and math.isfinite(v)]

    def unreached(self, metric: str) -> int:
        """How many of its runs never reached the target (0 for a held-out metric)."""
        return sum(1 for r in self.runs if r.unreached()) if metric in TARGET_METRICS else 0

    def non_finite(self, metric: str) -> int:
        """How many of its runs have the metric, but not finite."""
        return sum(1 for r in self.runs if (v := r.value(metric)) is not None and not math.isfinite(v))

    def seeds(self, metric: str) -> int:
        """How many distinct seeds its finite values of metric come from."""
        finite = [r for r in self.runs if (v := r.value(metric)) is not None and math.isfinite(v)]
        return len({json.dumps(r.settings.get("run.seed")) for r in finite})

    def mean(self, metric: str) -> float | None:
        values = self.values(metric)
        return sum(values) / len(values) if values else None

    def spread(self, metric: str) -> float | None:
        """max - min over the seeds (0 with one seed; None without a value)."""
        values = self.values(metric)
        return max(values) - min(values) if values else None


def flat_settings(config: dict, prefix: str = "") -> dict[str, Any]:
    """A config.json as section.key -> value."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat_settings(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def read_run(run_dir) -> RunResult:
    """A run's settings and held-out evaluations; DataError names what is missing."""
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not os.path.lexists(path):
        raise DataError(f"{path}: missing; give run directories that `arcsolver pretrain` wrote")
    config = read_json(path)  # the checked reader: a pipe or a device is refused by its stat, never opened
    if not isinstance(config, dict):
        raise DataError(f"{path}: not an object of settings; give a run directory with its config.json")
    by_step, training, target, budget_ended = {}, {}, None, False
    for record in read_metrics(run_dir / "metrics.jsonl"):
        if record.get("target_reached") is True:
            target = record  # a resumed run may log it again: the later record
        budget_ended = budget_ended or "flops_budget_reached" in record
        if any(key in record for key, _, _ in METRICS.values()):
            by_step[record["step"]] = record  # a resumed run may log a step twice: the later record
        elif _number(record.get("flops")):
            training[record["step"]] = float(record["flops"])
    if not by_step:
        raise DataError(
            f"{run_dir / 'metrics.jsonl'}: holds no held-out evaluation; give runs with held-out tasks "
            "(data.heldout_sets), evaluated at least at their end"
        )
    steps = sorted(training)
    step_flops = max(((training[b] - training[a]) / (b - a) for a, b in zip(steps, steps[1:]) if b > a), default=0.0)
    evaluations = [by_step[s] for s in sorted(by_step)]
    return RunResult(run_dir, flat_settings(config), evaluations, step_flops, target=target, budget_ended=budget_ended)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def compared(key: str) -> bool:
    return key not in NOT_COMPARED and not key.startswith(NOT_COMPARED_SECTIONS)


def shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
