"""`arcsolver compare RUN...`: pretraining runs side by side, at equal compute.

Runs whose settings differ only in their seed (and in their length, logging and use of the
hardware) form a group; a run is identified by its resolved directory, so one named twice (or
through a link) counts once. For each group: the held-out loss, cell accuracy, pass@1 and pass@2
of its runs' evaluations, as the mean and the spread between seeds (max - min). Against the first
group, each other group gets a verdict on one metric: better or worse when the difference of
the means is beyond the larger of the two groups' spreads, within the spread otherwise. A verdict
needs MIN_SEEDS distinct seeds in both groups and a finite metric in every run of them; short of
that the line says what it lacks. Runs are compared at equal training FLOPs by default: each
run's last evaluation at or below the least FLOPs that every run reached; runs that share a
run.flops budget are compared at it. Runs with a target (run.target_heldout_loss) are also
compared by their time to it: FLOPs and steps (report/verdicts.py). Runs whose data or held-out
tasks differ are refused. The runs read: report/runs.py; the PNG: report/compare_plot.py.

No wall-time ratio is printed: runs trained one after another on a shared machine did not see
the same machine (see benchmarks/interleave.py for ratios that hold).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from arcsolver.errors import DataError
from arcsolver.inputs import distinct
from arcsolver.report.runs import SAME_DATA, Group, RunResult, compared, read_run, shown
from arcsolver.report.verdicts import table_lines, target_lines, verdict


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
    targets = {json.dumps(r.settings.get("run.target_heldout_loss")) for r in runs}
    if len(targets) > 1:
        lines.append(f"time to target: the runs' targets differ ({', '.join(sorted(targets))}): not compared")
    elif (target := runs[0].settings.get("run.target_heldout_loss")) is not None:
        lines += target_lines(groups, target)
    return groups, lines
