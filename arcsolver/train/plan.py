"""`arcsolver plan` (or `pretrain --plan`): what a run would do and need, without training.

The data (tasks, versions, examples), the length in the recipe's unit and in steps, the memory a
step needs per sample, and the micro-batch that would fit GPUs of given sizes. Activation memory
is counted on this machine on the real shapes (see arcsolver/engine/memory_model.py): a GPU run
measures its own at start.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from arcsolver.config import PretrainConfig
from arcsolver.data.stream import build_puzzles, trainable_pairs
from arcsolver.engine.flops import expected_flops_per_step, flops_per_sample, format_flops
from arcsolver.engine.memory import gpu_budget_for, micro_batches
from arcsolver.engine.memory_model import (
    GiB,
    activation_bytes_per_sample,
    estimate_step_memory,
    inference_bytes_per_sample,
)
from arcsolver.errors import ArcsolverError
from arcsolver.model.trm import TRM
from arcsolver.reader import read_json_lines
from arcsolver.recipes import load_recipe, resumed_settings, setting_values
from arcsolver.train.tasks import schedule, select_tasks, task_counts, training_stream

MiB = 2**20

# A rate below one sample in a thousand seconds (a paper-sized step on a CPU core takes a few
# seconds per sample) or above a billion is no measurement of a run: a record that was tampered
# with, or a clock that failed.
MIN_SAMPLES_PER_S, MAX_SAMPLES_PER_S = 1e-3, 1e9
# The settings that shape a step's work: a rate measured under others is no rate of this recipe.
RATE_SETTINGS = ("model.", "data.", "optim.global_batch_size", "optim.optimizer", "run.dtype")


@dataclass(frozen=True)
class ReferenceRate:
    """A rate measured on named hardware (BENCHMARKS.md), for the plan of the recipe it measured."""

    recipe: str
    samples_per_s: float
    hardware: str


# `pretrain --recipe arc1` on one H100 80GB, bf16, compiled: BENCHMARKS.md, "the paper's run".
H100_ARC1 = ReferenceRate("arc1", 836.0, "one H100 80GB (bf16, compiled; BENCHMARKS.md)")


def canvases(cfg: PretrainConfig, stream) -> str:
    """The layout in a line: the fixed canvas, or each side with its share of the batches."""
    sides = cfg.canvas_sides()
    if sides is None:
        return f"fixed {cfg.model.canvas}x{cfg.model.canvas} ({cfg.model.positions})"
    shares = ", ".join(f"{side}: {p:.0%}" for side, p in zip(stream.sides.tolist(), stream.probabilities))
    return f"sized, batches per side {shares} (the memory per sample below is the largest side's)"


def rate_records(metrics: Path) -> list[tuple[int, dict]]:
    """(line number, record) of every record of a run's metrics.jsonl that has a samples_per_s;
    a rate that is no measurement (not a positive, finite number within bounds) is refused in one
    line naming its record."""
    records = []
    for number, _, record in read_json_lines(metrics):  # a line that is not JSON is a ValueError here
        if not isinstance(record, dict) or "samples_per_s" not in record:
            continue
        rate = record["samples_per_s"]
        if (
            isinstance(rate, bool)
            or not isinstance(rate, (int, float))
            or not math.isfinite(rate)
            or not MIN_SAMPLES_PER_S <= rate <= MAX_SAMPLES_PER_S
        ):
            raise ArcsolverError(
                f"{metrics}: line {number} (step {str(record.get('step'))[:20]}) has samples_per_s {str(rate)[:40]}, "
                f"not a rate between {MIN_SAMPLES_PER_S:g} and {MAX_SAMPLES_PER_S:g} samples/s; "
                "measure again with a fresh run"
            )
        records.append((number, record))
    return records


def steady_samples_per_s(metrics: Path) -> float | None:
    """The median samples/s of a run's metrics.jsonl records after the first (whose window holds
    the start-up: data, compilation), or None with fewer than two such records."""
    rates = [float(record["samples_per_s"]) for _, record in rate_records(metrics)]
    return statistics.median(rates[1:]) if len(rates) >= 2 else None


def measured_rate(run_dir: Path, cfg: PretrainConfig) -> float:
    """The steady samples/s of the run in run_dir, refused in one line where it is no rate of
    cfg's run: another model, data or batch (its config.json), another kind of device (its
    records hold the GPU's memory on CUDA only), or too few records."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise ArcsolverError(
            f"--rate-from {run_dir}: no config.json, so not a run whose rate is known to be this recipe's; "
            "give a run directory of `arcsolver pretrain`"
        )
    measured = setting_values(resumed_settings(run_dir / "config.json", []))
    planned = setting_values(cfg)
    differ = [k for k in planned if k.startswith(RATE_SETTINGS) and measured.get(k) != planned[k]]
    if differ:
        shown = ", ".join(
            f"{k} {json.dumps(measured.get(k))} (this recipe: {json.dumps(planned[k])})" for k in differ[:4]
        )
        more = f" and {len(differ) - 4} more" if len(differ) > 4 else ""
        raise ArcsolverError(
            f"--rate-from {run_dir}: a run of another model or data ({shown}{more}), whose rate is not this recipe's; "
            "measure a short run of this recipe (run.time_limit_s) on the hardware"
        )
    records = [record for _, record in rate_records(run_dir / "metrics.jsonl")]
    rate = steady_samples_per_s(run_dir / "metrics.jsonl")
    if rate is None:
        raise ArcsolverError(
            f"--rate-from {run_dir}: no steady rate in its metrics.jsonl (it needs two progress records "
            "or more): train it for longer, or lower run.log_every"
        )
    on_gpu = any("gpu_peak_gib" in record for record in records)
    if on_gpu != (cfg.run.device != "cpu"):
        where, plan_for = ("a GPU", "a CPU (run.device 'cpu')") if on_gpu else ("a CPU", "GPUs")
        raise ArcsolverError(
            f"--rate-from {run_dir}: its rate was measured on {where}, and this plan is for {plan_for}; "
            "measure a short run on the hardware the plan is for"
        )
    return rate


def reference_rate(cfg: PretrainConfig) -> ReferenceRate | None:
    """The measured reference rate of cfg's recipe, where one exists (the settings that shape a
    step are the measured recipe's)."""
    reference = load_recipe(PretrainConfig, "pretrain", H100_ARC1.recipe)
    measured, planned = setting_values(reference), setting_values(cfg)
    same = all(measured[k] == planned[k] for k in planned if k.startswith(RATE_SETTINGS))
    return H100_ARC1 if same and cfg.run.device != "cpu" else None


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
    lines.append(time_line(cfg, total, processes, samples_per_s))
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


def time_line(cfg: PretrainConfig, total: int, processes: int, samples_per_s: float | None) -> str:
    """The run's hours: at the measured rate, else at the reference rate measured for this recipe
    (named as such), else a line saying that no measured rate exists."""
    batch = cfg.optim.global_batch_size
    if samples_per_s:
        hours = total * batch / samples_per_s / 3600
        shown = f"{samples_per_s:,.0f}" if samples_per_s >= 10 else f"{samples_per_s:.3g}"
        return (
            f"time: {hours:,.1f} hours for {total} steps of {batch} at the measured "
            f"{shown} samples/s, {hours * processes:,.1f} GPU-hours over {processes} process(es)"
        )
    reference = reference_rate(cfg)
    if reference is None:
        return (
            f"time: no measured rate for this recipe (the reference, {H100_ARC1.samples_per_s:g} samples/s on "
            f"{H100_ARC1.hardware}, is the {H100_ARC1.recipe} recipe's); --rate-from RUN, a short run of this "
            "recipe on your hardware, gives the hours"
        )
    hours = total * batch / reference.samples_per_s / 3600
    return (
        f"time: {hours:,.1f} hours for {total} steps of {batch} at the reference rate {reference.samples_per_s:g} "
        f"samples/s measured for this recipe on {reference.hardware}, not on this machine; --rate-from RUN gives yours"
    )


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
