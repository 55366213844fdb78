"""`arcsolver plan --submit RECIPE`: the hours a submit recipe would take on the competition's
machine (4 L4 GPUs of 24 GB) for the 120 ARC-AGI-2 evaluation tasks, without solving anything.

The rates are measured ones (BENCHMARKS.md, "GPU: memory per sample, the micro-batch chosen, the
paper's run and the Kaggle solve": `solve --recipe kaggle` of ten ARC-AGI-2 evaluation tasks on an
H100, bf16, the paper-sized rope2d TRM at T = 3, n = 4, N_sup = 16), scaled to an L4 by the ratio
of the two cards' dense bf16 throughput: no L4 has been measured. The plan says so.
"""

from __future__ import annotations

import torch

from arcsolver.config import SolveConfig
from arcsolver.data.loaders import load_tasks
from arcsolver.engine.memory import GiB, estimate_step_memory, gpu_budget_for
from arcsolver.model.trm import TRM, TRMConfig

# BENCHMARKS.md: 200 adaptation steps of 96 in 47 s; 64 versions of 16 test inputs answered in 22 s.
H100_ADAPT_SAMPLES_PER_S = 200 * 96 / 47
H100_QUERIES_PER_S = 64 * 16 / 22
MEASURED_DEPTH = 3 * 16  # T x N_sup of the measured inference
# Dense bf16 tensor throughput, L4 over H100 SXM (121 over 989 TFLOPS, the vendor's sheets).
L4_OVER_H100 = 121 / 989
L4_GB, L4_COUNT, BUDGET_HOURS = 24, 4, 12
PLAN_SET = "arc2/evaluation"
MiB = 2**20


def solve_plan(cfg: SolveConfig, model: TRMConfig | None = None) -> list[str]:
    """The lines of a submit recipe's plan on 4 L4s for the ARC-AGI-2 evaluation tasks: per
    worker (one per GPU, every 4th task), adaptation and inference hours, the memory of an
    adaptation step, and what it assumed. model: the checkpoint's shape (default: the paper's)."""
    model = model or TRMConfig(positions="rope2d")
    tasks = list(load_tasks(PLAN_SET))
    workers = L4_COUNT if cfg.run.workers == "auto" else min(cfg.run.workers, L4_COUNT)
    shards = [tasks[k::workers] for k in range(workers)]
    busiest = max(shards, key=lambda shard: sum(len(t.test) for t in shard))
    tests = sum(len(t.test) for t in busiest)
    ensemble = max(len(cfg.run.checkpoints), 1)
    T = cfg.infer.n_recursions or model.n_recursions
    n_sup = cfg.infer.n_supervision or model.n_supervision
    versions = min(cfg.data.n_augmentations, cfg.infer.max_versions or cfg.data.n_augmentations)
    queries = tests * versions * (1 + cfg.infer.rollouts)
    adapt_rate = H100_ADAPT_SAMPLES_PER_S * L4_OVER_H100 * 3 / model.n_recursions
    query_rate = H100_QUERIES_PER_S * L4_OVER_H100 * MEASURED_DEPTH / (T * n_sup)
    adapt_h = cfg.adapt.steps * cfg.optim.global_batch_size / adapt_rate / 3600
    infer_h = queries / query_rate / 3600
    total_h = ensemble * (adapt_h + infer_h)

    net = TRM(model, n_puzzle_ids=2 + sum(len(t.train) for t in busiest) * cfg.data.n_augmentations)
    step = estimate_step_memory(net, torch.bfloat16, side=model.canvas)  # the largest canvas
    budget = gpu_budget_for(L4_GB)
    micro = step.micro_batch(budget, cfg.optim.global_batch_size)
    lines = [
        f"tasks: the {len(tasks)} {PLAN_SET} tasks over {workers} workers, one per L4 (every {workers}th task); "
        f"the busiest has {len(busiest)} tasks, {tests} test inputs",
        f"adaptation: {cfg.adapt.steps} steps of {cfg.optim.global_batch_size} per worker at about "
        f"{adapt_rate:.0f} samples/s on an L4 = {adapt_h:.2f} hours",
        f"inference: {queries} queries per worker ({versions} versions x {1 + cfg.infer.rollouts} runs of each of "
        f"{tests} test inputs) at T = {T}, N_sup = {n_sup}, about {query_rate:.1f} queries/s = {infer_h:.2f} hours",
        f"total: {total_h:.2f} hours per worker"
        + (f" for the {ensemble} checkpoints of the ensemble, one after the other" if ensemble > 1 else "")
        + f", the workers in parallel: {total_h / BUDGET_HOURS:.0%} of the {BUDGET_HOURS}-hour budget",
        f"memory (arcsolver's memory model, counted here): an adaptation step holds {step.per_sample / MiB:.0f} MiB "
        f"per sample on a {model.canvas}x{model.canvas} canvas beside {step.fixed / GiB:.2f} GiB of weights, "
        f"optimiser and puzzle rows: micro-batch {micro} of {cfg.optim.global_batch_size} on a {L4_GB} GB L4",
        f"assumed: the rates measured on an H100 (BENCHMARKS.md: {H100_ADAPT_SAMPLES_PER_S:.0f} adaptation samples/s, "
        f"{H100_QUERIES_PER_S:.1f} queries/s at T x N_sup = {MEASURED_DEPTH}) times {L4_OVER_H100:.3f}, the L4's share "
        "of an H100's dense bf16 throughput (no L4 measured); adaptation at the checkpoint's own T "
        f"({model.n_recursions}), inference in proportion to T x N_sup; the measured rates are the paper-sized "
        "model's (512 wide, n = 4), whatever the checkpoint; the hidden tasks as many and as large as these",
    ]
    return lines
