"""`arcsolver pretrain`: TRM's deep-supervision training, read top to bottom.

The steps themselves are engine/trainer.py's, which test-time adaptation shares: each is one
supervision step of every sample in the batch, samples that halted replaced by fresh ones from
the stream, the others carrying their y and z on; loss, backward, gradient average over
processes, Adam(-atan2) on the network, sign-SGD on the batch's puzzle-embedding rows, EMA
update. Pretraining adds the warm-up, stopping on a time limit or a signal, logging,
checkpoints and the held-out evaluation. Beside it: the tasks it trains on (tasks.py), its checkpoints and --resume
(resume.py), stopping on a signal (stops.py), progress (logger.py), the evaluation (heldout.py).
"""

from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from arcsolver.atomic import reported_writes
from arcsolver.config import PretrainConfig
from arcsolver.console import one_line
from arcsolver.data.stream import build_puzzles, trainable_pairs
from arcsolver.engine.card import pretrain_card, write_card
from arcsolver.engine.device import compiled, limit_gpu_memory, resolve_device, resolve_dtype, seed_everything
from arcsolver.engine.distributed import StopVote, barrier, init_distributed, shutdown
from arcsolver.engine.flops import flops_per_sample, format_flops, steps_in_budget
from arcsolver.engine.memory import choose_micro_batch
from arcsolver.engine.optim import run_progress, schedule_factor
from arcsolver.engine.trainer import StepResult, Trainer
from arcsolver.errors import ConfigError
from arcsolver.model.trm import TRM
from arcsolver.trackers import Trackers, check_trackers
from arcsolver.train.heldout import evaluate_logged, evaluation_seconds
from arcsolver.train.logger import Logger
from arcsolver.train.resume import (
    diverged,
    readable_checkpoints,
    restore_newest,
    resume_hint,
    resumed_flops,
    save_checkpoint,
    write_run_files,
)
from arcsolver.train.run import Run
from arcsolver.train.stops import Interrupted, StopRequests, agreed_signal, stopped
from arcsolver.train.target import TargetCheck
from arcsolver.train.tasks import schedule, select_tasks, task_counts, training_stream

EVAL_SPARE = 1.25  # training leaves the final evaluation its estimate and a quarter more
EVAL_SHARE = 0.5  # but never more than this share of the time limit


@dataclass
class PretrainResult:
    """How a run ended: the step it reached, the final held-out scores (pass@1, pass@2,
    cell_accuracy, tasks; empty without held-out tasks or after a signal), and the signal that
    stopped it, if one did."""

    step: int
    scores: dict = field(default_factory=dict)
    signal: int | None = None


def pretrain(cfg: PretrainConfig, run_dir: Path, resume: bool = False, console=None) -> PretrainResult:
    """Train a TRM per the recipe into run_dir; returns the step reached and the final scores.

    With resume, the newest checkpoint every process can read is continued; settings other than
    the run's length, logging, evaluation and hardware use must be the checkpoint's. SIGINT or
    SIGTERM ends the run after the current step with a checkpoint; the result then names the
    signal.
    """
    from rich import get_console

    run_dir = Path(run_dir)
    # A missing or broken package, or a directory they cannot write, fails here, before the data are read.
    check_trackers(cfg.run.trackers, run_dir)
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
    stream = training_stream(cfg, puzzles, trainable_pairs(train_tasks, heldout))
    total_steps = cfg.total_steps(stream.examples_per_epoch)

    model = TRM(cfg.model, n_puzzle_ids=len(puzzles) + 1).to(device)  # row 0: the blank row
    model.train()
    torch.manual_seed(cfg.run.seed + d.rank)  # but each process its own exploration draws
    sides = cfg.canvas_sides() or (cfg.model.canvas,)
    trainer = Trainer(model, stream, cfg.optim, d, dtype, compiled(model, sides) if cfg.run.compile else model)
    run = Run(run_dir, cfg, d, device, dtype, model, trainer.ema, trainer.optimizer)
    step, trainer.carries = restore_newest(run, candidates, say) if resume else (0, {})
    per_sample = flops_per_sample(model, sides)
    flops = resumed_flops(candidates, step, per_sample, stream.side_of, cfg.optim.global_batch_size)

    # Every check has passed: only now is the run directory written.
    if d.is_main:
        write_run_files(run_dir, cfg, puzzles, step)
    barrier(d)
    say(
        f"{task_counts(train_tasks, heldout)}; {len(puzzles)} puzzles, {len(stream)} examples; "
        f"{schedule(cfg, stream, total_steps)}; {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; "
        f"{device} {str(dtype).removeprefix('torch.')}, {d.world_size} process(es)"
        + (f"; resumed at step {step}" if step else "")
    )
    micro = choose_micro_batch(
        cfg.optim.micro_batch_size, model, local_batch, dtype, device, cfg.run.gpu_memory_gb, say, cfg.canvas_sides()
    )

    # The time limit covers the final evaluation: training stops in time to leave it its
    # measured length (at most half the limit; past that the evaluation is cut at the limit).
    reserve = 0.0
    if cfg.run.time_limit_s and heldout:
        estimate, n_queries = evaluation_seconds(run, puzzles, heldout, cfg.run.time_limit_s)
        reserve = min(EVAL_SPARE * estimate, EVAL_SHARE * cfg.run.time_limit_s)
        say(
            f"time limit {cfg.run.time_limit_s:g}s: the final held-out evaluation ({n_queries} queries) is estimated "
            f"at {estimate:.0f}s, so training stops {reserve:.0f}s before the limit"
            + ("; the evaluation is cut at the limit if it runs longer" if reserve < EVAL_SPARE * estimate else "")
        )

    trackers = (
        Trackers(cfg.run.trackers, run_dir, run_dir.name, cfg.model_dump(mode="json"))
        if d.is_main and cfg.run.trackers
        else None
    )
    # The logger's clock, which times the records and the ETA, starts with the first step.
    training_limit_s = cfg.run.time_limit_s - reserve if cfg.run.time_limit_s else None
    # The bar's total: where run.flops ends the run, if that comes first (the run itself stops by the count).
    bar_total = total_steps
    if cfg.run.flops:
        budget_end = steps_in_budget(
            per_sample, stream.side_of, step, flops, cfg.run.flops, cfg.optim.global_batch_size
        )
        bar_total = max(min(total_steps, budget_end), step)
    logger = Logger(
        run_dir,
        bar_total,
        step,
        d,
        device,
        cfg.optim.global_batch_size,
        training_limit_s,
        console,
        trackers,
        flops_per_sample=per_sample,
        flops=flops,
    )
    target = TargetCheck.of(run, puzzles, heldout)
    if target is not None:
        say(
            f"target: held-out loss {cfg.run.target_heldout_loss:g} on {len(target.sample)} fixed queries, "
            f"checked every {cfg.run.target_every} steps; the run stops where it first reaches it"
        )
    started = time.monotonic()
    scores: dict = {}
    signum = None
    stops = StopRequests()
    vote = StopVote(d)

    def should_stop(step: int) -> bool:
        nonlocal signum, total_steps
        # The target's loss is summed over processes, so every process stops at the same step.
        if target is not None and target.reached_at is not None:
            total_steps = step
            return True
        # Every process counts the same FLOPs, so all stop at the same step without a vote; a
        # step that would pass the budget is not taken.
        next_step = logger.flops + per_sample[stream.side_of(step)] * cfg.optim.global_batch_size
        if cfg.run.flops and next_step > cfg.run.flops:
            logger.print(f"compute budget of {format_flops(cfg.run.flops)} reached at step {step}")
            # compare counts the final evaluation of a run its budget ended at that budget
            logger.log({"step": step, "flops_budget_reached": cfg.run.flops, "flops": logger.flops})
            total_steps = step
            return True
        # Every process stops at the same step, or one would wait alone at the next collective;
        # the vote arrives a step late under torchrun rather than make every step wait for it.
        elapsed = time.monotonic() - started
        time_up = bool(cfg.run.time_limit_s) and elapsed > cfg.run.time_limit_s - reserve
        if not vote(time_up or stops.requested, elapsed):
            return False
        signum = agreed_signal(stops, d, device)
        if signum is None:
            left = f" ({reserve:.0f}s left for the final evaluation)" if reserve else ""
            logger.print(f"time limit of {cfg.run.time_limit_s:.0f}s reached at step {step}{left}")
            total_steps = step
        return True

    def lr_scale(step: int) -> float:
        # Every process agrees on each bound's progress (on the clock by the stop vote).
        progress = run_progress(step, total_steps, (logger.flops, cfg.run.flops), (vote.clock, training_limit_s))
        return schedule_factor(step, cfg.optim.warmup_steps, cfg.optim.cooldown, progress)

    def check_target(step: int) -> None:
        loss, check_flops = target.loss()
        logger.flops += check_flops  # the check's compute counts against the run, as its seconds do
        record = {
            "step": step,
            "target_check_loss": loss if math.isfinite(loss) else None,
            "time_s": logger.elapsed(),
            "flops": logger.flops,
        }
        if target.reached(loss):
            target.reached_at = step
            record |= {"target_reached": True, "target_heldout_loss": cfg.run.target_heldout_loss}
            logger.print(
                f"target held-out loss {cfg.run.target_heldout_loss:g} reached at step {step}: {loss:.4f} on "
                f"{len(target.sample)} queries, {format_flops(logger.flops)}, {record['time_s']:.0f}s"
            )
        logger.log(record)

    def after_step(step: int, result: StepResult) -> None:
        logger.count(result)
        if step % cfg.run.log_every == 0 or step == total_steps:
            values = logger.record(step, cfg.optim.lr * result.lr_scale)
            # The loss is on the host at a record already (the same in every process): a dead
            # model stops here, not at the end.
            if not math.isfinite(values["loss"]):
                raise diverged(run, step, "the loss is not finite")
        logger.tick(step)
        if target is not None and target.due(step) and step < total_steps:
            check_target(step)
        if step % cfg.run.checkpoint_every == 0 and step < total_steps:
            save_checkpoint(run, step, trainer.carries, logger.flops, logger.print)
        if cfg.eval.every and step % cfg.eval.every == 0 and step < total_steps and heldout:
            periodic = evaluate_logged(run, puzzles, heldout, logger, step, final=False)
            logger.print(
                f"step {step}: held-out pass@1 {periodic['pass@1']:.3f} pass@2 {periodic['pass@2']:.3f} "
                f"cells {periodic['cell_accuracy']:.3f} "
                + (f"loss {periodic['loss']:.4f} " if "loss" in periodic else "")
                + f"({periodic['tasks']} tasks)"
            )

    try:
        with stops:
            step = trainer.run(
                step,
                total_steps,
                lr_scale,
                micro,
                should_stop=should_stop,
                after_step=after_step,
                on_message=logger.print,
            )
            vote.close()

            # The run's end, its time limit or a signal: checkpoint the step reached.
            logger.finish(step, total_steps)
            saved = save_checkpoint(run, step, trainer.carries, logger.flops, logger.print)
            logger.close()
            if signum is None:  # a signal may also come while the checkpoint is written
                signum = agreed_signal(stops, d, device)
            if signum is not None:
                stopped(run_dir, step, saved, signum, d, logger.print)
                return PretrainResult(step, signal=signum)
            if heldout:
                # Nothing is written until its end: a signal ends the evaluation at once.
                stops.immediate = True
                logger.print(f"held-out evaluation of {len(heldout)} tasks")
                deadline = started + cfg.run.time_limit_s if cfg.run.time_limit_s else None
                scores = evaluate_logged(run, puzzles, heldout, logger, step, final=True, deadline=deadline)
                stops.immediate = False
                if d.is_main:
                    with reported_writes(run_dir, "the checkpoint and metrics are intact"):
                        write_card(run_dir, pretrain_card(run_dir, cfg))
            barrier(d)
    except Interrupted as e:
        logger.print(
            f"stopped by {signal.Signals(e.signum).name} during the final held-out evaluation; the checkpoint "
            f"of step {step} is complete: `{resume_hint(run_dir)}` evaluates it"
        )
        return PretrainResult(step, signal=e.signum)
    finally:
        logger.close()
        if trackers is not None:
            trackers.close()
        shutdown(d)
    return PretrainResult(step, scores)
