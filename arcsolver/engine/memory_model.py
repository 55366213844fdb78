"""The memory model: what a training step holds, per sample and in all, and what one more sample
adds to an inference forward.

Per sample, a step keeps the activations that backward needs (the last recursion's f calls),
and the deep-supervision carry (y and z) of every sample in the local batch. The rest is fixed:
weights, gradients, optimiser moments, the EMA and the puzzle-embedding table. On CUDA we
measure a real forward and backward at two micro-batch sizes and fit a line; on a CPU we count
the bytes autograd saves, which is what `--plan` reports for a GPU it has not seen.
"""

from __future__ import annotations

import contextlib
import gc
from dataclasses import dataclass

import torch

from arcsolver.model.loss import trm_loss
from arcsolver.model.trm import TRM

GiB = 2**30


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
