"""Stopping a pretraining run on SIGINT (Ctrl-C) or SIGTERM: after the current step, at the same
step and for the same signal in every process, with the command that continues it."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path

from arcsolver.engine.distributed import Dist, sum_over_processes
from arcsolver.train.resume import resume_hint


class Interrupted(BaseException):
    """A stop signal during a phase that writes nothing (the final evaluation): end it at once."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopRequests:
    """SIGINT (Ctrl-C) and SIGTERM while training. The first asks the loop to stop after the
    current step and write a checkpoint; later ones are noted only, so that a second Ctrl-C
    cannot cut the checkpoint short. With immediate set, a signal raises Interrupted instead.
    Handlers can only be installed from the main thread; elsewhere signals keep their defaults."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum: int | None = None
        self.immediate = False
        self._previous: dict = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum
        if self.immediate:
            raise Interrupted(signum)

    @property
    def requested(self) -> bool:
        """A signal came in this process."""
        return self.signum is not None


def agreed_signal(stops: StopRequests, d: Dist, device) -> int | None:
    """The signal that stops the run, the same in every process (SIGINT if any process got a
    Ctrl-C, else SIGTERM if any got that), or None when none did. Every process must call it."""
    got = sum_over_processes([float(stops.signum == signal.SIGINT), float(stops.signum == signal.SIGTERM)], d, device)
    return signal.SIGINT if got[0] else signal.SIGTERM if got[1] else None


def stopped(run_dir: Path, step: int, saved: Path, signum: int, d: Dist, say: Callable[[str], None]) -> None:
    """Say where the run stopped and the command that continues it."""
    launch = " under the same torchrun launch" if d.enabled else ""
    say(
        f"stopped by {signal.Signals(signum).name} at step {step}; checkpoint {saved} written; "
        f"continue with: {resume_hint(run_dir)}{launch}"
    )
