"""benchmarks/interleave.py: ratios from interleaved windows, refused when the machine's load moves."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
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


def test_a_load_that_slows_one_phase_makes_the_line_refuse_rather_than_inflate():
    # The reference's phase is slowed fourfold while another job runs, from t=2 to t=6 (its first
    # windows); measured apart, as before, it would read 18× rather than 4.5×.
    m = FakeMachine()
    m.busy = lambda t: 4.0 if 2 <= t < 6 else 1.0
    result = interleave({"ours": m.phase(450.0), "reference": m.phase(100.0)}, windows=5, clock=m.clock)
    ratio = result.ratio("ours", "reference")
    assert not ratio.quiet
    line = ratio.text()
    assert line.startswith("not measured: the machine was not quiet (") and "×" not in line
    assert "more than 20%" in line


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
