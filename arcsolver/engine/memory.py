"""The largest micro-batch that fits a GPU (or a CPU's RAM): the bytes this machine gives a step,
and the fewest forward/backward passes whose step fits them by the memory model (memory_model.py)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from arcsolver.engine.memory_model import (
    GiB,
    StepMemory,
    carry_bytes_per_sample,
    estimate_step_memory,
    measure_step_memory,
)
from arcsolver.engine.step import MicroBatch
from arcsolver.model.trm import TRM

MARGIN = 0.85  # of the memory the allocator may use: fragmentation and the CUDA workspace
CUDA_CONTEXT = 1 * GiB  # the driver's context and cuBLAS/cuDNN workspaces, outside torch's count
# Of the memory a CPU has available when a run starts: the data, the evaluation and the
# allocator's slack (a forward's transient buffers are not among the saved activations) need the rest.
CPU_SHARE = 0.5
CGROUP_FILES = (
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),  # v1
)


def gpu_budget(device: torch.device, cap_gb: float | None = None) -> float:
    """Bytes a step may plan to use on this GPU: what the allocator can get, times a margin."""
    free, total = torch.cuda.mem_get_info(device)
    available = free + torch.cuda.memory_reserved(device)
    if cap_gb is not None:
        available = min(available, cap_gb * GiB)
    return available * MARGIN


def gpu_budget_for(gigabytes: float) -> float:
    """What gpu_budget would give on an idle card of this size (for plans made elsewhere)."""
    return (gigabytes * GiB - CUDA_CONTEXT) * MARGIN


def available_memory() -> float | None:
    """Bytes this machine can still give: /proc/meminfo's MemAvailable, capped by a cgroup's
    limit less its usage (a container reads the host's meminfo); None where none can be read."""
    found = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit, usage in CGROUP_FILES:
        try:
            cap = Path(limit).read_text().strip()
            if cap != "max" and int(cap) < 2**60:  # cgroup v1 writes "no limit" as a huge number
                found.append(max(int(cap) - int(Path(usage).read_text().strip()), 0))
        except (OSError, ValueError):
            continue
    return float(min(found)) if found else None


def cpu_budget() -> float | None:
    """Bytes a CPU step may plan to use: CPU_SHARE of the memory available, shared by the
    processes of this machine (torchrun's LOCAL_WORLD_SIZE); None where it cannot be read."""
    available = available_memory()
    if available is None:
        return None
    try:
        processes = max(int(os.environ.get("LOCAL_WORLD_SIZE", "1")), 1)
    except ValueError:
        processes = 1
    return available * CPU_SHARE / processes


def cpu_micro_batch(model: TRM, local_batch: int, dtype, say, sides=None) -> MicroBatch:
    """auto on a CPU: the whole local batch where its step fits the memory available (cpu_budget),
    as before, else the fewest passes per canvas side that fit (counted, not measured: see
    estimate_step_memory), said in one line."""
    budget = cpu_budget()
    if budget is None:
        return None
    canvases = tuple(sides) if sides else (model.config.canvas,)
    # The largest canvas holds the most per sample: where the whole batch fits there beside
    # every side's carry, it fits everywhere, and the other sides need no count.
    largest = estimate_step_memory(model, dtype, side=max(canvases))
    carries = sum(carry_bytes_per_sample(model, dtype, side) for side in canvases) * local_batch
    if largest.micro_batch(budget, local_batch, carries) >= local_batch:
        return None
    memories = {
        side: largest if side == max(canvases) else estimate_step_memory(model, dtype, side=side) for side in canvases
    }
    chosen = micro_batches(memories, budget, local_batch)
    sized = len(canvases) > 1
    say(
        (
            f"micro-batch per canvas side of {local_batch} per process on the CPU: "
            + ", ".join(f"{side}: {micro}" for side, micro in chosen.items())
            if sized
            else f"micro-batch {chosen[canvases[0]]} of {local_batch} per process on the CPU"
        )
        + f"; {largest.per_sample / 2**20:.0f} MiB per sample at {max(canvases)}x{max(canvases)}, budget "
        f"{budget / GiB:.1f} GiB ({CPU_SHARE:.0%} of the memory available; optim.micro_batch_size=N to choose)"
    )
    return chosen if sized else chosen[canvases[0]]


def micro_batches(memories: dict[int, StepMemory], budget: float, local_batch: int) -> dict[int, int]:
    """The micro-batch of each canvas side: the fewest passes that fit the budget beside every
    side's carry (all sides' carries are held at once)."""
    carries = sum(m.carry_per_sample for m in memories.values()) * local_batch
    return {side: m.micro_batch(budget, local_batch, carries) for side, m in sorted(memories.items())}


def choose_micro_batch(
    setting, model: TRM, local_batch: int, dtype, device: torch.device, cap_gb: float | None, say, sides=None
) -> MicroBatch:
    """The micro-batch of a step: as set, or (auto) the largest that fits this GPU, measured on
    the real shapes with the eager network (a compiled one needs no more), or on a CPU the whole
    batch unless it would not fit the memory available (cpu_micro_batch); None means the whole
    local batch. With the canvas `sides` of a sized layout, auto measures each side and gives
    each its own (a side-6 step fits many more samples than a 30x30 one)."""
    if setting != "auto":
        return min(setting, local_batch)
    if device.type != "cuda":
        return cpu_micro_batch(model, local_batch, dtype, say, sides)
    budget = gpu_budget(device, cap_gb)
    if sides and len(sides) > 1:
        memories = {side: measure_step_memory(model, dtype, side=side) for side in sides}
        chosen = micro_batches(memories, budget, local_batch)
        largest = memories[max(sides)]
        say(
            f"micro-batch per canvas side of {local_batch} per process: "
            + ", ".join(f"{side}: {micro}" for side, micro in chosen.items())
            + f"; {largest.per_sample / 2**20:.0f} MiB per sample at {max(sides)}x{max(sides)}, "
            f"{largest.fixed / GiB:.1f} GiB fixed, budget {budget / GiB:.1f} GiB (optim.micro_batch_size=N to choose)"
        )
        return chosen
    memory = measure_step_memory(model, dtype)
    micro = memory.micro_batch(budget, local_batch)
    say(
        f"micro-batch {micro} of {local_batch} per process: {memory.per_sample / 2**20:.0f} MiB per sample, "
        f"{memory.fixed / GiB:.1f} GiB fixed, budget {budget / GiB:.1f} GiB (optim.micro_batch_size=N to choose)"
    )
    return micro
