"""benchmarks/interleave.py: ratios from pairs of adjacent windows, refused when the pairs disagree."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from interleave import interleave  # noqa: E402


class FakeMachine:
    """A clock, and phases that do a fixed amount of work at their own speed, slowed by `busy`
    (a factor of the clock's time) while another job shares the machine."""

    def __init__(self, busy=lambda t: 1.0):
        self.now, self.busy = 0.0, busy

    def clock(self) -> float:
        return self.now

    def phase(self, speed: float, work: float = 100.0):
        def run() -> float:
            self.now += work / speed * self.busy(self.now)
            return work

        return run


def test_a_quiet_machine_gives_the_ratio_of_the_rates():
    m = FakeMachine()
    result = interleave({"ours": m.phase(450.0), "reference": m.phase(100.0)}, windows=5, clock=m.clock)
    ratio = result.ratio("ours", "reference")
    assert ratio.quiet and ratio.median == pytest.approx(4.5)
    assert ratio.text() == "4.50× (median of 5 interleaved windows, range 4.50-4.50×)"


def test_a_load_that_comes_and_goes_within_the_pairs_makes_the_line_refuse_rather_than_guess():
    # The reference's windows are slowed by a different factor in each round (the load changes
    # between one window and the next): no two pairs agree on a ratio.
    factors = iter([1, 1, 1, 2, 1, 4, 1, 4 / 3, 1, 2.9])  # ours, reference, ours, reference, ...
    m = FakeMachine(busy=lambda t: next(factors))
    result = interleave({"ours": m.phase(450.0), "reference": m.phase(100.0)}, windows=5, clock=m.clock)
    ratio = result.ratio("ours", "reference")
    assert not ratio.quiet and ratio.agreeing == 1
    line = ratio.text()
    assert line.startswith("not measured: the machine was not quiet (") and "×" not in line
    assert "only 1 of 5 window pairs" in line


def test_a_slow_drift_of_the_machine_leaves_the_pairs_ratio():
    # The machine slows steadily, by 60% over the measurement: each side's windows drift far past
    # 20%, but the two windows of a pair are slowed almost alike.
    m = FakeMachine(busy=lambda t: 1 + 0.1 * t)
    result = interleave({"ours": m.phase(450.0), "reference": m.phase(100.0)}, windows=5, clock=m.clock)
    ratio = result.ratio("ours", "reference")
    assert min(ratio.drifts.values()) > 0.2
    assert ratio.quiet and ratio.agreeing == 5
    assert ratio.median == pytest.approx(4.5, rel=0.03)
    assert ratio.text().endswith("×)") and "drifted 47%" in ratio.drift_text()


def test_a_burst_in_a_minority_of_the_pairs_leaves_the_median():
    # Two of five reference windows slowed fourfold: the three pairs that agree carry the figure.
    factors = iter([1, 4, 1, 1, 1, 4, 1, 1, 1, 1])
    m = FakeMachine(busy=lambda t: next(factors))
    ratio = interleave({"ours": m.phase(450.0), "reference": m.phase(100.0)}, windows=5, clock=m.clock).ratio(
        "ours", "reference"
    )
    assert ratio.quiet and ratio.agreeing == 3 and ratio.median == pytest.approx(4.5)
    assert "range 4.50-18.00×" in ratio.text()


def test_a_drift_within_the_bound_still_gives_the_median_and_its_range():
    # A 10% slow-down of one window of b (the one starting at t=2): the median ignores it, the range shows it.
    m = FakeMachine()
    m.busy = lambda t: 1.1 if 2.0 <= t < 2.1 else 1.0
    result = interleave({"a": m.phase(200.0), "b": m.phase(100.0)}, windows=5, clock=m.clock)
    ratio = result.ratio("a", "b")
    assert ratio.quiet and ratio.median == pytest.approx(2.0)
    assert max(ratio.ratios) == pytest.approx(2.2) and "range 2.00-2.20×" in ratio.text()


def test_windows_alternate_between_the_phases():
    order = []
    interleave({"a": lambda: order.append("a") or 1, "b": lambda: order.append("b") or 1}, windows=3)
    assert order == ["a", "b"] * 3
