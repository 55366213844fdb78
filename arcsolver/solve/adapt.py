"""Test-time adaptation: teach a pretrained TRM the tasks it has never seen.

TRM knows a task only through its learned puzzle embedding, so new tasks get new rows (one per
augmented version, initialised to the mean of the trained rows) and the model is fine-tuned on
their demonstration pairs: the embeddings alone first, then the whole network, with the
pretraining's optimisers and EMA.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from arcsolver.data.task import Task
from arcsolver.errors import CheckpointError
from arcsolver.model.trm import TRM
from arcsolver.recipes import validate
from arcsolver.solve.config import SolveConfig
from arcsolver.train import checkpoint as ckpt
from arcsolver.train.config import PretrainConfig
from arcsolver.train.dataset import Puzzle, TrainStream, build_puzzles, trainable_pairs
from arcsolver.train.distributed import Dist
from arcsolver.train.loop import optimisation_step, to_device
from arcsolver.train.optim import EMA, build_optimizer, warmup_factor


def load_model(checkpoint: str | Path, device: torch.device) -> tuple[TRM, PretrainConfig, Path]:
    """The pretrained TRM of a checkpoint (or a run's newest), with its EMA weights in place."""
    ckpt_dir = ckpt.find_checkpoint(checkpoint)
    state = ckpt.read_state(ckpt_dir)
    cfg = validate(PretrainConfig, state.get("config", {}), str(ckpt_dir / "state.json"))
    model = TRM(cfg.model)
    try:
        model.load_state_dict(ckpt.load_tensors(ckpt_dir / "model.safetensors"))
        if (ckpt_dir / "ema.safetensors").exists():
            # Evaluation weights: the EMA is what pretraining scored, and what we adapt from.
            model.load_state_dict(ckpt.load_tensors(ckpt_dir / "ema.safetensors"), strict=False)
    except RuntimeError as e:
        raise CheckpointError(f"{ckpt_dir}: weights do not match its config ({str(e).splitlines()[0]})") from None
    return model.to(device), cfg, ckpt_dir


@dataclass
class Adapted:
    """Per task id, its augmented versions as (puzzle id, augmentation), identity first."""

    versions: dict[str, list]
    steps: int
    seconds: float


def add_puzzles(model: TRM, tasks: list[Task], cfg: SolveConfig) -> tuple[list[Puzzle], int]:
    """New embedding rows for every augmented version of tasks; returns them and the first id."""
    puzzles = build_puzzles(tasks, cfg.data.n_augmentations, cfg.run.seed, cfg.data.fixed_colours)
    first_id = model.grow_puzzles(len(puzzles)).start
    return puzzles, first_id


def adapt(model: TRM, tasks: list[Task], cfg: SolveConfig, dtype: torch.dtype, deadline: float | None = None,
          on_step=None) -> Adapted:
    """Fine-tune model (in place) on the demonstration pairs of tasks, until cfg.adapt.steps or
    the monotonic-clock deadline; the EMA weights are left in the model at the end."""
    started = time.monotonic()
    puzzles, first_id = add_puzzles(model, tasks, cfg)
    versions: dict[str, list] = {}
    for pid, puzzle in enumerate(puzzles, start=first_id):
        versions.setdefault(puzzle.task.id, []).append((pid, puzzle.augmentation))
    if cfg.adapt.steps == 0 or not tasks:
        return Adapted(versions, 0, time.monotonic() - started)

    device = next(model.parameters()).device
    canvas = model.config.canvas
    stream = TrainStream(puzzles, trainable_pairs([], tasks), canvas, cfg.run.seed, cfg.data.translate, first_id=first_id)
    network = list(model.parameters())
    optimizer = build_optimizer(model, cfg.optim.optimizer, cfg.optim.lr, cfg.optim.betas, cfg.optim.weight_decay)
    ema = EMA(model, cfg.optim.ema_rate) if cfg.optim.ema_rate else None
    embeddings_only = round(cfg.adapt.steps * cfg.adapt.embeddings_only_fraction)
    model.train()
    carry, step = None, 0
    for step in range(cfg.adapt.steps):
        if deadline is not None and time.monotonic() > deadline:
            break
        # Phase 1 freezes the network: its gradients are not even computed.
        for p in network:
            p.requires_grad_(step >= embeddings_only)
        batch = to_device(stream.batch(step, cfg.optim.global_batch_size), device)
        if carry is None:
            carry = model.initial_carry(batch)
        # The network's warm-up starts with its phase; the embeddings' with the run.
        scale = warmup_factor(step - embeddings_only, cfg.optim.warmup_steps) if step >= embeddings_only else 1.0
        carry, loss, metrics, _ = optimisation_step(
            model, model, carry, batch, optimizer, ema, cfg.optim, scale, model.config.halt_loss_weight, Dist(), dtype
        )
        if on_step is not None and (step + 1) % cfg.adapt.log_every == 0:
            on_step(step + 1, float(loss.detach()), {k: float(v) for k, v in metrics.items()})
    else:
        step = cfg.adapt.steps
    for p in network:
        p.requires_grad_(True)
    if ema is not None:
        ema.load_into(model)
    model.eval()
    return Adapted(versions, step, time.monotonic() - started)
