"""Ratios of rates that hold on a shared machine.

Two rates measured minutes apart divide the machine's load as much as the code: a phase timed
while another job ran reads slow, and the ratio inflates. So every ratio the benchmarks print
comes from short windows of each side taken in turn (A B A B ...): the ratio of each round's pair
of adjacent windows, their median and range.

A slow drift of the machine's speed (a neighbour's job ramping, the CPU's clock settling) moves
both windows of a pair alike, so it leaves their ratio, while one side's rates drift far more
(on these 2-core machines a quiet side's windows often drift by more than 20%). So the rule
judges the pairs, not the sides: the figure stands when more than half of the pairs' ratios lie
within PAIR_TOLERANCE of their median, and the line refuses it when the pairs disagree (a load
that came and went within the pairs, hitting one side's windows and not the other's). The sides'
own drifts are kept and printed beside the figure.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

PAIR_TOLERANCE = 0.10  # a pair agrees when its ratio is within 10% of the median of all pairs


@dataclass
class Ratio:
    """rate(a) / rate(b), pair of adjacent windows by pair, and how much each side's rate drifted."""

    a: str
    b: str
    ratios: list[float]
    drifts: dict[str, float]
    tolerance: float = PAIR_TOLERANCE

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    @property
    def agreeing(self) -> int:
        """The pairs whose ratio lies within the tolerance of the median ratio."""
        return sum(abs(r / self.median - 1) <= self.tolerance + 1e-12 for r in self.ratios)

    @property
    def quiet(self) -> bool:
        """More than half of the pairs agree: a load that moved within the pairs did not move most of them."""
        return 2 * self.agreeing > len(self.ratios)

    def text(self) -> str:
        """`4.52× (median of 5 interleaved windows, range 4.40-4.61×)`, or why there is no figure."""
        if not self.quiet:
            return (
                f"not measured: the machine was not quiet (only {self.agreeing} of {len(self.ratios)} window pairs' "
                f"ratios within {self.tolerance:.0%} of their median, {self.median:.2f}; their range "
                f"{min(self.ratios):.2f}-{max(self.ratios):.2f}); run it again on a quieter machine"
            )
        return (
            f"{self.median:.2f}× (median of {len(self.ratios)} interleaved windows, "
            f"range {min(self.ratios):.2f}-{max(self.ratios):.2f}×)"
        )

    def drift_text(self) -> str:
        """Each side's window rates' drift, (max - min) / median: what the pairs' ratios are robust to."""
        return ", ".join(f"{side} drifted {drift:.0%}" for side, drift in self.drifts.items())


@dataclass
class Interleaved:
    """Each phase's rate in each window, in the order taken."""

    rates: dict[str, list[float]]

    def drift(self, name: str) -> float:
        """(max - min) / median of a phase's window rates."""
        rates = self.rates[name]
        return (max(rates) - min(rates)) / statistics.median(rates)

    def ratio(self, a: str, b: str, tolerance: float = PAIR_TOLERANCE) -> Ratio:
        """rate(a) / rate(b) of each round (its two windows adjacent), with both sides' drift."""
        ratios = [x / y for x, y in zip(self.rates[a], self.rates[b])]
        return Ratio(a, b, ratios, {a: self.drift(a), b: self.drift(b)}, tolerance)

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
