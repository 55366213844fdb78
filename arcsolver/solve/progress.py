"""What a solve shows while it works: a line per task that keeps its fallbacks (FallbackLines),
and for each checkpoint the bars of its adaptation and inference, with plain heartbeat lines
where the console is not a terminal, adaptation's records going to the trackers too
(CheckpointProgress)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from arcsolver.config import SolveConfig
from arcsolver.console import Heartbeat, duration, projected_total
from arcsolver.console import one_line as escaped
from arcsolver.data.task import task_label
from arcsolver.trackers import Trackers


def plain_lines(console) -> Callable[[str], None]:
    """Print a line of text to console as it is: no markup, no highlighting, never wrapped."""
    return lambda text: console.print(escaped(text), highlight=False, soft_wrap=True)


def trackers_dir(out: Path) -> Path:
    """Where the trackers of a solve writing out keep their files: <out stem>.trackers beside it."""
    return out.with_name(f"{out.stem}.trackers")


class FallbackLines:
    """One line per task that keeps its fallback attempts, and why, for the first LISTED of
    them; past those, one line at the end counts the rest by reason (a budget that runs out
    over thousands of tasks is one line, not thousands)."""

    LISTED = 30

    def __init__(self, console):
        self.console, self.said = console, 0
        self.unsaid: dict[str, int] = {}

    def __call__(self, task_id: str, reason: str) -> None:
        self.line(f"task {task_label(task_id)}: {reason}", reason)

    def line(self, text: str, reason: str = "malformed") -> None:
        if self.said < self.LISTED:
            self.console.print(f"[yellow]fallback[/] {escaped(text)}", highlight=False, soft_wrap=True)
            self.said += 1
        else:
            kind = reason.split(":")[0]
            self.unsaid[kind] = self.unsaid.get(kind, 0) + 1

    def summarise(self) -> None:
        """The line counting the fallbacks not listed, if there were any."""
        if self.unsaid:
            counts = "; ".join(f"{n} {kind}" for kind, n in sorted(self.unsaid.items(), key=lambda kv: -kv[1]))
            self.console.print(
                f"[yellow]fallback[/] {sum(self.unsaid.values())} more tasks ({escaped(counts)})",
                highlight=False,
                soft_wrap=True,
            )


class CheckpointProgress:
    """One checkpoint's adaptation and inference, shown as they go: a bar each on a terminal; off
    one, a plain line every HEARTBEAT_S seconds (the bars would only land at the log's end)."""

    def __init__(self, console):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
        )
        self.heartbeat = Heartbeat(console)  # plain lines where the console is not a terminal
        self.bars = Progress(*columns, console=console, disable=not console.is_terminal)

    def __enter__(self) -> CheckpointProgress:
        self.bars.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.bars.__exit__(*exc)

    def line(self, text: str) -> None:
        """A line of text printed as it is, above the bars."""
        self.bars.console.print(escaped(text), highlight=False)

    @contextmanager
    def adapting(
        self, n_tasks: int, cfg: SolveConfig, out: Path, deadline: float | None, tracked: bool
    ) -> Iterator[Callable]:
        """The on_step of adaptation to n_tasks tasks for at most cfg.adapt.steps steps (fewer where
        the monotonic deadline comes first): it moves the bar and, where tracked, feeds the trackers
        of the solve writing out, closed when the adaptation ends."""
        self.adapt_bar = self.bars.add_task(f"adapting {n_tasks} tasks", total=cfg.adapt.steps, status="")
        started = time.monotonic()

        def on_step(step, loss, metrics):
            elapsed = time.monotonic() - started
            if trackers is not None:
                trackers.log({"step": step, "loss": loss, **metrics, "time_s": elapsed})
            status = f"loss {loss:.3f} exact {metrics['exact_accuracy']:.2f}"
            # The time budget may end adaptation before adapt.steps: the total shown follows it.
            total = projected_total(cfg.adapt.steps, step, 0, started, deadline)
            self.bars.update(self.adapt_bar, completed=step, total=total, status=status)
            self.heartbeat(
                lambda: f"adapting {n_tasks} tasks: step {step}/{total}, {status}; {duration(elapsed)} elapsed"
            )

        trackers = (
            Trackers(cfg.run.trackers, trackers_dir(out), out.stem, cfg.model_dump(mode="json"))
            if cfg.run.trackers and tracked
            else None
        )
        try:
            yield on_step
        finally:
            if trackers is not None:
                trackers.close()

    def adapted(self, steps: int) -> None:
        """Adaptation ended after steps steps: its bar shows them done."""
        self.bars.update(self.adapt_bar, completed=steps, total=max(steps, 1))

    def inferring(self, n_tasks: int) -> float:
        """Inference of n_tasks tasks begins: its bar; the monotonic time it began."""
        self.infer_started = time.monotonic()
        self.n_tasks = n_tasks
        self.infer_bar = self.bars.add_task("inference", total=n_tasks, status="")
        return self.infer_started

    def inferred(self, done: int, solved: int) -> None:
        """done of the tasks are through inference, solved tasks answered by the model so far."""
        self.bars.update(self.infer_bar, advance=1)
        self.heartbeat(
            lambda: (
                f"inference: task {done}/{self.n_tasks}, {solved} answered by the model; "
                f"{duration(time.monotonic() - self.infer_started)} elapsed"
            )
        )
