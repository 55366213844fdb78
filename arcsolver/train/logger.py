"""A pretraining run's progress: a bar on a terminal, plain lines off one, and metrics.jsonl with
a record every run.log_every steps (loss, accuracy, halting, throughput), each the mean over the
steps since the previous record and over processes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from arcsolver.atomic import reported_writes
from arcsolver.console import Heartbeat, duration, one_line, projected_total
from arcsolver.engine.distributed import Dist
from arcsolver.engine.trainer import StepResult
from arcsolver.engine.window import Window
from arcsolver.train.resume import resume_hint


class Logger:
    """A rich progress bar (plain lines off a terminal) and metrics.jsonl, shown and written by the
    main process; every process takes part in `record`, whose averages are collectives."""

    def __init__(
        self,
        run_dir: Path,
        total: int,
        start: int,
        d: Dist,
        device: torch.device,
        global_batch_size: int,
        time_limit_s: float | None = None,
        console=None,
        trackers=None,
        flops_per_sample: dict[int, int] | None = None,
        flops: int = 0,
    ):
        from rich import get_console

        self.enabled = d.is_main
        self.d, self.device = d, device
        self.global_batch_size, self.time_limit_s = global_batch_size, time_limit_s
        # The run's training FLOPs so far (all processes): a step on side s costs
        # flops_per_sample[s] x the global batch (engine/flops.py).
        self.flops_per_sample, self.flops = flops_per_sample or {}, flops
        self.window_start, self.window_steps, self.window_cells = time.monotonic(), 0, 0
        self.window = Window()
        self.run_dir = run_dir
        self.trackers = trackers  # arcsolver.trackers.Trackers, fed every record (main process)
        self.path = run_dir / "metrics.jsonl"
        self.console = console or get_console()
        self.progress = None
        self.total, self.step, self.start, self.status = total, start, start, ""
        self.planned = total  # the run's length; self.total is what the bar shows
        self.started = time.monotonic()
        self.heartbeat = Heartbeat(self.console if self.enabled else None)
        if self.enabled and self.console.is_terminal:  # elsewhere the heartbeat's plain lines say it
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
        """Append record to metrics.jsonl, and send it to the trackers."""
        if not self.enabled:
            return
        if self.trackers is not None:
            self.trackers.log(record)
        with reported_writes(
            self.path,
            "the records and checkpoints already there are intact; free space, then "
            f"resume with `{resume_hint(self.run_dir)}`",
        ):
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def count(self, result: StepResult) -> None:
        """A step is done: its loss and metrics join the next record's means (on the device), its
        canvases that record's throughput."""
        self.window.add(result)
        self.window_steps += 1
        self.window_cells += result.side * result.side
        self.flops += self.flops_per_sample.get(result.side, 0) * self.global_batch_size

    def record(self, step: int, lr: float) -> dict[str, float]:
        """The record of step in metrics.jsonl and on the bar: the loss and metrics of the steps
        since the last record, averaged over them and over processes, and their throughput.
        Returns those means (the same in every process)."""
        values = self.window.read(self.d)
        elapsed = time.monotonic() - self.window_start
        samples_per_s = self.window_steps * self.global_batch_size / max(elapsed, 1e-9)
        record = {
            "step": step,
            **values,
            "lr": lr,
            "samples_per_s": samples_per_s,
            "tokens_per_s": self.window_cells * self.global_batch_size / max(elapsed, 1e-9),
            "time_s": self.elapsed(),
            "flops": self.flops,
        }
        if self.device.type == "cuda":
            record["gpu_peak_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        self.log(record)
        status = (
            f"loss {values['loss']:.3f} exact {values['exact_accuracy']:.3f} "
            + (f"halt@{values['mean_halt_steps']:.1f} " if "mean_halt_steps" in values else "halt@- ")
            + f"{samples_per_s:.0f} samples/s"
        )
        self.advance(step, total=self.eta_total(step), status=status)
        self.window_start, self.window_steps, self.window_cells = time.monotonic(), 0, 0
        return values

    def elapsed(self) -> float:
        """Seconds since this process's first step (a resumed run's clock starts again)."""
        return time.monotonic() - self.started

    def log_evaluation(self, step: int, scores: dict) -> None:
        """A held-out evaluation's record: its scores, with the step, wall time and FLOPs it came at."""
        self.log(
            {
                "step": step,
                **{f"heldout_{k}": v for k, v in scores.items()},
                "time_s": self.elapsed(),
                "flops": self.flops,
            }
        )

    def eta_total(self, step: int) -> int | None:
        """Under a time limit the run ends at the step the clock allows: that step, as the total
        shown (None: the planned total)."""
        if not self.time_limit_s:
            return None
        return projected_total(self.planned, step, self.start, self.started, self.started + self.time_limit_s)

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
            # Projected afresh: the last record's projection may lie behind the step reached since.
            total = max(self.eta_total(step) or self.total, step)
            left = (total - step) * elapsed / max(step - self.start, 1)
            status = f": {self.status}" if self.status else ""  # none before the first logged step
            return f"pretrain step {step}/{total}{status}; {duration(elapsed)} elapsed, about {duration(left)} left"

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
