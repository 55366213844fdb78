"""`arcsolver plan` (or `pretrain --plan`): what a run would do and need, without training.

The data (tasks, versions, examples), the length in the recipe's unit and in steps, the memory a
step needs per sample, and the micro-batch that would fit GPUs of given sizes. Activation memory
is counted on this machine on the real shapes (see arcsolver/engine/memory.py): a GPU run
measures its own at start.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path

import torch

from arcsolver.config import PretrainConfig
from arcsolver.data.stream import build_puzzles, trainable_pairs
from arcsolver.engine.flops import expected_flops_per_step, flops_per_sample, format_flops
from arcsolver.engine.memory import (
    GiB,
    activation_bytes_per_sample,
    estimate_step_memory,
    gpu_budget_for,
    inference_bytes_per_sample,
    micro_batches,
)
from arcsolver.inputs import read_json_lines
from arcsolver.model.trm import TRM
from arcsolver.train.tasks import schedule, select_tasks, task_counts, training_stream

MiB = 2**20


def canvases(cfg: PretrainConfig, stream) -> str:
    """The layout in a line: the fixed canvas, or each side with its share of the batches."""
    sides = cfg.canvas_sides()
    if sides is None:
        return f"fixed {cfg.model.canvas}x{cfg.model.canvas} ({cfg.model.positions})"
    shares = ", ".join(f"{side}: {p:.0%}" for side, p in zip(stream.sides.tolist(), stream.probabilities))
    return f"sized, batches per side {shares} (the memory per sample below is the largest side's)"


def steady_samples_per_s(metrics: Path) -> float | None:
    """The median samples/s of a run's metrics.jsonl records after the first (whose window holds
    the start-up: data, compilation), or None with fewer than two such records."""
    rates = []
    for _, _, record in read_json_lines(metrics):
        if isinstance(record, dict) and isinstance(record.get("samples_per_s"), (int, float)):
            rates.append(float(record["samples_per_s"]))
    return statistics.median(rates[1:]) if len(rates) >= 2 else None


def plan(
    cfg: PretrainConfig,
    gpu_sizes_gb: list[float],
    processes: int = 1,
    say: Callable[[str], None] | None = None,
    samples_per_s: float | None = None,
) -> list[str]:
    """The lines of a run's plan: data, schedule, memory per sample, micro-batch per GPU size, and
    with a measured rate (samples/s of this recipe on the user's hardware) the run's length in hours.

    say(line) hears what it is doing before each slow part: building every task's augmented
    versions takes over a minute on two CPU cores for the full recipes, and nothing else shows.
    """
    say = say or (lambda text: None)
    train, heldout = select_tasks(cfg)
    say(
        f"building up to {cfg.data.n_augmentations} augmented versions of each of {len(train) + len(heldout)} "
        "tasks (each hashed to drop duplicates; a minute or more for the full recipes on a few CPU cores)"
    )
    puzzles = build_puzzles(train + heldout, cfg.data.n_augmentations, cfg.run.seed, cfg.data.fixed_colours)
    stream = training_stream(cfg, puzzles, trainable_pairs(train, heldout))
    total = cfg.total_steps(stream.examples_per_epoch)
    # Autocast precision as on a GPU (bf16 unless the recipe says float32).
    dtype = torch.float32 if cfg.run.dtype == "float32" else torch.bfloat16
    model = TRM(cfg.model, n_puzzle_ids=len(puzzles) + 1)
    say("measuring the memory per sample of a step on this machine, on the real shapes")
    step = estimate_step_memory(model, dtype)
    embeddings_only = activation_bytes_per_sample(model, dtype, train_network=False)
    inference = inference_bytes_per_sample(model, dtype)
    local = cfg.optim.global_batch_size // processes
    n_params = sum(p.numel() for p in model.parameters())
    lines = [
        f"data: {task_counts(train, heldout)}; {len(puzzles)} versions (puzzles), "
        f"{len(stream)} examples over all versions",
        f"schedule: {schedule(cfg, stream, total)}",
        f"canvases: {canvases(cfg, stream)}",
        f"model: {n_params / 1e6:.2f}M parameters, puzzle table {model.puzzle_emb.n_rows} rows "
        f"({model.puzzle_emb.weight.numel() * 4 / GiB:.2f} GiB); {str(dtype).removeprefix('torch.')} autocast",
        f"memory per sample: training {step.per_sample / MiB:.0f} MiB, embeddings only {embeddings_only / MiB:.0f} MiB, "
        f"inference {inference / MiB:.1f} MiB, carry {step.carry_per_sample / MiB:.1f} MiB; "
        f"fixed {step.fixed / GiB:.2f} GiB (weights, gradients, Adam, EMA, puzzle table)",
    ]
    lines.append(compute(cfg, model, stream, total))
    if samples_per_s:
        hours = total * cfg.optim.global_batch_size / samples_per_s / 3600
        lines.append(
            f"time: {hours:,.1f} hours for {total} steps of {cfg.optim.global_batch_size} at the measured "
            f"{samples_per_s:,.0f} samples/s, {hours * processes:,.1f} GPU-hours over {processes} process(es)"
        )
    sides = cfg.canvas_sides()
    if sides is not None and len(sides) > 1:
        lines += sized_micro_batches(model, dtype, sides, gpu_sizes_gb, local)
        return lines
    for gb in gpu_sizes_gb:
        micro = step.micro_batch(gpu_budget_for(gb), local)
        n_micro = -(-local // micro)
        fits = step.peak(micro, local) <= gpu_budget_for(gb)
        lines.append(
            f"on a {gb:g} GB GPU: micro-batch {micro} of {local} per process, {n_micro} forward/backward per step"
            + (f", about {step.peak(micro, local) / GiB:.1f} GiB" if fits else " - does NOT fit even at 1 sample")
        )
    return lines


def compute(cfg: PretrainConfig, model: TRM, stream, total: int) -> str:
    """The training FLOPs (forward and backward, all processes) of a step on each canvas side and
    of the whole run, counted from the model (engine/flops.py)."""
    sides = cfg.canvas_sides()
    shares = {cfg.model.canvas: 1.0} if sides is None else dict(zip(stream.sides.tolist(), stream.probabilities))
    per_sample = flops_per_sample(model, list(shares))
    batch = cfg.optim.global_batch_size
    per_step = expected_flops_per_step(per_sample, shares, batch)
    each = ", ".join(f"{side}: {format_flops(f * batch)}" for side, f in per_sample.items())
    line = f"compute: {format_flops(per_step)} per step" + (f" (per canvas side {each})" if len(shares) > 1 else "")
    line += f", about {format_flops(per_step * total)} for the run's {total} steps"
    if cfg.run.flops:
        steps = min(total, int(cfg.run.flops // per_step))
        line += f"; run.flops stops it at {format_flops(cfg.run.flops)}, about step {steps}"
    return line


def sized_micro_batches(model: TRM, dtype, sides, gpu_sizes_gb: list[float], local: int) -> list[str]:
    """A line per GPU size: the micro-batch of each canvas side (and its passes per step), with
    every side's carry held at once."""
    memories = {side: estimate_step_memory(model, dtype, side=side) for side in sides}
    carries = sum(m.carry_per_sample for m in memories.values()) * local
    lines = []
    for gb in gpu_sizes_gb:
        budget = gpu_budget_for(gb)
        chosen = micro_batches(memories, budget, local)
        fits = all(memories[s].fixed + carries + memories[s].per_sample * m <= budget for s, m in chosen.items())
        per_side = ", ".join(f"{side}: {micro} ({-(-local // micro)})" for side, micro in chosen.items())
        lines.append(
            f"on a {gb:g} GB GPU: micro-batch per canvas side (passes per step) of {local} per process: {per_side}"
            + ("" if fits else " - does NOT fit even at 1 sample")
        )
    return lines
