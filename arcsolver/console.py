"""The command line's consoles and its one rule for user errors, shared by every sub-command."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable

import typer
from rich.console import Console
from rich.markup import escape

from arcsolver.errors import ArcsolverError

# No emoji codes: a task id or path such as `a:abc:b` prints as written, not as `a🔤b`.
console = Console(emoji=False)
err_console = Console(stderr=True, emoji=False)

# Characters that would break a message out of its line or drive the terminal (ESC sequences).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def one_line(text: str) -> str:
    """User text made safe to print as one line: control characters shown as escapes (\\n, \\x1b)
    and rich markup escaped, so a task id like `[/x]` or `a<newline>b` prints as written."""
    return escape(_CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text))


def user_errors(fn):
    """Print errors the user can cause as one line and exit 1, without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ArcsolverError as e:
            err_console.print(f"[bold red]error:[/] {one_line(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


HEARTBEAT_S = 30.0  # how often a long phase prints a plain line where the console is not a terminal


class Heartbeat:
    """Plain progress lines where the console is not a terminal (a log file, a notebook cell),
    where a rich bar only shows once, at the end. On a terminal the bar says it all."""

    def __init__(self, console, every_s: float | None = None):
        self.console = console
        self.enabled = console is not None and not console.is_terminal
        self.every_s = HEARTBEAT_S if every_s is None else every_s
        self.last = time.monotonic()

    def due(self) -> bool:
        return self.enabled and time.monotonic() - self.last >= self.every_s

    def __call__(self, line: Callable[[], str]) -> None:
        """Print line() if a beat is due (line is only built then)."""
        if self.due():
            self.console.print(one_line(line()), highlight=False, soft_wrap=True)
            self.last = time.monotonic()


def duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def projected_total(planned: int, step: int, start: int, started: float, deadline: float | None) -> int:
    """The step a run will end at: planned, or the step the monotonic deadline allows at the pace
    since started (when the run was at step start), if that comes first."""
    if deadline is None:
        return planned
    now = time.monotonic()
    rate = (step - start) / max(now - started, 1e-9)
    return min(planned, step + round(rate * max(deadline - now, 0)))
