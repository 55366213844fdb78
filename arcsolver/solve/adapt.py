"""Test-time adaptation: teach a pretrained TRM the tasks it has never seen.

TRM knows a task only through its learned puzzle embedding, so new tasks get new rows (one per
augmented version, initialised to the mean of the trained rows) and the model is fine-tuned on
their demonstration pairs: the embeddings alone first, then the whole network, by the
deep-supervision driver pretraining uses (engine/trainer.py), with its optimisers and EMA. Its micro-batch is measured to fit memory, and if it fails for
any reason (out of GPU memory included) the network is put back as it was: the tasks are then
answered by the unadapted network rather than not at all.
"""

from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass

import torch

from arcsolver.config import SolveConfig
from arcsolver.data.augment import Augmentation
from arcsolver.data.stream import Puzzle, build_puzzles, stream_for, trainable_pairs
from arcsolver.data.task import Task
from arcsolver.engine.checkpoint import non_finite
from arcsolver.engine.distributed import Dist
from arcsolver.engine.memory import choose_micro_batch
from arcsolver.engine.optim import run_progress, schedule_factor, warmup_factor
from arcsolver.engine.step import MicroBatch
from arcsolver.engine.trainer import StepResult, Trainer
from arcsolver.engine.window import Window
from arcsolver.errors import Diverged
from arcsolver.evaluation.canvas import model_canvases
from arcsolver.model.trm import TRM

# Per task id, (augmentation, trained puzzle row) of each version a checkpoint was trained on.
Trained = dict[str, list[tuple[Augmentation, torch.Tensor]]]


@dataclass
class Adapted:
    """Per task id, its augmented versions as (puzzle id, augmentation), identity first."""

    versions: dict[str, list]
    steps: int
    seconds: float


def add_puzzles(
    model: TRM, tasks: list[Task], cfg: SolveConfig, trained: Trained | None = None
) -> tuple[list[Puzzle], int]:
    """New embedding rows for every augmented version of tasks; returns them and the first id.

    trained: per task id, versions the checkpoint holds trained rows for (engine.pretrained.
    trained_versions); such a task gets exactly those versions, starting from those rows, as the
    model that trained them would answer it. The other tasks get fresh versions at the mean row."""
    trained = trained or {}
    fresh = build_puzzles(
        [t for t in tasks if t.id not in trained], cfg.data.n_augmentations, cfg.run.seed, cfg.data.fixed_colours
    )
    known = [Puzzle(t, aug) for t in tasks if t.id in trained for aug, _ in trained[t.id]]
    puzzles = known + fresh
    first_id = model.grow_puzzles(len(puzzles)).start
    set_trained_rows(model, first_id, [t for t in tasks if t.id in trained], trained)
    return puzzles, first_id


@torch.no_grad()
def set_trained_rows(model: TRM, first_id: int, tasks: list[Task], trained: Trained) -> None:
    """Put the trained rows of tasks' versions in place, from first_id on, in add_puzzles's order."""
    rows = [row for t in tasks for _, row in trained[t.id]]
    if rows:
        table = model.puzzle_emb.weight
        table[first_id : first_id + len(rows)] = torch.stack(rows).to(table.device, table.dtype)


def versions_of(puzzles: list[Puzzle], first_id: int) -> dict[str, list]:
    """Per task id, the (puzzle id, augmentation) of each of its versions added by add_puzzles."""
    versions: dict[str, list] = {}
    for pid, puzzle in enumerate(puzzles, start=first_id):
        versions.setdefault(puzzle.task.id, []).append((pid, puzzle.augmentation))
    return versions


def adaptation_stream(model: TRM, puzzles: list[Puzzle], first_id: int, tasks: list[Task], cfg: SolveConfig):
    """The new tasks' demonstration pairs, on grid-sized canvases where the model's positions
    allow (see model_canvases), else on its one canvas."""
    # Uniform: every epoch trains every version's row, and inference asks each version's own row.
    sampling = "uniform"
    pairs = trainable_pairs([], tasks)
    return stream_for(
        puzzles, pairs, model_canvases(model.config), cfg.run.seed, cfg.data.translate, sampling, first_id
    )


def adapt(
    model: TRM,
    tasks: list[Task],
    cfg: SolveConfig,
    dtype: torch.dtype,
    deadline: float | None = None,
    on_step=None,
    micro_batch: int | None = None,
    on_message=None,
    added: tuple[list[Puzzle], int] | None = None,
) -> Adapted:
    """Fine-tune model (in place) on the demonstration pairs of tasks, until cfg.adapt.steps or
    the monotonic-clock deadline; the EMA weights are left in the model at the end.

    on_step(step, loss, metrics): every cfg.adapt.log_every steps, the loss and metrics averaged
    over the steps since its last call.
    micro_batch: samples per forward/backward (None: the whole batch); an out-of-memory error
    halves it and retries the step, with a line to on_message.
    added: what add_puzzles returned for tasks, where the caller added their rows already.
    """
    started = time.monotonic()
    puzzles, first_id = added if added is not None else add_puzzles(model, tasks, cfg)
    versions = versions_of(puzzles, first_id)
    if cfg.adapt.steps == 0 or not tasks:
        return Adapted(versions, 0, time.monotonic() - started)

    stream = adaptation_stream(model, puzzles, first_id, tasks, cfg)
    trainer = Trainer(model, stream, cfg.optim, Dist(), dtype)
    embeddings_only = round(cfg.adapt.steps * cfg.adapt.embeddings_only_fraction)
    budget = deadline - started if deadline is not None and deadline > started else None

    def lr_scale(step: int) -> float:
        # The network's warm-up starts with its phase; the embeddings' with the run. The
        # cooldown's progress is the run's, by its steps or its deadline, whichever is nearer.
        progress = run_progress(step, cfg.adapt.steps, (time.monotonic() - started, budget))
        cooldown = schedule_factor(step, 0, cfg.optim.cooldown, progress)
        return cooldown * (
            warmup_factor(step - embeddings_only, cfg.optim.warmup_steps) if step >= embeddings_only else 1.0
        )

    window = Window()
    last_step_s, step_ended = 0.0, time.monotonic()

    def out_of_time(step: int) -> bool:
        # A step that would end past the deadline is not begun: the last one's length says so.
        return deadline is not None and time.monotonic() + last_step_s > deadline

    def after_step(step: int, result: StepResult) -> None:
        nonlocal last_step_s, step_ended
        last_step_s, step_ended = time.monotonic() - step_ended, time.monotonic()
        window.add(result)
        if step % cfg.adapt.log_every == 0:
            means = window.read()
            loss = means.pop("loss")  # on the host here anyway: a dead model stops at once
            if not math.isfinite(loss):
                raise Diverged(f"adaptation diverged at step {step} (the loss is not finite)")
            if on_step is not None:
                on_step(step, loss, means | {"lr": cfg.optim.lr * result.lr_scale})

    model.train()
    step = trainer.run(
        0,
        cfg.adapt.steps,
        lr_scale,
        micro_batch,
        network_trains=lambda step: step >= embeddings_only,  # phase 1: the embeddings alone
        should_stop=out_of_time,
        after_step=after_step,
        on_message=on_message,
    )
    if trainer.ema is not None:
        trainer.ema.load_into(model)
    model.eval()
    if bad := non_finite(model.state_dict()):
        raise Diverged(f"adaptation diverged by step {step} ({len(bad)} tensors hold inf or NaN)")
    return Adapted(versions, step, time.monotonic() - started)


def pick_micro_batch(model: TRM, cfg: SolveConfig, dtype: torch.dtype, device: torch.device, say) -> MicroBatch:
    """The adaptation's micro-batch (see choose_micro_batch); if measuring fails, the whole
    batch, which the out-of-memory retry then shrinks as needed."""
    try:
        sides = model_canvases(model.config)
        return choose_micro_batch(
            cfg.optim.micro_batch_size,
            model,
            cfg.optim.global_batch_size,
            dtype,
            device,
            cfg.run.gpu_memory_gb,
            say,
            sides if isinstance(sides, tuple) else None,
        )
    except Exception as e:  # the measurement must never cost the solve
        say(f"could not measure the adaptation's memory ({error_line(e)}); starting with the whole batch")
        return None


def adapt_or_restore(
    model: TRM,
    tasks: list[Task],
    cfg: SolveConfig,
    dtype: torch.dtype,
    deadline: float | None,
    on_step,
    micro_batch: int | None = None,
    on_message=None,
    trained: Trained | None = None,
) -> tuple[Adapted, str | None]:
    """Adapt model to tasks, or, if adaptation fails for any reason, put the network back as it
    was and return why: the tasks' rows exist either way, so inference can always run.
    trained: see add_puzzles."""
    started = time.monotonic()
    saved = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    added = add_puzzles(model, tasks, cfg, trained)
    try:
        return adapt(
            model, tasks, cfg, dtype, deadline, on_step, micro_batch=micro_batch, on_message=on_message, added=added
        ), None
    except Exception as e:  # out of GPU memory included: the unadapted network still answers
        reason = error_line(e)
    # Past the except block the exception is gone, and with it the failed step's tensors.
    restore(model, saved, added)
    set_trained_rows(model, added[1], [t for t in tasks if t.id in (trained or {})], trained or {})
    return Adapted(versions_of(*added), 0, time.monotonic() - started), reason


def restore(model: TRM, saved: dict[str, torch.Tensor], added: tuple[list[Puzzle], int]) -> None:
    """The state saved before add_puzzles, and the same new rows again (same ids, same mean)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    model.load_state_dict(saved)  # the puzzle table shrinks back to its saved rows
    puzzles, first_id = added
    assert model.grow_puzzles(len(puzzles)).start == first_id
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()


def error_line(e: BaseException, limit: int = 200) -> str:
    """An exception as its type and the first line of its message, cut at limit characters
    (CUDA's out-of-memory message runs to several hundred)."""
    lines = str(e).strip().splitlines()
    text = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
