"""TRM's deep-supervision driver, shared by pretraining and test-time adaptation.

Each step is one supervision step of every sample in the batch: samples that halted at the
previous step are replaced by fresh ones from the stream, the others carry their y and z on.
The driver owns what both share: the stream, one carry per canvas side, the optimiser and the
EMA, and the Stepper with its micro-batch. Its caller says what differs: the learning-rate scale
of a step, whether the network trains at a step (adaptation's embeddings-only phase), when to
stop, and what to do after each step (logging, checkpoints, evaluation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from arcsolver.config import OptimConfig
from arcsolver.data.stream import SizedStream, TrainStream
from arcsolver.engine.distributed import Dist
from arcsolver.engine.ema import EMA
from arcsolver.engine.optim import build_optimizer
from arcsolver.engine.prefetch import Prefetcher
from arcsolver.engine.step import MicroBatch, Stepper
from arcsolver.model.trm import TRM, Carry


@dataclass
class StepResult:
    """What one step did: its canvas side, loss, metrics, gradient norm (None unless measured)
    and the learning-rate scale it ran with."""

    side: int
    loss: torch.Tensor
    metrics: dict[str, torch.Tensor]
    grad_norm: float | None
    lr_scale: float


class Trainer:
    """Deep-supervision training of one model over one stream.

    `forward` is the model or its compiled form. The optimiser covers the parameters that train
    when the Trainer is built; the puzzle-embedding rows get sign-SGD at every step.
    """

    def __init__(
        self,
        model: TRM,
        stream: TrainStream | SizedStream,
        optim: OptimConfig,
        d: Dist,
        dtype: torch.dtype,
        forward=None,
    ):
        self.model, self.stream, self.optim, self.d, self.dtype = model, stream, optim, d, dtype
        self.forward = forward or model
        self.device = next(model.parameters()).device
        self.optimizer = build_optimizer(model, optim.optimizer, optim.lr, optim.betas, optim.weight_decay)
        self.ema = EMA(model, optim.ema_rate) if optim.ema_rate else None
        # Each canvas side has its own carry: a sample's y and z only meet its own canvas.
        self.carries: dict[int, Carry] = {}

    def run(
        self,
        step: int,
        stop_at: int,
        lr_scale: Callable[[int], float],
        micro_batch: MicroBatch = None,
        network_trains: Callable[[int], bool] | None = None,
        should_stop: Callable[[int], bool] | None = None,
        after_step: Callable[[int, StepResult], None] | None = None,
        on_message: Callable[[str], None] | None = None,
    ) -> int:
        """Train from step until stop_at, or until should_stop(step) says so before a step;
        return the step reached.

        lr_scale(step): the step's factor on the learning rates. network_trains(step): False
        freezes the network for that step (its gradients are not even computed); None: it
        always trains. after_step(steps done, result) runs after each step. micro_batch: samples
        per forward/backward, for every canvas side or per side (None: the whole local batch);
        an out-of-memory error halves it and retries the step, with a line to on_message. The
        next batch is drawn and encoded on a background thread while a step runs.
        """
        model, d = self.model, self.d
        stepper = Stepper(
            model, self.forward, self.optimizer, self.ema, self.optim, d, self.dtype, micro_batch, on_message
        )
        network = list(model.parameters())
        batches = Prefetcher(self.stream, self.optim.global_batch_size, self.device, d.rank, d.world_size)
        try:
            while step < stop_at:
                if should_stop is not None and should_stop(step):
                    break
                if network_trains is not None:
                    trains = network_trains(step)
                    for p in network:
                        p.requires_grad_(trains)
                side, batch = batches.get(step)
                carry = self.carries.get(side) or model.initial_carry(batch)
                scale = lr_scale(step)
                self.carries[side], loss, metrics, grad_norm = stepper.step(carry, batch, scale)
                step += 1
                if after_step is not None:
                    after_step(step, StepResult(side, loss, metrics, grad_norm, scale))
        finally:
            batches.close()
            if network_trains is not None:
                for p in network:
                    p.requires_grad_(True)
        return step
