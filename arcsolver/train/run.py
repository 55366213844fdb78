"""A pretraining run's parts that stay put while it trains: where it writes, its settings, its
processes and device, and the model, EMA and optimiser that its checkpoints and evaluations use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from arcsolver.config import PretrainConfig
from arcsolver.engine.distributed import Dist
from arcsolver.engine.ema import EMA
from arcsolver.model.trm import TRM


@dataclass
class Run:
    """One process's view of a run; the step and the carries change every step and travel apart."""

    dir: Path
    cfg: PretrainConfig
    d: Dist
    device: torch.device
    dtype: torch.dtype
    model: TRM
    ema: EMA | None
    optimizer: torch.optim.Optimizer
