"""A pretraining run's progress: a bar on a terminal, plain lines off one, and metrics.jsonl."""

from __future__ import annotations

import json
import time
from pathlib import Path

from arcsolver.atomic import reported_writes
from arcsolver.console import Heartbeat, duration, one_line
from arcsolver.train.resume import resume_hint


class Logger:
    """Rank 0 only: a rich progress bar (plain lines off a terminal) and metrics.jsonl."""

    def __init__(self, run_dir: Path, total: int, start: int, enabled: bool, console=None):
        from rich import get_console

        self.enabled = enabled
        self.run_dir = run_dir
        self.path = run_dir / "metrics.jsonl"
        self.console = console or get_console()
        self.progress = None
        self.total, self.step, self.start, self.status = total, start, start, ""
        self.started = time.monotonic()
        self.heartbeat = Heartbeat(self.console if enabled else None)
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("[bold]pretrain"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"),
                console=self.console,
                transient=False,
            )
            self.task = self.progress.add_task("steps", total=total, completed=start, status="")
            self.progress.start()

    def log(self, record: dict) -> None:
        """Append record to metrics.jsonl."""
        if not self.enabled:
            return
        with reported_writes(
            self.path,
            "the records and checkpoints already there are intact; free space, then "
            f"resume with `{resume_hint(self.run_dir)}`",
        ):
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def advance(self, step: int, status: str | None = None, total: int | None = None) -> None:
        """Move the bar to step, with a new status line or total where given."""
        self.step, self.total = step, total or self.total
        self.status = self.status if status is None else status
        if self.progress is not None:
            fields = {} if status is None else {"status": status}
            self.progress.update(self.task, completed=step, total=total, **fields)

    def tick(self, step: int) -> None:
        """A step is done: off a terminal, a plain line every HEARTBEAT_S seconds."""
        self.step = step

        def line() -> str:
            elapsed = time.monotonic() - self.started
            left = (self.total - step) * elapsed / max(step - self.start, 1)
            status = f": {self.status}" if self.status else ""  # none before the first logged step
            return (
                f"pretrain step {step}/{self.total}{status}; {duration(elapsed)} elapsed, about {duration(left)} left"
            )

        self.heartbeat(line)

    def finish(self, step: int, total: int) -> None:
        """The bar's last state: where the run ended, out of total."""
        self.advance(step, total=total)

    def print(self, text: str) -> None:
        """Print text as one line."""
        if self.enabled:
            self.console.print(one_line(text), highlight=False, soft_wrap=True)

    def close(self) -> None:
        """Stop the bar, leaving its last state on screen; closing again does nothing."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
