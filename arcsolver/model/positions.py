"""How TRM knows where a cell is: rotary position embedding (RoPE) over the prefix and the canvas.

Attention rotates each pair of dimensions (i, i + d/2) of every query and key by an angle that
grows with the position, so a query-key product depends only on how far apart they are.

    rope1d  the paper's: the position in the flattened sequence, prefix then cells row-major.
            A cell's position depends on the canvas width, so a model knows one canvas.
    rope2d  half the pairs turn with the cell's row, half with its column. Offsets between
            cells do not depend on the canvas size: one model runs canvases of any size.

The sequence is [puzzle-embedding prefix, canvas cells]: L = prefix_len + height * width.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

import torch
from torch import nn

from arcsolver.errors import ConfigError

if TYPE_CHECKING:
    from arcsolver.model.config import TRMConfig

Positions = Literal["rope1d", "rope2d"]
Rope = tuple[torch.Tensor, torch.Tensor]  # (cos, sin) tables, each [L, d/2], for one canvas


def check_head_dim(positions: str, head_dim: int) -> None:
    """Raise ValueError unless `positions` is rope1d or rope2d and the head dimension splits
    into its pairs: rope1d rotates d/2 pairs, rope2d d/4 by the row and d/4 by the column."""
    if positions not in get_args(Positions):
        raise ValueError(f"unknown rotary mode {positions!r}: expected one of {get_args(Positions)}")
    divisor = 4 if positions == "rope2d" else 2
    if head_dim % divisor:
        raise ValueError(f"{positions} needs a head dimension divisible by {divisor}, got {head_dim}")


def _inverse_frequencies(n_pairs: int, theta: float) -> torch.Tensor:
    """theta^(-i/n_pairs) for i = 0..n_pairs-1: one rotation speed per pair of dimensions."""
    return theta ** (-torch.arange(n_pairs, dtype=torch.float64) / n_pairs)


def _rotary_angles_1d(prefix_len: int, height: int, width: int, head_dim: int, theta: float) -> torch.Tensor:
    """[L, d/2] angles for RoPE over the flattened sequence (prefix then cells, row-major)."""
    positions = torch.arange(prefix_len + height * width, dtype=torch.float64)
    return positions[:, None] * _inverse_frequencies(head_dim // 2, theta)[None, :]


def _rotary_angles_2d(prefix_len: int, height: int, width: int, head_dim: int, theta: float) -> torch.Tensor:
    """[L, d/2] angles: the first half of the pairs turn with the row, the second with the column.

    Cells sit at (row + 1, col + 1); the prefix sits on the otherwise unused row 0 at columns
    0..prefix_len-1. No prefix position collides with a cell, the prefix positions differ from
    each other (as they do with rope1d), and the relative offsets between cells do not depend on
    the canvas size, which is what lets one checkpoint run on canvases of different sizes.
    """
    inv_freq = _inverse_frequencies(head_dim // 4, theta)
    rows = torch.arange(1, height + 1, dtype=torch.float64).repeat_interleave(width)
    cols = torch.arange(1, width + 1, dtype=torch.float64).repeat(height)
    rows = torch.cat([torch.zeros(prefix_len, dtype=torch.float64), rows])
    cols = torch.cat([torch.arange(prefix_len, dtype=torch.float64), cols])
    return torch.cat([rows[:, None] * inv_freq, cols[:, None] * inv_freq], dim=-1)


class RotaryEmbedding(nn.Module):
    """cos/sin tables of `mode` ("rope1d" or "rope2d"), cached per (height, width, device).

    With rope1d, `canvas` is the one canvas side the model's positions mean something on, and
    any other canvas is refused (None leaves it unchecked). The tables are not buffers: they
    depend on the canvas, not on training, and a checkpoint holds none.
    """

    def __init__(self, head_dim: int, prefix_len: int, theta: float, mode: Positions, canvas: int | None = None):
        super().__init__()
        check_head_dim(mode, head_dim)
        self.head_dim, self.prefix_len, self.theta, self.mode, self.canvas = head_dim, prefix_len, theta, mode, canvas
        self._cache: dict[tuple[int, int, torch.device], Rope] = {}

    @classmethod
    def from_config(cls, config: TRMConfig) -> RotaryEmbedding:
        """The positions of a model: its head dimension, prefix, RoPE base, kind and canvas."""
        return cls(config.head_dim, config.puzzle_emb_len, config.rope_theta, config.positions, config.canvas)

    def forward(self, height: int, width: int, device) -> Rope:
        """(cos, sin), each [L, d/2] float32, for a height x width canvas after the prefix."""
        canvas = self.canvas
        if self.mode == "rope1d" and canvas is not None and (height, width) != (canvas, canvas):
            raise ConfigError(
                f"this model uses rope1d positions for a {canvas}x{canvas} canvas, got a "
                f"{height}x{width} one: encode the data on a {canvas}x{canvas} canvas (flattened positions "
                f"change meaning with the canvas width), or use a model with positions='rope2d'"
            )
        key = (height, width, torch.device(device))
        if key not in self._cache:
            angles_fn = _rotary_angles_2d if self.mode == "rope2d" else _rotary_angles_1d
            angles = angles_fn(self.prefix_len, height, width, self.head_dim, self.theta)
            self._cache[key] = (angles.cos().float().to(device), angles.sin().float().to(device))
        return self._cache[key]


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the pairs (i, i + d/2) of x [..., L, d] by the angles whose cos/sin are [L, d/2]."""
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    half = x.shape[-1] // 2
    first, second = x[..., :half], x[..., half:]
    return torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1)
