"""The pieces of TRM's network f: RMSNorm, attention, SwiGLU, post-norm block (positions: positions.py).

Shapes: B batch, L sequence (puzzle-embedding prefix + canvas cells), D hidden, h heads,
d head dimension.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from arcsolver.model.positions import Rope, apply_rotary

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
# The block


class Attention(nn.Module):
    """Non-causal multi-head self-attention with rotary positions, no biases."""

    def __init__(self, hidden_size: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = hidden_size // n_heads  # TRMConfig checks that n_heads divides hidden_size
        self.qkv = lecun_linear(hidden_size, 3 * hidden_size)
        self.out = lecun_linear(hidden_size, hidden_size)

    def forward(self, x: torch.Tensor, rope: Rope) -> torch.Tensor:
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

    def forward(self, h: torch.Tensor, rope: Rope) -> torch.Tensor:
        # From the first sum on the state takes the sublayers' dtype (bf16 under autocast),
        # so the residual stream is not upcast to float32 at every add.
        a = self.attn(h, rope)
        h = self.norm(h.to(a.dtype) + a)
        return self.norm(h + self.mlp(h))
