"""Ratios of rates that hold on a shared machine.

Two rates measured minutes apart divide the machine's load as much as the code: a phase timed
while another job ran reads slow, and the ratio inflates. So every ratio the benchmarks print
comes from short windows of each side taken in turn (A B A B ...): the ratio of each round, their
median and range. The windows of one side should run at one rate; when they drift by more than
MAX_DRIFT (range over median), the load changed while measuring and the line says so instead of
printing a figure.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_DRIFT = 0.20


@dataclass
class Ratio:
    """rate(a) / rate(b), round by round, and how much each side's rate drifted."""

    a: str
    b: str
    ratios: list[float]
    drifts: dict[str, float]
    max_drift: float = MAX_DRIFT

    @property
    def quiet(self) -> bool:
        return all(d <= self.max_drift for d in self.drifts.values())

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    def text(self) -> str:
        """`4.52× (median of 5 interleaved windows, range 4.40-4.61×)`, or why there is no figure."""
        if not self.quiet:
            side, drift = max(self.drifts.items(), key=lambda kv: kv[1])
            return (
                f"not measured: the machine was not quiet ({side}'s window rates drifted by {drift:.0%}, "
                f"more than {self.max_drift:.0%}); run it again on a quiet machine"
            )
        return (
            f"{self.median:.2f}× (median of {len(self.ratios)} interleaved windows, "
            f"range {min(self.ratios):.2f}-{max(self.ratios):.2f}×)"
        )


@dataclass
class Interleaved:
    """Each phase's rate in each window, in the order taken."""

    rates: dict[str, list[float]]

    def drift(self, name: str) -> float:
        """(max - min) / median of a phase's window rates."""
        rates = self.rates[name]
        return (max(rates) - min(rates)) / statistics.median(rates)

    def ratio(self, a: str, b: str, max_drift: float = MAX_DRIFT) -> Ratio:
        """rate(a) / rate(b) of each round, with both sides' drift."""
        ratios = [x / y for x, y in zip(self.rates[a], self.rates[b])]
        return Ratio(a, b, ratios, {a: self.drift(a), b: self.drift(b)}, max_drift)

    def median_rate(self, name: str) -> float:
        return statistics.median(self.rates[name])


def interleave(
    phases: dict[str, Callable[[], float]], windows: int, clock: Callable[[], float] = time.perf_counter
) -> Interleaved:
    """Run every phase once per round, in turn, for `windows` rounds. A phase runs one window and
    returns the work it did (examples, steps); its rate is that work over the window's time
    (a phase on a GPU synchronises before it returns)."""
    if windows < 1:
        raise ValueError(f"windows {windows}: give 1 or more")
    rates: dict[str, list[float]] = {name: [] for name in phases}
    for _ in range(windows):
        for name, run in phases.items():
            start = clock()
            work = run()
            rates[name].append(work / max(clock() - start, 1e-12))
    return Interleaved(rates)
