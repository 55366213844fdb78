"""`arcsolver pretrain`: TRM's deep-supervision training loop, read top to bottom.

Each optimiser step is one supervision step of every sample in the batch: samples that halted
at the previous step are replaced by fresh ones from the stream, the others carry their y and z
on. Then: loss, backward, gradient average over processes, Adam(-atan2) on the network,
sign-SGD on the puzzle-embedding rows of the batch, EMA update, logging, checkpoints and the
held-out evaluation.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from pathlib import Path

import numpy as np
import torch

from arcsolver.atomic import atomic_write_json, atomic_write_text
from arcsolver.data.loaders import load_tasks
from arcsolver.data.task import Task
from arcsolver.errors import CheckpointError, ConfigError
from arcsolver.engine.device import cpu_has_amx, limit_gpu_memory, resolve_device, resolve_dtype  # noqa: F401
from arcsolver.engine.memory import choose_micro_batch
from arcsolver.engine.step import Stepper, to_device  # noqa: F401
from arcsolver.model.trm import TRM, Carry
from arcsolver.solve.inference import heldout_scores, predict, queries_for, vote_queries
from arcsolver.train import checkpoint as ckpt
from arcsolver.train.config import PretrainConfig
from arcsolver.train.dataset import Puzzle, TrainStream, build_puzzles, trainable_pairs
from arcsolver.train.distributed import (
    Dist,
    any_process,
    barrier,
    init_distributed,
    mean_over_processes,
    sum_over_processes,
    shutdown,
)
from arcsolver.train.optim import EMA, build_optimizer, warmup_factor


def select_tasks(cfg: PretrainConfig) -> tuple[list[Task], list[Task]]:
    """(train tasks, held-out tasks) per the recipe; a task in both is only held out."""
    fits = cfg.data.max_side or cfg.model.canvas

    def load(names: list[str]) -> list[Task]:
        out = []
        for name in names:
            tasks = [t for t in load_tasks(name) if t.max_side() <= fits]
            out.extend(tasks[: cfg.data.max_tasks])
        return out

    heldout = load(cfg.data.heldout_sets)
    heldout_ids = {t.id for t in heldout}
    # Never train on a held-out task's test pairs, even if another set repeats the task.
    train = [t for t in load(cfg.data.train_sets) if t.id not in heldout_ids]
    if not train and not heldout:
        raise ConfigError(f"no task fits a {fits}x{fits} canvas in {cfg.data.train_sets + cfg.data.heldout_sets}")
    return train, heldout


def schedule(cfg: PretrainConfig, stream: TrainStream, total_steps: int) -> str:
    """The run's length in the recipe's unit and in steps, for the first lines of a run."""
    per_epoch = f"{stream.examples_per_epoch} examples per epoch ({cfg.data.sampling} sampling)"
    if cfg.run.epochs is not None:
        return f"{cfg.run.epochs} epochs of {per_epoch} = {total_steps} steps of {cfg.optim.global_batch_size}"
    return f"{total_steps} steps of {cfg.optim.global_batch_size}, {per_epoch}"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Logger:
    """Rank 0 only: a rich progress bar and metrics.jsonl."""

    def __init__(self, run_dir: Path, total: int, start: int, enabled: bool, console=None):
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.progress = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("[bold]pretrain"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"), console=console, transient=False,
            )
            self.task = self.progress.add_task("steps", total=total, completed=start, status="")
            self.progress.start()

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def advance(self, step: int, status: str | None = None, total: int | None = None) -> None:
        if self.progress is not None:
            fields = {} if status is None else {"status": status}
            self.progress.update(self.task, completed=step, total=total, **fields)

    def print(self, text: str) -> None:
        if self.progress is not None:
            self.progress.console.print(text, highlight=False)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def evaluate_heldout(model: TRM, ema: EMA | None, puzzles: list[Puzzle], heldout: list[Task], cfg: PretrainConfig,
                     dtype, d: Dist, device: torch.device, max_versions: int | None = None) -> dict:
    """pass@1/pass@2 on the held-out test inputs, over their augmented versions, voted.

    Every process scores its own share of the tasks; the sums are combined. The versions voted
    per test input are the fewer of max_versions and eval.max_versions (None: no limit).
    """
    limits = [v for v in (max_versions, cfg.eval.max_versions) if v is not None]
    versions: dict[str, list] = {}
    for pid, puzzle in enumerate(puzzles, start=1):
        versions.setdefault(puzzle.task.id, []).append((pid, puzzle.augmentation))
    mine = heldout[d.rank :: d.world_size]
    tasks = {t.id: t for t in mine}
    queries = [q for t in mine for q in queries_for(t, versions[t.id], min(limits, default=None))]
    was_training = model.training
    model.eval()
    try:
        with ema.applied(model) if ema is not None else contextlib.nullcontext():
            preds, _ = predict(model, tasks, queries, cfg.model.canvas, cfg.eval.batch_size, dtype)
    finally:
        model.train(was_training)
    scores = heldout_scores(tasks, vote_queries(queries, preds))
    n = scores["tasks"]
    sums = sum_over_processes([scores["pass@1"] * n, scores["pass@2"] * n, n], d, device)
    return {"pass@1": sums[0] / max(sums[2], 1), "pass@2": sums[1] / max(sums[2], 1), "tasks": int(sums[2])}


def save_checkpoint(run_dir, step, model, ema, optimizer, carry, cfg, d: Dist, keep: int) -> None:
    staging = ckpt.staging_dir(run_dir, step)
    barrier(d)
    ckpt.write_rank_part(staging, d.rank, carry)
    if d.is_main:
        state = {"step": step, "world_size": d.world_size, "config": cfg.model_dump(mode="json")}
        ckpt.write_main_part(staging, model, ema, optimizer, state)
    barrier(d)
    if d.is_main:
        ckpt.publish(staging, step, keep)
    barrier(d)


def restore(ckpt_dir: Path, model, ema, optimizer, d: Dist, device) -> tuple[int, Carry | None]:
    """Load a checkpoint's state into the live objects; return (next step, carry or None)."""
    state = ckpt.read_state(ckpt_dir)
    weights = ckpt.load_tensors(ckpt_dir / "model.safetensors")
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(f"{ckpt_dir}: does not match the model of this recipe ({str(e).splitlines()[0]})") from None
    if ema is not None and (ckpt_dir / "ema.safetensors").exists():
        ema.load_state_dict(ckpt.load_tensors(ckpt_dir / "ema.safetensors"))
    ckpt.load_optimizer_state(optimizer, ckpt.load_tensors(ckpt_dir / "optimizer.safetensors"), state["optimizer"])
    carry = None
    part = ckpt_dir / f"carry_rank{d.rank}.safetensors"
    if state["world_size"] == d.world_size and part.exists():
        tensors = ckpt.load_tensors(part)
        torch.set_rng_state(tensors.pop("torch_rng"))
        cuda_rng = tensors.pop("cuda_rng", None)
        if cuda_rng is not None and device.type == "cuda":
            torch.cuda.set_rng_state(cuda_rng)
        if tensors:
            carry = Carry(**{k: v.to(device) for k, v in tensors.items()})
    return state["step"], carry


def pretrain(cfg: PretrainConfig, run_dir: Path, resume: bool = False, console=None) -> dict:
    """Train a TRM per the recipe into run_dir; returns the final held-out scores."""
    run_dir = Path(run_dir)
    device = resolve_device(cfg.run.device)
    d = init_distributed(device.type)
    if device.type == "cuda":
        device = torch.device("cuda", d.local_rank)
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    dtype = resolve_dtype(cfg.run.dtype, device)
    limit_gpu_memory(cfg.run.gpu_memory_gb, device)
    if cfg.optim.global_batch_size % d.world_size:
        raise ConfigError(f"optim.global_batch_size {cfg.optim.global_batch_size} is not divisible by {d.world_size} processes")
    seed_everything(cfg.run.seed)  # the same initial weights in every process

    train_tasks, heldout = select_tasks(cfg)
    puzzles = build_puzzles(train_tasks + heldout, cfg.data.n_augmentations, cfg.run.seed, cfg.data.fixed_colours)
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"n_puzzle_ids": len(puzzles) + 1})})
    stream = TrainStream(puzzles, trainable_pairs(train_tasks, heldout), cfg.model.canvas, cfg.run.seed, cfg.data.translate,
                         sampling=cfg.data.sampling)
    total_steps = cfg.total_steps(stream.examples_per_epoch)

    model = TRM(cfg.model).to(device)
    model.train()
    torch.manual_seed(cfg.run.seed + d.rank)  # but each process its own exploration draws
    optimizer = build_optimizer(model, cfg.optim.optimizer, cfg.optim.lr, cfg.optim.betas, cfg.optim.weight_decay)
    ema = EMA(model, cfg.optim.ema_rate) if cfg.optim.ema_rate else None
    step, carry = 0, None
    if resume:
        latest = ckpt.latest_checkpoint(run_dir)
        if latest is None:
            raise CheckpointError(f"{run_dir}: --resume given but there is no checkpoint to resume from")
        step, carry = restore(latest, model, ema, optimizer, d, device)
    forward = torch.compile(model) if cfg.run.compile else model

    if d.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / "config.json", cfg.model_dump(mode="json"))
        # Which task version each puzzle-embedding row belongs to: the solve stage needs it.
        atomic_write_text(run_dir / "puzzles.txt", "\n".join(p.name for p in puzzles) + "\n")
    logger = Logger(run_dir, total_steps, step, d.is_main, console)
    logger.print(
        f"{len(train_tasks)} train + {len(heldout)} held-out tasks, {len(puzzles)} puzzles, "
        f"{len(stream)} examples; {schedule(cfg, stream, total_steps)}; {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; "
        f"{device} {str(dtype).removeprefix('torch.')}, {d.world_size} process(es)"
        + (f"; resumed at step {step}" if step else "")
    )

    local_batch = cfg.optim.global_batch_size // d.world_size
    micro = choose_micro_batch(cfg.optim.micro_batch_size, model, local_batch, dtype, device, cfg.run.gpu_memory_gb,
                               logger.print)
    stepper = Stepper(model, forward, optimizer, ema, cfg.optim, d, dtype, micro, on_message=logger.print)

    cells = cfg.model.canvas**2
    started, window_start, window_steps, first_step = time.monotonic(), time.monotonic(), 0, step
    scores: dict = {}
    try:
        while step < total_steps:
            # Every process stops at the same step, or one would wait alone at the next collective.
            if cfg.run.time_limit_s and any_process(time.monotonic() - started > cfg.run.time_limit_s, d, device):
                logger.print(f"time limit of {cfg.run.time_limit_s:.0f}s reached at step {step}")
                break
            batch = to_device(stream.batch(step, cfg.optim.global_batch_size, d.rank, d.world_size), device)
            if carry is None:
                carry = model.initial_carry(batch)
            scale = warmup_factor(step, cfg.optim.warmup_steps)
            carry, loss, metrics, grad_norm = stepper.step(carry, batch, scale)
            step += 1
            window_steps += 1

            if step % cfg.run.log_every == 0 or step == total_steps:
                values = {k: float(v) for k, v in metrics.items()} | {"loss": float(loss.detach())}
                values = mean_over_processes(values, d, device)
                elapsed = time.monotonic() - window_start
                samples_per_s = window_steps * cfg.optim.global_batch_size / max(elapsed, 1e-9)
                record = {"step": step, **values, "lr": cfg.optim.lr * scale, "samples_per_s": samples_per_s,
                          "tokens_per_s": samples_per_s * cells, "time_s": time.monotonic() - started}
                if grad_norm is not None:
                    record["grad_norm"] = grad_norm
                if device.type == "cuda":
                    record["gpu_peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
                logger.log(record)
                # Under a time limit the run ends at the step the clock allows: show that as the total.
                total = None
                if cfg.run.time_limit_s:
                    rate = (step - first_step) / max(time.monotonic() - started, 1e-9)
                    total = min(total_steps, step + round(rate * max(cfg.run.time_limit_s - (time.monotonic() - started), 0)))
                logger.advance(step, total=total, status=f"loss {values['loss']:.3f} exact {values['exact_accuracy']:.3f} "
                               f"halt@{values.get('mean_halt_steps', 0):.1f} {samples_per_s:.0f} samples/s")
                window_start, window_steps = time.monotonic(), 0

            if step % cfg.run.checkpoint_every == 0 and step < total_steps:
                save_checkpoint(run_dir, step, model, ema, optimizer, carry, cfg, d, cfg.run.keep_checkpoints)
            if cfg.eval.every and step % cfg.eval.every == 0 and step < total_steps and heldout:
                scores = evaluate_heldout(model, ema, puzzles, heldout, cfg, dtype, d, device, cfg.eval.periodic_max_versions)
                logger.log({"step": step, **{f"heldout_{k}": v for k, v in scores.items()}})
                logger.print(f"step {step}: held-out pass@1 {scores['pass@1']:.3f} pass@2 {scores['pass@2']:.3f} ({scores['tasks']} tasks)")

        save_checkpoint(run_dir, step, model, ema, optimizer, carry, cfg, d, cfg.run.keep_checkpoints)
        logger.close()
        if heldout:
            scores = evaluate_heldout(model, ema, puzzles, heldout, cfg, dtype, d, device)
            logger.log({"step": step, **{f"heldout_{k}": v for k, v in scores.items()}})
        barrier(d)
    finally:
        logger.close()
        shutdown(d)
    return {"step": step, **scores}
