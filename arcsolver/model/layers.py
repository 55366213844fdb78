"""The pieces of TRM's network f: RMSNorm, rotary positions, attention, SwiGLU, post-norm block.

Shapes: B batch, L sequence (puzzle-embedding prefix + canvas cells), D hidden, h heads,
d head dimension.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# torch.nn.init.trunc_normal_ cut at +-2 std leaves a std of 0.8796 x the requested one;
# dividing by it makes the std of the truncated draw the one asked for.
_TRUNCATED_STD_AT_2 = 0.8796256610342398

# The SwiGLU hidden width is rounded up to a multiple of this, as in the reference network
# (matmul-friendly widths: 512 -> 1536).
SWIGLU_MULTIPLE = 256


def trunc_normal_(tensor: torch.Tensor, std: float) -> torch.Tensor:
    """Fill `tensor` from a normal truncated at +-2 std, rescaled so its std is `std`."""
    scaled = std / _TRUNCATED_STD_AT_2
    with torch.no_grad():
        return nn.init.trunc_normal_(tensor, mean=0.0, std=scaled, a=-2 * scaled, b=2 * scaled)


def lecun_linear(in_features: int, out_features: int) -> nn.Linear:
    """A bias-free linear layer with truncated LeCun-normal weights (std 1/sqrt(fan_in))."""
    layer = nn.Linear(in_features, out_features, bias=False)
    trunc_normal_(layer.weight, std=1.0 / math.sqrt(in_features))
    return layer


def swiglu_width(hidden_size: int, expansion: float) -> int:
    """SwiGLU's inner width: 2/3 of expansion x hidden (a plain MLP's parameters), rounded up."""
    width = round(expansion * hidden_size * 2 / 3)
    return -(-width // SWIGLU_MULTIPLE) * SWIGLU_MULTIPLE


class RMSNorm(nn.Module):
    """RMSNorm without a learnable gain.

    In a post-norm network every block output goes straight through this norm, so the state
    y and z always has unit RMS per position; a learned gain would only rescale what the next
    block's input projections can rescale anyway (the reference network has none either).
    """

    def __init__(self, eps: float):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The mean of squares is accumulated in float32 (512 bf16 squares lose precision), but
        # without a float32 copy of x: on CPU the elementwise passes cost as much as the matmuls.
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=torch.float32)
        scale = torch.rsqrt(norm.square() / x.shape[-1] + self.eps)
        return x * scale.to(x.dtype)


# ----------------------------------------------------------------------------------------
# Rotary position embedding


def _inverse_frequencies(n_pairs: int, theta: float) -> torch.Tensor:
    """theta^(-i/n_pairs) for i = 0..n_pairs-1: one rotation speed per pair of dimensions."""
    return theta ** (-torch.arange(n_pairs, dtype=torch.float64) / n_pairs)


def _rotary_angles_1d(
    prefix_len: int, height: int, width: int, head_dim: int, theta: float
) -> torch.Tensor:
    """[L, d/2] angles for RoPE over the flattened sequence (prefix then cells, row-major)."""
    positions = torch.arange(prefix_len + height * width, dtype=torch.float64)
    return positions[:, None] * _inverse_frequencies(head_dim // 2, theta)[None, :]


def _rotary_angles_2d(
    prefix_len: int, height: int, width: int, head_dim: int, theta: float
) -> torch.Tensor:
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
    """cos/sin tables for rotary position embedding, cached per (height, width, device).

    mode "rope1d": the paper's RoPE over the flattened sequence, prefix positions included.
    mode "rope2d": half the pairs rotate by the cell's row, half by its column.
    The tables are not buffers: they depend on the canvas, not on training.
    """

    def __init__(self, head_dim: int, prefix_len: int, theta: float, mode: str):
        super().__init__()
        if mode not in ("rope1d", "rope2d"):
            raise ValueError(f"unknown rotary mode {mode!r}: expected 'rope1d' or 'rope2d'")
        divisor = 4 if mode == "rope2d" else 2
        if head_dim % divisor:
            raise ValueError(f"{mode} needs a head dim divisible by {divisor}, got {head_dim}")
        self.head_dim, self.prefix_len, self.theta, self.mode = head_dim, prefix_len, theta, mode
        self._cache: dict[tuple[int, int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    def forward(self, height: int, width: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin), each [L, d/2] float32, for a height x width canvas after the prefix."""
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


# ----------------------------------------------------------------------------------------
# The block


class Attention(nn.Module):
    """Non-causal multi-head self-attention with rotary positions, no biases."""

    def __init__(self, hidden_size: int, n_heads: int):
        super().__init__()
        if hidden_size % n_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.head_dim = hidden_size // n_heads
        self.qkv = lecun_linear(hidden_size, 3 * hidden_size)
        self.out = lecun_linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        B, L, D = x.shape
        # [3, B, heads, L, d]: q and k are rotated in one pass that writes them head-major.
        qkv = self.qkv(x).view(B, L, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rotary(qkv[:2], *rope).unbind(0)
        # Every position sees every other: the answer is a whole grid, not a left-to-right text.
        out = F.scaled_dot_product_attention(q, k, qkv[2])
        return self.out(out.transpose(1, 2).reshape(B, L, D))


class SwiGLU(nn.Module):
    """Gated MLP: down(silu(gate(x)) * up(x)), gate and up in one matmul."""

    def __init__(self, hidden_size: int, expansion: float):
        super().__init__()
        width = swiglu_width(hidden_size, expansion)
        self.gate_up = lecun_linear(hidden_size, 2 * width)
        self.down = lecun_linear(width, hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    """Post-norm transformer block: h = norm(h + attn(h)); h = norm(h + mlp(h))."""

    def __init__(self, hidden_size: int, n_heads: int, expansion: float, rms_eps: float):
        super().__init__()
        self.attn = Attention(hidden_size, n_heads)
        self.mlp = SwiGLU(hidden_size, expansion)
        self.norm = RMSNorm(rms_eps)

    def forward(self, h: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        # From the first sum on the state takes the sublayers' dtype (bf16 under autocast),
        # so the residual stream is not upcast to float32 at every add.
        a = self.attn(h, rope)
        h = self.norm(h.to(a.dtype) + a)
        return self.norm(h + self.mlp(h))
