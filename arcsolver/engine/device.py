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


# CPU instructions that multiply bf16 matrices natively: AMX tiles (Sapphire Rapids and later)
# and AVX-512 BF16 dot products (Cooper Lake, Zen 4 and later). Without either, bf16 is converted
# to fp32 for every product and runs no faster than fp32.
BF16_MATMUL_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_bf16_matmul(cpuinfo: str | None = None) -> str | None:
    """The first of BF16_MATMUL_FLAGS this CPU has (from /proc/cpuinfo), or None."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return next((flag for flag in BF16_MATMUL_FLAGS if flag in flags), None)


def resolve_dtype(name: str, device: torch.device, cpuinfo: str | None = None) -> torch.dtype:
    """The autocast dtype: bf16 where the hardware multiplies it natively (CUDA; CPUs with AMX or
    AVX-512 BF16), else fp32."""
    if name == "auto":
        fast_bf16 = device.type == "cuda" or (device.type == "cpu" and cpu_bf16_matmul(cpuinfo) is not None)
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


def compiled(model: torch.nn.Module, sides: tuple[int, ...]):
    """The compiled network, allowed one graph per canvas side (and the evaluation's)."""
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 2 * len(sides) + 4)
    return torch.compile(model)
