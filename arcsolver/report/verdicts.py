"""The verdicts of `arcsolver compare`: a group of runs against the first group, on one metric.

Better or worse when the difference of the means is beyond the larger of the two groups' seed
spreads (max - min over seeds), within the spread otherwise. A verdict needs MIN_SEEDS distinct
seeds in both groups and a finite value in every run of them; short of that the line says what
it lacks. For time to target (FLOPs or steps to run.target_heldout_loss), a run that never
reached the target is shown as such, never as a number, and its group gets no verdict.
"""

from __future__ import annotations

from arcsolver.report.runs import METRICS, MIN_SEEDS, TARGET_METRICS, Group


def _signed(metric: str, value: float) -> str:
    return f"{value:+.3g}" if metric in TARGET_METRICS else f"{value:+.4f}"


def _plain(metric: str, value: float) -> str:
    return f"{value:.3g}" if metric in TARGET_METRICS else f"{value:.4f}"


def verdict(base: Group, group: Group, metric: str) -> str:
    """`LABEL: METRIC +-DIFF (seed spread S): better | worse | within the spread`.

    Better or worse when the difference of the means is beyond the larger of the two groups'
    spreads (max - min over seeds). No verdict where a run's metric is not finite, or where a
    group has fewer than MIN_SEEDS distinct seeds: the line says how many it lacks."""
    _, name, higher_is_better = {**METRICS, **TARGET_METRICS}[metric]
    groups = (("the first group", base), ("this group", group))
    for which, g in groups:
        if missed := g.unreached(metric):
            return (
                f"{group.label}: {name}: {missed} of the {len(g.runs)} runs of {which} never reached the target: "
                "no verdict"
            )
        if bad := g.non_finite(metric):
            return f"{group.label}: {name} not finite in {bad} of the {len(g.runs)} runs of {which}: no verdict"
    a, b = base.mean(metric), group.mean(metric)
    if a is None or b is None:
        return f"{group.label}: {name} missing in {'the first group' if a is None else 'this group'}: no verdict"
    diff = round(b - a, 12) + 0.0  # no -0.0000 from rounding noise
    lacking = [(which, MIN_SEEDS - g.seeds(metric)) for which, g in groups if g.seeds(metric) < MIN_SEEDS]
    if lacking:
        lacks = " and ".join(f"{which} lacks {n} seed{'s' if n > 1 else ''}" for which, n in lacking)
        return (
            f"{group.label}: {name} {_signed(metric, diff)}: no verdict: {lacks} "
            f"(a verdict needs {MIN_SEEDS} distinct seeds in each)"
        )
    spread = max(base.spread(metric) or 0.0, group.spread(metric) or 0.0)
    head = f"{group.label}: {name} {_signed(metric, diff)} (seed spread {_plain(metric, spread)})"
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


def target_lines(groups: list[Group], target: float) -> list[str]:
    """Time to target, a line per group: FLOPs and steps to it as the mean (spread) over the runs
    that reached it, and how many never did; then each group's verdict on FLOPs to target."""
    width = max(len("group"), *(len(g.label) for g in groups))
    lines = [f"time to target: held-out loss {target:g} (each run's first check at or below it)"]
    lines.append(f"{'group':<{width}}  runs  " + "  ".join(f"{n:>24}" for _, n, _ in TARGET_METRICS.values()))
    for g in groups:
        cells = []
        for metric in TARGET_METRICS:
            mean, spread, missed = g.mean(metric), g.spread(metric), g.unreached(metric)
            if mean is None:
                cells.append(f"{f'never reached ({missed} of {len(g.runs)})':>24}")
                continue
            within = _plain(metric, spread) if g.seeds(metric) >= MIN_SEEDS else "1 seed"
            text = f"{_plain(metric, mean)} ({within})" + (f", {missed} never" if missed else "")
            cells.append(f"{text:>24}")
        lines.append(f"{g.label:<{width}}  {len(g.runs):>4}  " + "  ".join(cells))
    return lines + [verdict(groups[0], g, "flops_to_target") for g in groups[1:]]
