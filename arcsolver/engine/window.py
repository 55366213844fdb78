"""The averages a progress record reports: every step's loss and metrics since the last record.

A single step's values are noisy in ways that mislead: samples halt in waves, so the step at a
record boundary usually has none halting (mean_halt_steps 0) or all of them together (exact
accuracy 1). The sums stay on the device, one addition per step, and are read once per record:
a read at every step would wait for the GPU at every step.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from arcsolver.engine.distributed import Dist
from arcsolver.engine.trainer import StepResult


class Window:
    """Running sums of the steps since the last read; `read` returns their means and starts anew.

    mean_halt_steps is a mean over the samples that halted, so its window mean weighs each step
    by its halted_fraction: the mean over every sample that halted in the window (absent from a
    window in which none did).
    """

    def __init__(self) -> None:
        self.keys: tuple[str, ...] | None = None
        self.sums: torch.Tensor | None = None  # on the device, in the order of self.keys
        self.host_sums: dict[str, float] = {}  # values the step already gave as numbers
        self.steps = 0

    def add(self, result: StepResult) -> None:
        """Add one step's loss, metrics and gradient norm to the sums (no host-device transfer)."""
        values: dict[str, torch.Tensor | float] = {"loss": result.loss, **result.metrics}
        if result.grad_norm is not None:
            values["grad_norm"] = result.grad_norm
        if "mean_halt_steps" in values and "halted_fraction" in values:
            values["mean_halt_steps"] = values["mean_halt_steps"] * values["halted_fraction"]
        tensors = {k: v for k, v in values.items() if isinstance(v, torch.Tensor)}
        for k, v in values.items():
            if not isinstance(v, torch.Tensor):
                self.host_sums[k] = self.host_sums.get(k, 0.0) + float(v)
        if tensors:
            stacked = torch.stack([v.detach().float().reshape(()) for v in tensors.values()])
            if self.sums is None:
                self.keys, self.sums = tuple(tensors), stacked
            else:
                assert tuple(tensors) == self.keys, f"a step's metrics changed: {tuple(tensors)} != {self.keys}"
                self.sums += stacked
        self.steps += 1

    def read(self, d: Dist | None = None) -> dict[str, float]:
        """The means since the last read (averaged over processes where d has several; every
        process must call it then), in one transfer; the window then starts empty."""
        n = max(self.steps, 1)
        means = {k: v / n for k, v in self.host_sums.items()}
        if self.sums is not None and self.keys is not None:
            sums = self.sums
            if d is not None and d.enabled:
                sums = sums.clone()
                dist.all_reduce(sums)
                sums /= d.world_size
            means |= dict(zip(self.keys, (v / n for v in sums.tolist())))
        if "mean_halt_steps" in means and "halted_fraction" in means:
            if means["halted_fraction"]:
                means["mean_halt_steps"] /= means["halted_fraction"]
            else:  # no sample halted in the window: there is no mean, and 0 would read as one
                del means["mean_halt_steps"]
        self.keys, self.sums, self.host_sums, self.steps = None, None, {}, 0
        return means
