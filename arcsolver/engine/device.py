"""Which device and which autocast precision a run uses."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from arcsolver.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("run.device = 'cuda' but no CUDA device is visible; use 'auto' or 'cpu'")
    return torch.device(name)


def cpu_has_amx() -> bool:
    """AMX tiles make bf16 matrix products several times faster than fp32 on this CPU."""
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The autocast dtype: bf16 where the hardware makes it fast, else fp32."""
    if name == "auto":
        fast_bf16 = device.type == "cuda" or (device.type == "cpu" and cpu_has_amx())
        return torch.bfloat16 if fast_bf16 else torch.float32
    return getattr(torch, name)


def limit_gpu_memory(gigabytes: float | None, device: torch.device) -> None:
    """Cap this process's share of the GPU at `gigabytes` (to share a card, or to rehearse a
    smaller one: 24 on an 80 GB card behaves like an L4 for the caching allocator)."""
    if gigabytes is None or device.type != "cuda":
        return
    device = torch.device("cuda", torch.cuda.current_device() if device.index is None else device.index)
    total = torch.cuda.get_device_properties(device).total_memory
    fraction = gigabytes * 2**30 / total
    if fraction > 1:
        raise ConfigError(f"run.gpu_memory_gb = {gigabytes:g} exceeds the {total / 2**30:.1f} GiB of {device}")
    torch.cuda.set_per_process_memory_fraction(fraction, device)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
