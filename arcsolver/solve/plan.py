"""`arcsolver plan --submit RECIPE` (and `kaggle check`): the hours a submit recipe would take on
the competition's machine (4 L4 GPUs of 24 GB) for the 120 ARC-AGI-2 evaluation tasks, priced for
the checkpoints that will run, without solving anything.

The rates come from one measured solve on an H100 (BENCHMARKS.md, "GPU: memory per sample, the
micro-batch chosen, the paper's run and the Kaggle solve", `benchmarks/gpu.sh`): `solve --recipe
kaggle` of the first ten ARC-AGI-2 evaluation tasks, 200 adaptation steps of the recipe of then,
by a 124-step checkpoint of `pretrain --recipe arc1` of then: the paper-sized TRM with rope1d
positions, every example on the 30x30 canvas, T = 3, n = 4, N_sup = 16. Each checkpoint is priced
from there by its FLOPs per sample (counted on its shapes), its layout by the H100's measured ratio
of grid-sized canvases to 30x30, and the whole scaled to an L4 by the ratio of the two cards' dense
bf16 throughput: no L4 has been measured. The plan says all of this.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from arcsolver.config import SolveConfig
from arcsolver.data.loaders import load_tasks
from arcsolver.engine.flops import query_flops, shapes_only, step_flops
from arcsolver.engine.memory import gpu_budget_for
from arcsolver.engine.memory_model import GiB, StepMemory, estimate_step_memory
from arcsolver.evaluation.canvas import model_canvases
from arcsolver.model.config import TRMConfig
from arcsolver.model.trm import TRM

# BENCHMARKS.md: 200 adaptation steps of 96 in 47 s (the first 50 on the embeddings alone, the recipe
# of then); 64 versions of the 16 test inputs answered in 22 s. The first 10 arc2/evaluation tasks.
MEASURED_TASKS, MEASURED_TESTS = 10, 16
MEASURED_STEPS, MEASURED_BATCH, MEASURED_ADAPT_S = 200, 96, 47
MEASURED_VERSIONS, MEASURED_INFER_S = 64, 22
H100_ADAPT_SAMPLES_PER_S = MEASURED_STEPS * MEASURED_BATCH / MEASURED_ADAPT_S
H100_QUERIES_PER_S = MEASURED_VERSIONS * MEASURED_TESTS / MEASURED_INFER_S
# The checkpoint that solve ran: 124 steps of the arc1 recipe of then, the paper-sized TRM with rope1d
# positions on the one 30x30 canvas.
MEASURED_MODEL, MEASURED_CHECKPOINT_STEPS = TRMConfig(positions="rope1d", canvas=30), 124
# H100, bf16, ARC-AGI-2 evaluation pairs, the paper-sized rope2d TRM on grid-sized canvases over the
# same on 30x30 (BENCHMARKS.md, "Grid-sized canvases: the throughput ceiling"): training 541 / 435
# examples/s (compiled), inference 78.2 / 49.8.
SIZED_ADAPT_SPEEDUP = 541 / 435
SIZED_INFER_SPEEDUP = 78.2 / 49.8
# Dense bf16 tensor throughput, L4 over H100 SXM (121 over 989 TFLOPS, the vendor's sheets).
L4_OVER_H100 = 121 / 989
L4_GB, L4_COUNT, BUDGET_HOURS = 24, 4, 12
PLAN_SET = "arc2/evaluation"
MiB = 2**20


@dataclass(frozen=True)
class PlannedCheckpoint:
    """A checkpoint the solve runs, by what prices it: its name (a path or a bundle's folder) and shapes."""

    name: str
    model: TRMConfig


# Without a checkpoint: the paper-sized TRM with rope2d positions (arcsolver's own recipes).
PAPER_ROPE2D = PlannedCheckpoint("(none given: the paper-sized TRM)", TRMConfig(positions="rope2d"))


def checkpoints_to_plan(paths: list[str | Path], names: list[str] | None = None) -> list[PlannedCheckpoint]:
    """The checkpoints (or runs, their newest) at paths, by their settings alone (no weights read)."""
    from arcsolver.engine.pretrained import checkpoint_config

    names = names or [str(path) for path in paths]
    return [PlannedCheckpoint(name, checkpoint_config(path)[0].model) for name, path in zip(names, paths)]


def largest_side(model: TRMConfig) -> int:
    """The largest canvas the solve runs the model on: its one canvas (rope1d), else the largest grid's."""
    canvases = model_canvases(model)
    return canvases if isinstance(canvases, int) else max(canvases)


def layout(model: TRMConfig) -> str:
    """How the solve lays the model's examples out, in words."""
    if isinstance(model_canvases(model), int):
        side = model.canvas
        return f"{model.positions}, every example on its one {side}x{side} canvas (the reference's layout)"
    return f"{model.positions}, grid-sized canvases up to {largest_side(model)}x{largest_side(model)}"


@functools.cache
def h100_flops_per_s() -> tuple[float, float]:
    """What the measured H100 solve did per second, in FLOPs (adaptation, inference): its rates times
    the measured model's work per sample."""
    measured = shapes_only(MEASURED_MODEL)
    return (
        H100_ADAPT_SAMPLES_PER_S * step_flops(measured, MEASURED_MODEL.canvas),
        H100_QUERIES_PER_S * query_flops(measured, MEASURED_MODEL.canvas),
    )


def l4_rates(cfg: SolveConfig, model: TRMConfig) -> tuple[float, float]:
    """A model's adaptation samples/s and inference queries/s on an L4 under a recipe: the H100's
    FLOPs per second over the model's FLOPs per sample on its largest canvas (adaptation at its own
    T, inference at the recipe's T x N_sup), sped up on grid-sized canvases as measured, times the
    L4's share of an H100."""
    adapt_flops_per_s, query_flops_per_s = h100_flops_per_s()
    side, shapes = largest_side(model), shapes_only(model)
    T = cfg.infer.n_recursions or model.n_recursions
    n_sup = cfg.infer.n_supervision or model.n_supervision
    adapt = adapt_flops_per_s * L4_OVER_H100 / step_flops(shapes, side)
    query = query_flops_per_s * L4_OVER_H100 / query_flops(shapes, side, T, n_sup)
    if isinstance(model_canvases(model), int):
        return adapt, query
    return adapt * SIZED_ADAPT_SPEEDUP, query * SIZED_INFER_SPEEDUP


def solve_plan(cfg: SolveConfig, checkpoints: list[PlannedCheckpoint] | None = None) -> list[str]:
    """The lines of a submit recipe's plan on 4 L4s for the ARC-AGI-2 evaluation tasks: per
    worker (one per GPU, every 4th task) and per checkpoint (an ensemble's answer one after the
    other), adaptation and inference hours and the memory of an adaptation step; then the total
    and the basis of the rates. checkpoints: what will run (default: the paper-sized rope2d TRM)."""
    checkpoints = checkpoints or [PAPER_ROPE2D]
    tasks = list(load_tasks(PLAN_SET))
    workers = L4_COUNT if cfg.run.workers == "auto" else min(cfg.run.workers, L4_COUNT)
    shards = [tasks[k::workers] for k in range(workers)]
    busiest = max(shards, key=lambda shard: sum(len(t.test) for t in shard))
    tests = sum(len(t.test) for t in busiest)
    versions = min(cfg.data.n_augmentations, cfg.infer.max_versions or cfg.data.n_augmentations)
    queries = tests * versions * (1 + cfg.infer.rollouts)
    n_rows = 2 + sum(len(t.train) for t in busiest) * cfg.data.n_augmentations
    batch = cfg.optim.global_batch_size

    lines = [
        f"tasks: the {len(tasks)} {PLAN_SET} tasks over {workers} workers, one per L4 (every {workers}th task); "
        f"the busiest has {len(busiest)} tasks, {tests} test inputs"
    ]
    priced: dict[str, tuple[float, float, StepMemory]] = {}  # an ensemble's members mostly share their shapes
    total_h = 0.0
    for planned in checkpoints:
        model, name, side = planned.model, planned.name, largest_side(planned.model)
        key = model.model_dump_json()
        if key not in priced:
            memory = estimate_step_memory(TRM(model, n_puzzle_ids=n_rows), torch.bfloat16, side=side)
            priced[key] = (*l4_rates(cfg, model), memory)
        adapt_rate, query_rate, memory = priced[key]
        adapt_h = cfg.adapt.steps * batch / adapt_rate / 3600
        infer_h = queries / query_rate / 3600
        total_h += adapt_h + infer_h
        n_params = sum(p.numel() for p in shapes_only(model).parameters())
        micro = memory.micro_batch(gpu_budget_for(L4_GB), batch)
        lines += [
            f"checkpoint {name}: {layout(model)}; {n_params / 1e6:.2f}M parameters ({model.n_layers} layers "
            f"of {model.hidden_size}, n = {model.n_latent_steps}, T = {model.n_recursions})",
            f"adaptation ({name}): {cfg.adapt.steps} steps of {batch} per worker at about {adapt_rate:.0f} "
            f"samples/s on an L4 = {adapt_h:.2f} hours",
            f"inference ({name}): {queries} queries per worker ({versions} versions x {1 + cfg.infer.rollouts} runs "
            f"of each of {tests} test inputs) at T = {cfg.infer.n_recursions or model.n_recursions}, "
            f"N_sup = {cfg.infer.n_supervision or model.n_supervision}, about {query_rate:.1f} queries/s "
            f"= {infer_h:.2f} hours",
            f"memory ({name}, arcsolver's memory model, counted here): an adaptation step holds "
            f"{memory.per_sample / MiB:.0f} MiB per sample on a {side}x{side} canvas beside "
            f"{memory.fixed / GiB:.2f} GiB of weights, optimiser and puzzle rows: micro-batch {micro} of "
            f"{batch} on a {L4_GB} GB L4",
        ]
    ensemble = len(checkpoints)
    lines += [
        f"total: {total_h:.2f} hours per worker"
        + (f" for the {ensemble} checkpoints of the ensemble, one after the other" if ensemble > 1 else "")
        + f", the workers in parallel: {total_h / BUDGET_HOURS:.0%} of the {BUDGET_HOURS}-hour budget",
        f"basis: one solve on an H100 under a 24 GB cap (BENCHMARKS.md, `benchmarks/gpu.sh`): the first "
        f"{MEASURED_TASKS} {PLAN_SET} tasks ({MEASURED_TESTS} test inputs), {MEASURED_STEPS} adaptation steps of "
        f"{MEASURED_BATCH} (the recipe of then, its first quarter on the embeddings alone) in {MEASURED_ADAPT_S} s = "
        f"{H100_ADAPT_SAMPLES_PER_S:.0f} samples/s and {MEASURED_VERSIONS} versions of each test input in "
        f"{MEASURED_INFER_S} s = {H100_QUERIES_PER_S:.1f} queries/s at T = {MEASURED_MODEL.n_recursions}, "
        f"N_sup = {MEASURED_MODEL.n_supervision}, by a {MEASURED_CHECKPOINT_STEPS}-step checkpoint of the "
        f"paper-sized TRM, {layout(MEASURED_MODEL)}",
        "assumed: each checkpoint's rates are those in proportion to its FLOPs per sample (counted on its shapes: "
        "adaptation at its own T, inference at the recipe's T x N_sup); grid-sized canvases faster by the H100's "
        f"measured {SIZED_ADAPT_SPEEDUP:.2f}x (training) and {SIZED_INFER_SPEEDUP:.2f}x (inference) on "
        f"{PLAN_SET} pairs; an L4 at {L4_OVER_H100:.3f} of an H100, its share of the dense bf16 throughput "
        "(no L4 measured); a model much smaller than the paper's is bound by kernel launches and runs slower "
        "than its FLOPs say; the hidden tasks as many and as large as these",
    ]
    return lines
