"""One optimisation step of TRM's deep supervision, over micro-batches.

The optimiser and the puzzle sign-SGD always see the whole batch (`optim.global_batch_size`
split over processes); within a process the batch runs as micro-batches whose gradients add up
before a single update. Each micro-batch's loss is weighted by its share of the batch's
supervised samples, so 1 x 64 and 4 x 16 take the same step. The collectives run after the last
micro-batch, which lets one process retry a step alone after running out of memory.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable

import torch

from arcsolver.config import OptimConfig
from arcsolver.data.encoding import PAD
from arcsolver.data.stream import Batch
from arcsolver.engine.carry import carry_cat, carry_slice
from arcsolver.engine.distributed import Dist, average_gradients, gather
from arcsolver.engine.ema import EMA
from arcsolver.engine.optim import clip_grad_norm
from arcsolver.model.loss import trm_loss
from arcsolver.model.trm import TRM, Carry


def to_device(b: Batch, device: torch.device) -> dict[str, torch.Tensor]:
    """A batch's numpy canvases as the model's input tensors."""
    return {
        "inputs": torch.from_numpy(b.inputs).to(device, torch.long, non_blocking=True),
        "labels": torch.from_numpy(b.labels).to(device, torch.long, non_blocking=True),
        "puzzle_ids": torch.from_numpy(b.puzzle_ids).to(device, non_blocking=True),
    }


# Samples per forward/backward: one for every canvas side, per side, or None (the whole batch).
MicroBatch = int | dict[int, int] | None


def micro_slices(batch_size: int, micro_batch: int) -> list[slice]:
    """Contiguous slices of near-equal size, none over micro_batch (at most two distinct sizes,
    so a compiled network sees at most two shapes)."""
    n = math.ceil(batch_size / max(micro_batch, 1))
    bounds = [batch_size * i // n for i in range(n + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def is_out_of_memory(e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


class Stepper:
    """Takes optimisation steps for one model; owns the micro-batch size and shrinks it on OOM.

    `forward` is the model or its compiled form. `on_message` receives one-line notices (the
    out-of-memory retries) for the run's log.
    """

    def __init__(
        self,
        model: TRM,
        forward,
        optimizer: torch.optim.Optimizer,
        ema: EMA | None,
        optim: OptimConfig,
        d: Dist,
        dtype: torch.dtype,
        micro_batch: MicroBatch = None,
        on_message: Callable[[str], None] | None = None,
    ):
        self.model, self.forward, self.optimizer, self.ema = model, forward, optimizer, ema
        self.optim, self.d, self.dtype = optim, d, dtype
        # Per canvas side: a side-6 step needs a fraction of a 30x30 step's memory, so it runs in
        # fewer, larger passes. An int applies to every side; None: the whole local batch at once.
        self.micro_batch = dict(micro_batch) if isinstance(micro_batch, dict) else micro_batch
        self.on_message = on_message or (lambda text: None)

    def micro_batch_for(self, side: int) -> int | None:
        """The micro-batch of a step on this canvas side (None: the whole local batch)."""
        if isinstance(self.micro_batch, dict):
            return self.micro_batch.get(side)
        return self.micro_batch

    def _shrink(self, side: int, micro: int) -> int:
        smaller = max(micro // 2, 1)
        if isinstance(self.micro_batch, dict):
            self.micro_batch[side] = smaller
        else:
            self.micro_batch = smaller
        return smaller

    def step(self, carry: Carry, batch: dict, lr_scale: float):
        """One supervision step of every sample and one update of everything trainable.

        Network parameters with requires_grad=False are left alone (the embeddings-only phase of
        test-time adaptation); the batch's puzzle-embedding rows always get their sign-SGD step.
        Returns (next carry, loss, metrics, gradient norm or None). An out-of-memory error
        halves the micro-batch and retries the step from the same carry.
        """
        size, side = carry.y.shape[0], batch["inputs"].shape[-1]
        while True:
            micro = min(self.micro_batch_for(side) or size, size)
            try:
                grads = self._accumulate(carry, batch, micro)
            except (torch.cuda.OutOfMemoryError, RuntimeError) as e:
                if not is_out_of_memory(e) or micro == 1:
                    raise
                self._drop_partial_step()
                smaller = self._shrink(side, micro)
                self.on_message(
                    f"out of memory at micro-batch {micro} on the {side}x{side} canvas: retrying the step with {smaller}"
                )
                continue
            return self._update(*grads, lr_scale)

    def _accumulate(self, carry: Carry, batch: dict, micro: int):
        """Forward and backward of every micro-batch; gradients add up in .grad."""
        self.optimizer.zero_grad(set_to_none=True)
        self.model.puzzle_emb.clear_batch()
        # Samples with no supervised cell (batch padding) count nowhere; the rest weigh equally.
        labels = torch.where(carry.halted[:, None, None], batch["labels"], carry.labels)
        valid = (labels != PAD).flatten(1).any(-1)
        n_valid = valid.sum().clamp(min=1)
        parts, loss, metrics = [], 0.0, {}
        for s in micro_slices(carry.y.shape[0], micro):
            weight = valid[s].sum() / n_valid
            chunk = {k: v[s] for k, v in batch.items()}
            with torch.autocast(carry.y.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
                next_carry, out = self.forward(carry_slice(carry, s), chunk)
            chunk_loss, chunk_metrics = trm_loss(
                out.logits,
                out.labels,
                out.halt_logit,
                self.model.config.halt_loss_weight,
                next_carry.halted,
                next_carry.steps,
            )
            (chunk_loss * weight).backward()
            parts.append(next_carry)
            loss = loss + chunk_loss.detach() * weight
            for k, v in chunk_metrics.items():
                metrics[k] = metrics.get(k, 0.0) + v * weight
            del out, chunk_loss
        return carry_cat(parts), loss, metrics

    def _update(self, carry: Carry, loss, metrics, lr_scale: float):
        model, optim = self.model, self.optim
        average_gradients(model, self.d)
        grad_norm = clip_grad_norm(model, optim.grad_clip) if optim.grad_clip else None
        for group in self.optimizer.param_groups:
            group["lr"] = optim.lr * lr_scale
        self.optimizer.step()
        ids, grads = model.puzzle_emb.batch_gradients()
        model.puzzle_emb.apply_sign_sgd(
            gather(ids, self.d), gather(grads, self.d), optim.puzzle_emb_lr * lr_scale, optim.puzzle_emb_weight_decay
        )
        model.puzzle_emb.clear_batch()
        if self.ema is not None:
            self.ema.update(model)
        return carry, loss, metrics, grad_norm

    def _drop_partial_step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.model.puzzle_emb.clear_batch()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
