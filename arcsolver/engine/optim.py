"""Optimisation pieces: Adam-atan2, the warm-up schedule, and the EMA of the weights."""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn


class AdamAtan2(torch.optim.Optimizer):
    """Adam with atan2 in place of m / (sqrt(v) + eps): bounded, invariant to the gradient's scale,
    with no epsilon to tune (Everett et al. 2024, arXiv 2407.05872), and AdamW's decoupled decay.

    The step is the one TRM trained with, the CUDA kernel of the `adam-atan2` package
    (github.com/imoneoi/adam-atan2 0.0.3, csrc/adam_atan2.cu), in its order:

        p <- p * (1 - lr * wd)
        m <- lerp(m, g, 1 - beta1);  v <- lerp(v, g^2, 1 - beta2)
        p <- p - a * lr / (1 - beta1^t) * atan2(m, b * sqrt(v / (1 - beta2^t)))

    The first moment's bias correction scales the step outside atan2, not m inside it (the
    package's 0.0.2 moved it inside; 0.0.3 reverted that). a and b are Everett et al.'s scales: the
    kernel's are a = b = 1, the defaults; a checkpoint resumes with the values it was saved with.
    """

    def __init__(self, params, lr: float, betas: tuple[float, float], weight_decay: float, a=1.0, b=1.0):
        # lr, betas and weight decay have one home, OptimConfig; build_optimizer passes them.
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay, a=a, b=b))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, (beta1, beta2) = group["lr"], group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                step = state["step"].item()
                m, v = state["exp_avg"], state["exp_avg_sq"]
                p.mul_(1 - lr * group["weight_decay"])
                m.lerp_(p.grad, 1 - beta1)
                v.lerp_(p.grad.square(), 1 - beta2)
                denom = v.sqrt().div_(math.sqrt(1 - beta2**step)).mul_(group["b"])
                p.add_(torch.atan2(m, denom), alpha=-group["a"] * lr / (1 - beta1**step))
        return None


def build_optimizer(model: nn.Module, name: str, lr: float, betas, weight_decay: float) -> torch.optim.Optimizer:
    """The network's optimiser (the puzzle-embedding table is a buffer, trained by sign-SGD)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "adam_atan2":
        return AdamAtan2(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up from 0 to 1 over warmup_steps, then constant (the paper's schedule)."""
    return 1.0 if warmup_steps == 0 else min(1.0, (step + 1) / warmup_steps)


class EMA:
    """Exponential moving average of the network's parameters, used for evaluation.

    Only parameters are averaged: the puzzle-embedding table is shared with the live model.
    """

    def __init__(self, model: nn.Module, rate: float):
        self.rate = rate
        self.shadow = {n: p.detach().clone() for n, p in model.named_parameters()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for name, p in model.named_parameters():
            self.shadow[name].lerp_(p.detach(), 1 - self.rate)

    @contextlib.contextmanager
    def applied(self, model: nn.Module):
        """Temporarily swap the averaged weights into model."""
        params = dict(model.named_parameters())
        saved = {n: p.detach().clone() for n, p in params.items()}
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(self.shadow[n])
        try:
            yield model
        finally:
            with torch.no_grad():
                for n, p in params.items():
                    p.copy_(saved[n])

    @torch.no_grad()
    def load_into(self, model: nn.Module) -> None:
        """Copy the averaged weights into model for good (the end of a fine-tuning run)."""
        for name, p in model.named_parameters():
            p.copy_(self.shadow[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, tensor in state.items():
            self.shadow[name].copy_(tensor)


def clip_grad_norm(model: nn.Module, max_norm: float | None) -> float:
    """Clip the global gradient norm when max_norm is set; return the norm before clipping."""
    params = [p for p in model.parameters() if p.grad is not None]
    if max_norm is None:
        return float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))) if params else 0.0
    return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
