"""The pieces of TRM's network f: RMSNorm, attention, SwiGLU, post-norm block (positions: positions.py).

TRM-MLP's block (`model.mixer = "mlp"`) mixes the positions with a SwiGLU over the sequence in
place of attention. The SwiGLU may convolve its gated activations before the down projection (`model.mlp_conv`):
over the sequence, as URM does (ConvSwiGLU), or over the canvas's rows and columns.

Shapes: B batch, L sequence (puzzle-embedding prefix + canvas cells), D hidden, h heads,
d head dimension.
"""

from __future__ import annotations

import math
from typing import Literal

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


class ConvSwiGLU(SwiGLU):
    """URM's ConvSwiGLU: down(silu(conv(silu(gate(x)) * up(x)))), conv a depthwise convolution
    over the sequence, kernel k with a bias per channel.

    Padded by k // 2 on both ends and cut back to the first L outputs, so position t sees
    t - k//2 .. t - k//2 + k - 1 (with URM's k = 2: itself and the position before it).
    """

    def __init__(self, hidden_size: int, expansion: float, kernel: int):
        super().__init__(hidden_size, expansion)
        width = self.down.in_features
        self.conv = nn.Conv1d(width, width, kernel, padding=kernel // 2, groups=width, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        h = self.conv((F.silu(gate) * up).transpose(1, 2))[..., : x.shape[1]]
        return self.down(F.silu(h).transpose(1, 2))


class GridConvSwiGLU(SwiGLU):
    """ConvSwiGLU over the canvas: a depthwise k x k convolution over each cell's rows and
    columns (padded by k // 2 and cut back to the canvas, as ConvSwiGLU pads the sequence).

    The prefix positions (the task vector) have no place on the grid: the convolution passes
    them through unchanged, and the SiLU after it applies to every position.
    """

    def __init__(self, hidden_size: int, expansion: float, kernel: int, prefix_len: int):
        super().__init__(hidden_size, expansion)
        width = self.down.in_features
        self.prefix_len = prefix_len
        self.conv = nn.Conv2d(width, width, kernel, padding=kernel // 2, groups=width, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        h = F.silu(gate) * up
        B, L, C = h.shape
        side = math.isqrt(L - self.prefix_len)
        assert side * side == L - self.prefix_len, "canvases are square"
        cells = h[:, self.prefix_len :].transpose(1, 2).reshape(B, C, side, side)
        cells = self.conv(cells)[..., :side, :side].reshape(B, C, side * side).transpose(1, 2)
        return self.down(F.silu(torch.cat([h[:, : self.prefix_len], cells], dim=1)))


MlpConv = Literal["none", "1d", "2d"]


def swiglu(hidden_size: int, expansion: float, conv: MlpConv = "none", kernel: int = 2, prefix_len: int = 0) -> SwiGLU:
    """The block's MLP: the paper's SwiGLU, or with its gated activations convolved (1d: over the
    sequence, URM's; 2d: over the canvas, the prefix passed through)."""
    if conv == "1d":
        return ConvSwiGLU(hidden_size, expansion, kernel)
    if conv == "2d":
        return GridConvSwiGLU(hidden_size, expansion, kernel, prefix_len)
    return SwiGLU(hidden_size, expansion)


class Block(nn.Module):
    """Post-norm transformer block: h = norm(h + attn(h)); h = norm(h + mlp(h))."""

    def __init__(
        self,
        hidden_size: int,
        n_heads: int,
        expansion: float,
        rms_eps: float,
        mlp_conv: MlpConv = "none",
        mlp_conv_kernel: int = 2,
        prefix_len: int = 0,
    ):
        super().__init__()
        self.attn = Attention(hidden_size, n_heads)
        self.mlp = swiglu(hidden_size, expansion, mlp_conv, mlp_conv_kernel, prefix_len)
        self.norm = RMSNorm(rms_eps)

    def forward(self, h: torch.Tensor, rope: Rope) -> torch.Tensor:
        # From the first sum on the state takes the sublayers' dtype (bf16 under autocast),
        # so the residual stream is not upcast to float32 at every add.
        a = self.attn(h, rope)
        h = self.norm(h.to(a.dtype) + a)
        return self.norm(h + self.mlp(h))


class PositionMLPBlock(nn.Module):
    """TRM-MLP's post-norm block: attention's place taken by a SwiGLU over the positions.

    h is turned to [B, D, L] so that mlp_t mixes the L positions of each feature, and the norm of
    that sum runs over the positions too, as the TRM reference code's mlp_t block computes it;
    then the usual SwiGLU over the features and its norm. L is fixed: one canvas size.
    """

    def __init__(
        self,
        hidden_size: int,
        seq_len: int,
        expansion: float,
        rms_eps: float,
        mlp_conv: MlpConv = "none",
        mlp_conv_kernel: int = 2,
        prefix_len: int = 0,
    ):
        super().__init__()
        self.mlp_t = SwiGLU(seq_len, expansion)
        self.mlp = swiglu(hidden_size, expansion, mlp_conv, mlp_conv_kernel, prefix_len)
        self.norm = RMSNorm(rms_eps)

    def forward(self, h: torch.Tensor, rope: Rope) -> torch.Tensor:
        t = h.transpose(1, 2)
        a = self.mlp_t(t)
        h = self.norm(t.to(a.dtype) + a).transpose(1, 2)
        return self.norm(h + self.mlp(h))
