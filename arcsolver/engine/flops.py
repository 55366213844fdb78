"""Training compute in floating-point operations, counted from the model itself.

One optimiser step is one supervision step of every sample: T recursions, the last with its
graph, and the backward of that last one. torch's FlopCounterMode counts the operations of one
such step (forward and backward) on one sample of each canvas side; every operation it counts
(matmuls, attention) is linear in the batch, so a step of B samples costs B times that
(tests/engine/test_flops.py checks it). The counts are global: a step's FLOPs are those of the whole
global batch, whatever the number of processes. torch counts the attention kernels of CUDA but
not the CPU's; counting the CPU's with the same formulas makes a run's FLOPs the same on either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from arcsolver.engine.memory_model import _forward_backward, example_batch
from arcsolver.model.config import TRMConfig
from arcsolver.model.trm import TRM


def flop_counter() -> FlopCounterMode:
    """torch's FlopCounterMode, also counting the CPU's fused attention as torch counts CUDA's."""
    aten = torch.ops.aten

    # FlopCounterMode passes the shapes of the op's arguments (query, key, value, ...).
    def forward(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query, key, value)

    def backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
        return sdpa_backward_flop_count(grad_out, query, key, value)

    cpu_attention = {
        aten._scaled_dot_product_flash_attention_for_cpu: forward,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: backward,
    }
    return FlopCounterMode(display=False, custom_mapping=cpu_attention)


def step_flops(model: TRM, side: int | None = None, batch_size: int = 1) -> int:
    """FLOPs of one training step (a supervision step, forward and backward) of batch_size
    samples on a side x side canvas (default: the model's). Counted in float32 on the model's
    device; the model's weights, gradients, puzzle table and RNG are left as they were."""
    device = next(model.parameters()).device
    grads = {p: p.grad for p in model.parameters()}
    was_training = model.training
    model.train()
    counter = flop_counter()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), counter:
            _forward_backward(model, example_batch(model, batch_size, device, side), torch.float32)
    finally:
        model.puzzle_emb.clear_batch()
        for p, g in grads.items():
            p.grad = g
        model.train(was_training)
    return int(counter.get_total_flops())


def query_flops(
    model: TRM, side: int | None = None, n_recursions: int | None = None, n_supervision: int | None = None
) -> int:
    """FLOPs of answering one query on a side x side canvas (default: the model's): predict's N_sup
    supervision steps of T recursions, no gradients (n_recursions, n_supervision: as predict's).
    Without gradients every recursion is the same work: one and two are counted, the rest is their
    difference."""
    batch = example_batch(model, 1, next(model.parameters()).device, side)

    def counted(recursions: int) -> int:
        with flop_counter() as counter:
            model.predict(batch["inputs"], batch["puzzle_ids"], recursions, 1)
        return int(counter.get_total_flops())

    one, two = counted(1), counted(2)
    recursions = (n_recursions or model.config.n_recursions) * (n_supervision or model.config.n_supervision)
    return one + (recursions - 1) * (two - one)


def shapes_only(config: TRMConfig) -> TRM:
    """A TRM of config's shapes on the meta device, for step_flops and query_flops: no weights and no
    arithmetic, so a paper-sized model counts in a second where the CPU computes its step for tens.
    Its attention counts as the unfused matmuls (the meta device has no fused kernel), whose
    backward does not recompute the scores: a training step counts 2% less for the paper's model
    on 30x30, inference the same."""
    with torch.device("meta"):
        return TRM(config, n_puzzle_ids=2)


def flops_per_sample(model: TRM, sides: Sequence[int]) -> dict[int, int]:
    """A training step's FLOPs per sample, for each canvas side."""
    return {side: step_flops(model, side) for side in sides}


WALKED_STEPS = 100_000  # steps_in_budget counts this many exactly, then extrapolates


def cumulative_flops(per_sample: dict[int, int], side_of: Callable[[int], int], steps: int, batch: int) -> int:
    """The global FLOPs of a run's first `steps` steps of `batch` samples, where step k draws
    its batch on the canvas side_of(k)."""
    return sum(per_sample[side_of(k)] for k in range(steps)) * batch


def steps_in_budget(
    per_sample: dict[int, int], side_of: Callable[[int], int], step: int, flops: int, budget: float, batch: int
) -> int:
    """The step a run at `step` with `flops` spent ends at under a FLOPs budget: the last step
    whose cumulative count stays within it. Walked step by step for up to WALKED_STEPS steps,
    then extrapolated at the walked steps' mean (the sides' draws average out long before)."""
    spent, k = flops, step
    while k - step < WALKED_STEPS:
        cost = per_sample[side_of(k)] * batch
        if spent + cost > budget:
            return k
        spent, k = spent + cost, k + 1
    return k + int((budget - spent) / ((spent - flops) / WALKED_STEPS))


def expected_flops_per_step(per_sample: dict[int, int], shares: dict[int, float], batch: int) -> float:
    """The mean FLOPs of a step of `batch` samples, its side drawn with the given shares."""
    return sum(per_sample[side] * share for side, share in shares.items()) * batch


def format_flops(flops: float) -> str:
    """FLOPs in engineering notation: 1.23e15 reads 1.23 PFLOP."""
    for scale, unit in ((1e18, "EFLOP"), (1e15, "PFLOP"), (1e12, "TFLOP"), (1e9, "GFLOP"), (1e6, "MFLOP")):
        if flops >= scale:
            return f"{flops / scale:.3g} {unit}"
    return f"{flops:.3g} FLOP"
