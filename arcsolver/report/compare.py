"""`arcsolver compare RUN...`: pretraining runs side by side, at equal compute.

Runs whose settings differ only in their seed (and in their length, logging and use of the
hardware) form a group; a run is identified by its resolved directory, so one named twice (or
through a link) counts once. For each group: the held-out loss, cell accuracy, pass@1 and pass@2
of its runs' evaluations, as the mean and the spread between seeds (max - min). Against the first
group, each other group gets a verdict on one metric: better or worse when the difference of
the means is beyond the larger of the two groups' spreads, within the spread otherwise. A verdict
needs MIN_SEEDS distinct seeds in both groups and a finite metric in every run of them; short of
that the line says what it lacks. Runs are compared at equal training FLOPs by default: each
run's last evaluation at or below the least FLOPs that every run reached. Runs whose data or
held-out tasks differ are refused.

No wall-time ratio is printed: runs trained one after another on a shared machine did not see
the same machine (see benchmarks/interleave.py for ratios that hold).
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arcsolver.atomic import atomic_write_bytes
from arcsolver.errors import DataError
from arcsolver.inputs import distinct, read_json
from arcsolver.recipes import RESUME_MAY_CHANGE, RESUME_MAY_CHANGE_SECTIONS
from arcsolver.report.curves import _matplotlib, read_metrics

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


@dataclass
class RunResult:
    """One run: its directory, settings (section.key -> value), and the evaluation compared."""

    dir: Path
    settings: dict[str, Any]
    evaluations: list[dict]  # held-out evaluation records, by step
    step_flops: float = 0.0  # the most FLOPs of one step, from its training records
    chosen: dict | None = None  # the evaluation compared

    def value(self, metric: str) -> float | None:
        key = METRICS[metric][0]
        value = None if self.chosen is None else self.chosen.get(key)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def marks(self) -> list[tuple[float, dict]]:
        """(compute, evaluation) of its evaluations with a FLOPs count. The final evaluation of a
        run that stopped at its budget (run.flops, less than one more step away) counts at the
        budget: runs of one budget stop a little under it, each at its own last step."""
        counted = [(float(e["flops"]), e) for e in self.evaluations if _number(e.get("flops"))]
        budget = self.settings.get("run.flops")
        if counted and _number(budget) and counted[-1][0] > budget - self.step_flops:
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
    by_step, training = {}, {}
    for record in read_metrics(run_dir / "metrics.jsonl"):
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
    return RunResult(run_dir, flat_settings(config), [by_step[s] for s in sorted(by_step)], step_flops)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def compared(key: str) -> bool:
    return key not in NOT_COMPARED and not key.startswith(NOT_COMPARED_SECTIONS)


def shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def check_same_data(runs: list[RunResult]) -> None:
    """DataError unless every run trained on the same data and scored the same held-out tasks."""
    first = runs[0]
    for run in runs[1:]:
        differ = [
            f"{k} {shown(run.settings.get(k))} against {shown(first.settings.get(k))}"
            for k in SAME_DATA
            if run.settings.get(k) != first.settings.get(k)
        ]
        tasks = run.evaluations[-1].get("heldout_tasks"), first.evaluations[-1].get("heldout_tasks")
        if not differ and tasks[0] != tasks[1]:
            differ.append(f"{tasks[0]} held-out tasks scored against {tasks[1]}")
        if differ:
            raise DataError(
                f"{run.dir}: its data or held-out tasks differ from those of {first.dir} ({'; '.join(differ)}); "
                "compare runs of the same data and held-out tasks"
            )


def group_runs(runs: list[RunResult]) -> list[Group]:
    """Runs grouped by their compared settings, in the order of their first run; each labelled
    by the settings where it differs from the first group ("baseline" for the first)."""
    groups: dict[tuple, list[RunResult]] = {}
    for run in runs:
        key = tuple(sorted((k, json.dumps(v)) for k, v in run.settings.items() if compared(k)))
        groups.setdefault(key, []).append(run)
    first = next(iter(groups.values()))[0].settings
    out = []
    for members in groups.values():
        settings = members[0].settings
        keys = sorted(k for k in set(settings) | set(first) if compared(k) and settings.get(k) != first.get(k))
        label = ", ".join(f"{k}={shown(settings.get(k))}" for k in keys) or "baseline"
        out.append(Group(label, members))
    return out


def choose_evaluations(runs: list[RunResult], at: str) -> str:
    """Set each run's compared evaluation; return what was chosen, in words.

    at="flops": the last evaluation at or below the least training FLOPs every run reached (a
    run's final evaluation counting at its budget where it stopped at run.flops: see
    RunResult.marks); at="last": each run's last evaluation.
    """
    if at == "last":
        for run in runs:
            run.chosen = run.evaluations[-1]
        return "each run's last held-out evaluation"
    for run in runs:
        if run.reached() < 0:
            raise DataError(
                f"{run.dir / 'metrics.jsonl'}: its evaluations carry no training FLOPs (a run of an earlier "
                "arcsolver); compare with --at last"
            )
    common = min(run.reached() for run in runs)
    for run in runs:
        within = [e for mark, e in run.marks() if mark <= common]
        if not within:
            raise DataError(
                f"{run.dir}: no held-out evaluation at or below {common:.3g} FLOPs, the least every run reached; "
                "evaluate more often (eval.every) or compare with --at last"
            )
        run.chosen = within[-1]
    return f"equal compute: each run's last held-out evaluation at or below {common:.3g} training FLOPs (the least every run reached)"


def verdict(base: Group, group: Group, metric: str) -> str:
    """`LABEL: METRIC +-DIFF (seed spread S): better | worse | within the spread`.

    Better or worse when the difference of the means is beyond the larger of the two groups'
    spreads (max - min over seeds). No verdict where a run's metric is not finite, or where a
    group has fewer than MIN_SEEDS distinct seeds: the line says how many it lacks."""
    _, name, higher_is_better = METRICS[metric]
    groups = (("the first group", base), ("this group", group))
    for which, g in groups:
        if bad := g.non_finite(metric):
            return f"{group.label}: {name} not finite in {bad} of the {len(g.runs)} runs of {which}: no verdict"
    a, b = base.mean(metric), group.mean(metric)
    if a is None or b is None:
        return f"{group.label}: {name} missing in {'the first group' if a is None else 'this group'}: no verdict"
    diff = round(b - a, 12) + 0.0  # no -0.0000 from rounding noise
    lacking = [(which, MIN_SEEDS - g.seeds(metric)) for which, g in groups if g.seeds(metric) < MIN_SEEDS]
    if lacking:
        lacks = " and ".join(f"{which} lacks {n} seed{'s' if n > 1 else ''}" for which, n in lacking)
        return f"{group.label}: {name} {diff:+.4f}: no verdict: {lacks} (a verdict needs {MIN_SEEDS} distinct seeds in each)"
    spread = max(base.spread(metric) or 0.0, group.spread(metric) or 0.0)
    head = f"{group.label}: {name} {diff:+.4f} (seed spread {spread:.4f})"
    if abs(diff) <= spread:
        return f"{head}: within the spread"
    return f"{head}: {'better' if (diff > 0) == higher_is_better else 'worse'}"


def table_lines(groups: list[Group]) -> list[str]:
    """A line per group: its runs and each metric's mean (spread)."""
    width = max(len("group"), *(len(g.label) for g in groups))
    header = f"{'group':<{width}}  runs  " + "  ".join(f"{name:>20}" for _, name, _ in METRICS.values())
    lines = [header]
    for g in groups:
        cells = []
        for metric in METRICS:
            mean, spread = g.mean(metric), g.spread(metric)
            if bad := g.non_finite(metric):
                cells.append(f"{f'not finite ({bad} of {len(g.runs)})':>20}")
            elif mean is None:
                cells.append(f"{'-':>20}")
            else:
                within = f"{spread:.4f}" if g.seeds(metric) >= MIN_SEEDS else "1 seed"
                cells.append(f"{f'{mean:.4f} ({within})':>20}")
        lines.append(f"{g.label:<{width}}  {len(g.runs):>4}  " + "  ".join(cells))
    return lines


def compare_runs(run_dirs: Sequence, at: str = "flops", metric: str = "loss") -> tuple[list[Group], list[str]]:
    """Read, check, group and compare runs, each once (by its resolved directory): (groups, the
    lines to print)."""
    given = list(run_dirs)
    run_dirs = distinct(given)
    if len(run_dirs) < 2:
        again = "; the runs given are one directory (named again or through a link)" if len(given) > 1 else ""
        raise DataError(f"{given[0] if given else 'RUN'}: compare needs two runs or more{again}")
    runs = [read_run(d) for d in run_dirs]
    check_same_data(runs)
    where = choose_evaluations(runs, at)
    groups = group_runs(runs)
    lines = []
    if len(given) > len(run_dirs):
        lines.append(
            f"{len(given) - len(run_dirs)} of the runs given name a run given before (again or through a link): "
            "each run counts once"
        )
    lines.append(f"compared at {where}; each metric as the mean over seeds (spread = max - min over seeds)")
    lines += table_lines(groups)
    lines += [verdict(groups[0], g, metric) for g in groups[1:]]
    return groups, lines


# One panel per metric, against training FLOPs; (record key, title).
CURVES = (
    ("heldout_loss", "held-out loss"),
    ("heldout_cell_accuracy", "held-out cell accuracy"),
    ("heldout_pass@2", "held-out pass@2"),
    ("loss", "training loss"),
)


def plot_compared(groups: list[Group], out) -> Path:
    """Every run's curves against training FLOPs, one colour per group, into one PNG."""
    Figure, FigureCanvasAgg = _matplotlib()
    fig = Figure(figsize=(12.8, 7.8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    colours = [f"C{i % 10}" for i in range(len(groups))]
    for i, (key, title) in enumerate(CURVES):
        ax = fig.add_subplot(2, 2, i + 1)
        for colour, group in zip(colours, groups):
            for j, run in enumerate(group.runs):
                points = _points(run.dir, key)
                if points:
                    xs, ys = zip(*points)
                    label = f"{group.label} (seed {shown(run.settings.get('run.seed'))})"
                    ax.plot(
                        xs,
                        ys,
                        color=colour,
                        linestyle=("-", "--", ":", "-.")[j % 4],
                        marker="o" if len(xs) < 20 else None,
                        markersize=3,
                        label=label,
                    )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training FLOPs")
        ax.grid(alpha=0.3)
        if i == 0 and ax.lines:
            ax.legend(fontsize=7)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    path = Path(out)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as e:
        raise DataError(f"{path}: cannot write: {e}") from None
    return path


def _points(run_dir: Path, key: str) -> list[tuple[float, float]]:
    by_flops = {}
    for record in read_metrics(run_dir / "metrics.jsonl"):
        x, y = record.get("flops"), record.get(key)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y)) and math.isfinite(y):
            by_flops[x] = y
    return sorted(by_flops.items())
