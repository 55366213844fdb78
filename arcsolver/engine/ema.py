"""The exponential moving average of the network's weights (a checkpoint's ema.safetensors): the
weights evaluation and solving use."""

from __future__ import annotations

import contextlib

import torch
from torch import nn


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
