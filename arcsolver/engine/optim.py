"""Optimisation pieces: Adam-atan2 (alone, or beside Muon), the warm-up schedule, gradient clipping."""

from __future__ import annotations

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


class MuonAdamAtan2:
    """torch.optim.Muon for the matrices of the network's blocks, Adam-atan2 for everything else,
    stepped as one optimiser.

    Muon orthogonalises a matrix's update, which suits the hidden layers' matrices; torch's
    documentation leaves embeddings, heads and vectors to an Adam-like method, so the token
    embedding, the answer and halting heads and the convolutions' kernels and biases stay on
    Adam-atan2. Muon's step is scaled to match the RMS of an AdamW update ("match_rms_adamw"),
    so both take the run's learning rate and weight decay. state_dict numbers the parameters of
    both in one sequence, Muon's first, as one optimiser's would be.
    """

    def __init__(self, matrices: list[nn.Parameter], others: list[nn.Parameter], lr: float, betas, weight_decay):
        muon = torch.optim.Muon(matrices, lr=lr, weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw")
        self.parts: list[torch.optim.Optimizer] = [
            muon,
            AdamAtan2(others, lr=lr, betas=tuple(betas), weight_decay=weight_decay),
        ]

    @property
    def param_groups(self) -> list[dict]:
        return [group for part in self.parts for group in part.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self, closure=None):
        for part in self.parts:
            part.step()
        return None

    def _spans(self):
        """Per part: (its first parameter's number, its parameters, its groups' first number)."""
        first = first_group = 0
        for part in self.parts:
            count = sum(len(g["params"]) for g in part.param_groups)
            yield part, first, count, first_group
            first, first_group = first + count, first_group + len(part.param_groups)

    def state_dict(self) -> dict:
        state, groups = {}, []
        for part, first, _, _ in self._spans():
            own = part.state_dict()
            state.update({first + i: s for i, s in own["state"].items()})
            groups += [{**g, "params": [first + i for i in g["params"]]} for g in own["param_groups"]]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        for part, first, count, first_group in self._spans():
            groups = state_dict["param_groups"][first_group : first_group + len(part.param_groups)]
            part.load_state_dict(
                {
                    "state": {i - first: s for i, s in state_dict["state"].items() if first <= i < first + count},
                    "param_groups": [{**g, "params": [i - first for i in g["params"]]} for g in groups],
                }
            )


def muon_matrices(model: nn.Module) -> set[str]:
    """Names of the parameters Muon takes: the 2-D weights of the network's blocks."""
    return {name for name, p in model.named_parameters() if name.startswith("blocks.") and p.ndim == 2}


def build_optimizer(model: nn.Module, name: str, lr: float, betas, weight_decay: float) -> torch.optim.Optimizer:
    """The network's optimiser (the puzzle-embedding table is a buffer, trained by sign-SGD)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "adam_atan2":
        return AdamAtan2(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    if name == "muon":
        matrices = muon_matrices(model)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        return MuonAdamAtan2(  # type: ignore[return-value]  # an optimiser by its methods
            [p for n, p in named if n in matrices], [p for n, p in named if n not in matrices], lr, betas, weight_decay
        )
    return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up from 0 to 1 over warmup_steps, then constant (the paper's schedule)."""
    return 1.0 if warmup_steps == 0 else min(1.0, (step + 1) / warmup_steps)


def schedule_factor(step: int, warmup_steps: int, cooldown: float, progress: float) -> float:
    """The learning rates' factor at a step: the warm-up, then constant, then, with cooldown > 0, a
    linear fall to 0 over the last `cooldown` fraction of the run; progress is the fraction of the
    run done (0 to 1)."""
    factor = warmup_factor(step, warmup_steps)
    if cooldown <= 0:
        return factor
    return factor * min(1.0, max(0.0, (1.0 - progress) / cooldown))


def run_progress(step: int, steps: int, *spent_and_bounds: tuple[float, float | None]) -> float:
    """The fraction of a run done by the bound it is nearest: its steps, or any (spent, bound)
    pair such as (FLOPs, run.flops) or (seconds, time limit); an unset bound counts for nothing."""
    return max([step / steps, *(spent / bound for spent, bound in spent_and_bounds if bound)])


def clip_grad_norm(model: nn.Module, max_norm: float | None) -> float:
    """Clip the global gradient norm when max_norm is set; return the norm before clipping."""
    params = [p for p in model.parameters() if p.grad is not None]
    if max_norm is None:
        return float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))) if params else 0.0
    return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
