"""`arcsolver pretrain`: TRM's deep-supervision training loop, read top to bottom.

Each optimiser step is one supervision step of every sample in the batch: samples that halted
at the previous step are replaced by fresh ones from the stream, the others carry their y and z
on. Then: loss, backward, gradient average over processes, Adam(-atan2) on the network,
sign-SGD on the puzzle-embedding rows of the batch, EMA update, logging, checkpoints and the
held-out evaluation. Beside it: the tasks it trains on (tasks.py), its checkpoints and --resume
(resume.py), stopping on a signal (stops.py), progress (logger.py), the evaluation (heldout.py).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import torch

from arcsolver.config import PretrainConfig
from arcsolver.console import one_line
from arcsolver.data.stream import build_puzzles, trainable_pairs
from arcsolver.engine.device import limit_gpu_memory, resolve_device, resolve_dtype, seed_everything
from arcsolver.engine.distributed import any_process, barrier, init_distributed, mean_over_processes, shutdown
from arcsolver.engine.memory import choose_micro_batch
from arcsolver.engine.optim import EMA, build_optimizer, warmup_factor
from arcsolver.engine.step import Stepper, to_device
from arcsolver.errors import ConfigError
from arcsolver.model.trm import TRM
from arcsolver.train.heldout import eval_progress, evaluate_heldout
from arcsolver.train.logger import Logger
from arcsolver.train.resume import readable_checkpoints, restore_newest, resume_hint, save_checkpoint, write_run_files
from arcsolver.train.run import Run
from arcsolver.train.stops import Interrupted, StopRequests, agreed_signal, stopped
from arcsolver.train.tasks import schedule, select_tasks, task_counts, training_stream


def compiled(model: TRM, cfg: PretrainConfig):
    """The compiled network, allowed one graph per canvas side (and the evaluation's)."""
    sides = cfg.canvas_sides() or (cfg.model.canvas,)
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 2 * len(sides) + 4)
    return torch.compile(model)


def pretrain(cfg: PretrainConfig, run_dir: Path, resume: bool = False, console=None) -> dict:
    """Train a TRM per the recipe into run_dir; returns the final held-out scores and step.

    With resume, the newest checkpoint every process can read is continued; settings other than
    the run's length, logging, evaluation and hardware use must be the checkpoint's. SIGINT or
    SIGTERM ends the run after the current step with a checkpoint; the result then holds the
    signal's number under "signal".
    """
    from rich import get_console

    run_dir = Path(run_dir)
    device = resolve_device(cfg.run.device)
    d = init_distributed(device.type)
    if device.type == "cuda":
        device = torch.device("cuda", d.local_rank)
    say = (
        (lambda text: (console or get_console()).print(one_line(text), highlight=False, soft_wrap=True))
        if d.is_main
        else (lambda text: None)
    )
    candidates = readable_checkpoints(run_dir, cfg, say) if resume else []
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    dtype = resolve_dtype(cfg.run.dtype, device)
    limit_gpu_memory(cfg.run.gpu_memory_gb, device)
    if cfg.optim.global_batch_size % d.world_size:
        raise ConfigError(
            f"optim.global_batch_size {cfg.optim.global_batch_size} is not divisible by {d.world_size} processes"
        )
    local_batch = cfg.optim.global_batch_size // d.world_size
    seed_everything(cfg.run.seed)  # the same initial weights in every process

    train_tasks, heldout = select_tasks(cfg)
    puzzles = build_puzzles(train_tasks + heldout, cfg.data.n_augmentations, cfg.run.seed, cfg.data.fixed_colours)
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"n_puzzle_ids": len(puzzles) + 1})})
    stream = training_stream(cfg, puzzles, trainable_pairs(train_tasks, heldout))
    total_steps = cfg.total_steps(stream.examples_per_epoch)

    model = TRM(cfg.model).to(device)
    model.train()
    torch.manual_seed(cfg.run.seed + d.rank)  # but each process its own exploration draws
    optimizer = build_optimizer(model, cfg.optim.optimizer, cfg.optim.lr, cfg.optim.betas, cfg.optim.weight_decay)
    ema = EMA(model, cfg.optim.ema_rate) if cfg.optim.ema_rate else None
    run = Run(run_dir, cfg, d, device, dtype, model, ema, optimizer)
    step, carries = restore_newest(run, candidates, say) if resume else (0, {})
    forward = compiled(model, cfg) if cfg.run.compile else model

    # Every check has passed: only now is the run directory written.
    if d.is_main:
        write_run_files(run_dir, cfg, puzzles, step)
    barrier(d)
    logger = Logger(run_dir, total_steps, step, d.is_main, console)
    logger.print(
        f"{task_counts(train_tasks, heldout)}; {len(puzzles)} puzzles, {len(stream)} examples; "
        f"{schedule(cfg, stream, total_steps)}; {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; "
        f"{device} {str(dtype).removeprefix('torch.')}, {d.world_size} process(es)"
        + (f"; resumed at step {step}" if step else "")
    )
    micro = choose_micro_batch(
        cfg.optim.micro_batch_size, model, local_batch, dtype, device, cfg.run.gpu_memory_gb, logger.print
    )
    stepper = Stepper(model, forward, optimizer, ema, cfg.optim, d, dtype, micro, on_message=logger.print)

    started, window_start, window_steps, first_step = time.monotonic(), time.monotonic(), 0, step
    window_cells = 0
    scores: dict = {}
    signum = None
    stops = StopRequests()
    try:
        with stops:
            while step < total_steps:
                # Every process stops at the same step, or one would wait alone at the next collective.
                time_up = bool(cfg.run.time_limit_s) and time.monotonic() - started > cfg.run.time_limit_s
                if any_process(time_up or stops.requested, d, device):
                    signum = agreed_signal(stops, d, device)
                    if signum is None:
                        logger.print(f"time limit of {cfg.run.time_limit_s:.0f}s reached at step {step}")
                        total_steps = step
                    break
                # Each canvas side has its own carry: a sample's y and z only meet its own canvas.
                side = stream.side_of(step)
                batch = to_device(stream.batch(step, cfg.optim.global_batch_size, d.rank, d.world_size), device)
                carry = carries.get(side) or model.initial_carry(batch)
                scale = warmup_factor(step, cfg.optim.warmup_steps)
                carries[side], loss, metrics, grad_norm = stepper.step(carry, batch, scale)
                step += 1
                window_steps += 1
                window_cells += side * side

                if step % cfg.run.log_every == 0 or step == total_steps:
                    values = {k: float(v) for k, v in metrics.items()} | {"loss": float(loss.detach())}
                    values = mean_over_processes(values, d, device)
                    elapsed = time.monotonic() - window_start
                    samples_per_s = window_steps * cfg.optim.global_batch_size / max(elapsed, 1e-9)
                    record = {
                        "step": step,
                        **values,
                        "lr": cfg.optim.lr * scale,
                        "samples_per_s": samples_per_s,
                        "tokens_per_s": window_cells * cfg.optim.global_batch_size / max(elapsed, 1e-9),
                        "time_s": time.monotonic() - started,
                    }
                    if grad_norm is not None:
                        record["grad_norm"] = grad_norm
                    if device.type == "cuda":
                        record["gpu_peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
                    logger.log(record)
                    # Under a time limit the run ends at the step the clock allows: show that as the total.
                    total = None
                    if cfg.run.time_limit_s:
                        rate = (step - first_step) / max(time.monotonic() - started, 1e-9)
                        left_s = max(cfg.run.time_limit_s - (time.monotonic() - started), 0)
                        total = min(total_steps, step + round(rate * left_s))
                    status = (
                        f"loss {values['loss']:.3f} exact {values['exact_accuracy']:.3f} "
                        f"halt@{values.get('mean_halt_steps', 0):.1f} {samples_per_s:.0f} samples/s"
                    )
                    logger.advance(step, total=total, status=status)
                    window_start, window_steps, window_cells = time.monotonic(), 0, 0
                logger.tick(step)

                if step % cfg.run.checkpoint_every == 0 and step < total_steps:
                    save_checkpoint(run, step, carries)
                if cfg.eval.every and step % cfg.eval.every == 0 and step < total_steps and heldout:
                    scores = evaluate_heldout(
                        run,
                        puzzles,
                        heldout,
                        cfg.eval.periodic_max_versions,
                        eval_progress(logger, f"step {step}: held-out evaluation", d),
                    )
                    logger.log({"step": step, **{f"heldout_{k}": v for k, v in scores.items()}})
                    logger.print(
                        f"step {step}: held-out pass@1 {scores['pass@1']:.3f} pass@2 {scores['pass@2']:.3f} "
                        f"cells {scores['cell_accuracy']:.3f} ({scores['tasks']} tasks)"
                    )

            # The run's end, its time limit or a signal: checkpoint the step reached.
            logger.finish(step, total_steps)
            saved = save_checkpoint(run, step, carries)
            logger.close()
            if signum is None:  # a signal may also come while the checkpoint is written
                signum = agreed_signal(stops, d, device)
            if signum is not None:
                return stopped(run_dir, step, saved, signum, d, logger.print)
            if heldout:
                # Nothing is written until its end: a signal ends the evaluation at once.
                stops.immediate = True
                logger.print(f"held-out evaluation of {len(heldout)} tasks")
                progress = eval_progress(logger, "held-out evaluation", d)
                scores = evaluate_heldout(run, puzzles, heldout, on_progress=progress)
                stops.immediate = False
                logger.log({"step": step, **{f"heldout_{k}": v for k, v in scores.items()}})
            barrier(d)
    except Interrupted as e:
        logger.print(
            f"stopped by {signal.Signals(e.signum).name} during the final held-out evaluation; the checkpoint "
            f"of step {step} is complete: `{resume_hint(run_dir)}` evaluates it"
        )
        return {"step": step, "signal": e.signum}
    finally:
        logger.close()
        shutdown(d)
    return {"step": step, **scores}
