"""Data parallelism over torch.distributed: one process per device, launched by torchrun.

Each process runs its slice of the global batch; gradients are averaged with one all-reduce of
a flat buffer, and the puzzle-embedding gradients are all-gathered so every process applies the
same sign-SGD update. NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> Dist:
    """Join the process group torchrun describes in the environment; a single process otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
    return Dist(rank, world_size, local_rank)


def average_gradients(model: nn.Module, d: Dist) -> None:
    """Average the network's gradients over processes (one all-reduce of a flat buffer)."""
    if not d.enabled:
        return
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= d.world_size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def gather(t: torch.Tensor, d: Dist) -> torch.Tensor:
    """Concatenate a tensor of the same shape from every process, in rank order."""
    if not d.enabled:
        return t
    parts = [torch.empty_like(t) for _ in range(d.world_size)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def sum_over_processes(values: list[float], d: Dist, device: torch.device) -> list[float]:
    """Element-wise sums of a list of numbers over processes."""
    if not d.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64 if device.type == "cpu" else torch.float32, device=device)
    dist.all_reduce(t)
    return t.tolist()


class StopVote:
    """Whether any process wants to stop, agreed without a collective that waits at every step.

    Each call casts this process's wish in a non-blocking all-reduce on a CPU (gloo) group, off
    the GPU's stream, and returns the outcome of the previous call's vote, which has had a whole
    step to arrive. Every process sees the same outcomes, so all stop at the same step: one step
    after the wish. A single process needs no vote and stops at once.
    """

    def __init__(self, d: Dist):
        self.d = d
        self._group = dist.new_group(backend="gloo") if d.enabled else None
        self._pending: tuple | None = None
        self.clock = 0.0

    def __call__(self, wish: bool, clock: float = 0.0) -> bool:
        """Cast wish (and this process's clock); return the agreed outcome. The clock agreed with
        it, the largest any process cast, is then `self.clock`, the same in every process."""
        if not self.d.enabled:
            self.clock = clock
            return wish
        agreed = False
        if self._pending is not None:
            work, outcome = self._pending
            work.wait()
            agreed, self.clock = bool(outcome[0].item()), float(outcome[1].item())
        ballot = torch.tensor([float(wish), clock], dtype=torch.float64)
        self._pending = (dist.all_reduce(ballot, op=dist.ReduceOp.MAX, group=self._group, async_op=True), ballot)
        return agreed

    def close(self) -> None:
        """Wait for the vote in flight, so that every process has finished the same collectives."""
        if self._pending is not None:
            self._pending[0].wait()
            self._pending = None


def any_process(flag: bool, d: Dist, device: torch.device) -> bool:
    """True in every process if it is true in any (one small all-reduce)."""
    if not d.enabled:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def from_main(text: str, d: Dist, device: torch.device) -> str:
    """The main process's text (a name, at most 255 bytes of UTF-8) in every process (one small
    broadcast)."""
    if not d.enabled:
        return text
    data = text.encode("utf-8")
    assert len(data) < 256, "a name, not a message"
    buffer = torch.zeros(256, dtype=torch.uint8, device=device)
    if d.is_main:
        buffer[0] = len(data)
        buffer[1 : 1 + len(data)] = torch.tensor(list(data), dtype=torch.uint8)
    dist.broadcast(buffer, src=0)
    size = int(buffer[0])
    return bytes(buffer[1 : 1 + size].tolist()).decode("utf-8")


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def shutdown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
