"""How much memory a training step needs, and the largest micro-batch that fits a GPU (or a CPU's RAM).

Per sample, a step keeps the activations that backward needs (the last recursion's f calls),
and the deep-supervision carry (y and z) of every sample in the local batch. The rest is fixed:
weights, gradients, optimiser moments, the EMA and the puzzle-embedding table. On CUDA we
measure a real forward and backward at two micro-batch sizes and fit a line; on a CPU we count
the bytes autograd saves, which is what `--plan` reports for a GPU it has not seen.
"""

from __future__ import annotations

import contextlib
import gc
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from arcsolver.engine.step import MicroBatch
from arcsolver.model.loss import trm_loss
from arcsolver.model.trm import TRM

GiB = 2**30
MARGIN = 0.85  # of the memory the allocator may use: fragmentation and the CUDA workspace
CUDA_CONTEXT = 1 * GiB  # the driver's context and cuBLAS/cuDNN workspaces, outside torch's count
# Of the memory a CPU has available when a run starts: the data, the evaluation and the
# allocator's slack (a forward's transient buffers are not among the saved activations) need the rest.
CPU_SHARE = 0.5
CGROUP_FILES = (
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),  # v1
)


@dataclass(frozen=True)
class StepMemory:
    """fixed + per_sample x micro-batch + carry_per_sample x local batch, in bytes."""

    fixed: float
    per_sample: float
    carry_per_sample: float

    def micro_batch(self, budget: float, local_batch: int, carries: float | None = None) -> int:
        """The micro-batch whose step fits budget bytes with the fewest forward/backward passes,
        evened out over the local batch (768 with room for 293 runs as 3 x 256). `carries`: the
        bytes of every carry held (one per canvas side); default this one's alone."""
        if carries is None:
            carries = self.carry_per_sample * local_batch
        room = budget - self.fixed - carries
        largest = int(max(1, min(local_batch, room // max(self.per_sample, 1))))
        passes = -(-local_batch // largest)
        return -(-local_batch // passes)

    def peak(self, micro_batch: int, local_batch: int) -> float:
        return self.fixed + self.per_sample * micro_batch + self.carry_per_sample * local_batch


def example_batch(model: TRM, size: int, device: torch.device, side: int | None = None) -> dict[str, torch.Tensor]:
    """A batch of random colour canvases of the model's shape (or of `side`): memory depends on
    shapes only."""
    side = side or model.config.canvas
    g = torch.Generator().manual_seed(0)
    cells = torch.randint(2, 12, (size, side, side), generator=g)
    ids = torch.randint(0, model.puzzle_emb.n_rows, (size,), generator=g)
    return {"inputs": cells.to(device), "labels": cells.to(device), "puzzle_ids": ids.to(device)}


def _forward_backward(model: TRM, batch: dict, dtype: torch.dtype, backward: bool = True):
    carry = model.initial_carry(batch)
    device_type = batch["inputs"].device.type
    # float32 needs no autocast, and the meta device (FLOPs of shapes, engine/flops.py) has none.
    precision = contextlib.nullcontext() if dtype == torch.float32 else torch.autocast(device_type, dtype=dtype)
    with precision:
        carry, out = model(carry, batch)
    loss, _ = trm_loss(out.logits, out.labels, out.halt_logit, model.config.halt_loss_weight)
    if backward:
        loss.backward()
    return carry, loss


def shallow_copy(model: TRM, **schedule) -> TRM:
    """A TRM of the same shapes and device with another recursion schedule (its own weights:
    memory depends on shapes only) and a 2-row puzzle table."""
    device = next(model.parameters()).device
    # Its weights are drawn aside: counting memory never moves the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        return TRM(model.config.model_copy(update=schedule), n_puzzle_ids=2).to(device)


def saved_activation_bytes(
    model: TRM, size: int, dtype: torch.dtype, train_network: bool = True, side: int | None = None
) -> int:
    """Bytes autograd keeps for backward over one training forward of `size` samples.

    Only the last recursion keeps activations (the first T-1 run without a graph): the count
    runs on a copy with T = 1.
    """
    model = shallow_copy(model, n_recursions=1)
    device = next(model.parameters()).device
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        seen[(storage.data_ptr(), t.device.index or 0)] = storage.nbytes()
        return t

    was_training, grads = model.training, [p.requires_grad for p in model.parameters()]
    model.train()
    for p in model.parameters():
        p.requires_grad_(train_network)
    try:
        with torch.random.fork_rng(devices=[]), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            _forward_backward(model, example_batch(model, size, device, side), dtype, backward=False)
    finally:
        model.puzzle_emb.clear_batch()
        model.train(was_training)
        for p, g in zip(model.parameters(), grads):
            p.requires_grad_(g)
    # Parameters (and their autocast copies) are saved too but do not grow with the batch.
    return sum(seen.values())


def activation_bytes_per_sample(
    model: TRM, dtype: torch.dtype, train_network: bool = True, side: int | None = None
) -> float:
    """Saved-activation bytes one more sample adds to a training step (difference of 2 and 1),
    on the model's canvas or a `side` x `side` one."""
    two = saved_activation_bytes(model, 2, dtype, train_network, side)
    return float(two - saved_activation_bytes(model, 1, dtype, train_network, side))


def carry_bytes_per_sample(model: TRM, dtype: torch.dtype, side: int | None = None) -> float:
    """y and z of one sample on the model's canvas (or `side`), held for the current and the
    next step."""
    cfg = model.config
    size = 2 if dtype == torch.bfloat16 else 4
    return 2 * 2 * (cfg.puzzle_emb_len + (side or cfg.canvas) ** 2) * cfg.hidden_size * size


def state_bytes(model: TRM) -> float:
    """Weights, gradients, two optimiser moments and the EMA (fp32), plus the puzzle table."""
    params = sum(p.numel() for p in model.parameters())
    return 5 * 4 * params + model.puzzle_emb.weight.numel() * model.puzzle_emb.weight.element_size()


def estimate_step_memory(
    model: TRM, dtype: torch.dtype, train_network: bool = True, side: int | None = None
) -> StepMemory:
    """The memory model of a GPU step from CPU arithmetic: saved activations counted on the
    real shapes, the model's canvas or `side` (gpu_budget_for takes the CUDA context off the card)."""
    per_sample = activation_bytes_per_sample(model, dtype, train_network, side)
    return StepMemory(state_bytes(model), per_sample, carry_bytes_per_sample(model, dtype, side))


def measure_step_memory(
    model: TRM, dtype: torch.dtype, sizes: tuple[int, int] = (2, 8), side: int | None = None
) -> StepMemory:
    """Peak allocated bytes of a real forward and backward at two micro-batch sizes, on CUDA, on
    the model's canvas or on a `side` x `side` one.

    The model's weights, RNG and puzzle table are left as they were: nothing is updated.
    """
    device = next(model.parameters()).device
    peaks = []
    with torch.random.fork_rng(devices=[device]):
        for size in sizes:
            model.zero_grad(set_to_none=True)
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            _forward_backward(model, example_batch(model, size, device, side), dtype)
            torch.cuda.synchronize(device)
            peaks.append(torch.cuda.max_memory_allocated(device))
            model.zero_grad(set_to_none=True)
            model.puzzle_emb.clear_batch()
    per_sample = max((peaks[1] - peaks[0]) / (sizes[1] - sizes[0]), 1.0)
    fixed = peaks[0] - per_sample * sizes[0]
    # Adam's moments and the EMA do not exist yet at the first step: count them in.
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return StepMemory(fixed + 3 * params, per_sample, carry_bytes_per_sample(model, dtype, side))


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


def peak_live_bytes(fn) -> int:
    """The most bytes of tensors alive at once while fn() runs (tensors made inside fn only).

    A CPU stand-in for CUDA's peak-memory counter: every op's outputs are counted until the
    last reference to them goes.
    """
    import weakref

    from torch.utils._python_dispatch import TorchDispatchMode

    live = {"now": 0, "peak": 0}
    storages: dict[int, int] = {}

    def release(ptr: int) -> None:
        live["now"] -= storages.pop(ptr, 0)

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in storages:
                    ptr = t.untyped_storage().data_ptr()
                    if ptr == 0:
                        continue
                    storages[ptr] = t.untyped_storage().nbytes()
                    live["now"] += storages[ptr]
                    live["peak"] = max(live["peak"], live["now"])
                    weakref.finalize(t, release, ptr)
            return out

    with Count():
        fn()
    return live["peak"]


def inference_bytes_per_sample(model: TRM, dtype: torch.dtype) -> float:
    """Peak bytes one more sample adds to a forward of all N_sup steps without gradients.

    Every step holds the same tensors, so one recursion of one step has the same peak: the
    count runs on a copy of that depth.
    """
    model = shallow_copy(model, n_supervision=1, n_recursions=1, n_latent_steps=1)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()

    def peak(size: int) -> int:
        batch = example_batch(model, size, device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            return peak_live_bytes(lambda: model.predict(batch["inputs"], batch["puzzle_ids"]))

    try:
        return float(peak(2) - peak(1))
    finally:
        model.train(was_training)
