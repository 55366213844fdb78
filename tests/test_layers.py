import math

import pytest
import torch

from arcsolver.model.layers import Attention, Block, RMSNorm, SwiGLU, lecun_linear, swiglu_width, trunc_normal_
from arcsolver.model.positions import RotaryEmbedding


def test_rmsnorm_gives_unit_rms_and_keeps_dtype():
    x = 3 * torch.randn(4, 7, 64) + 1
    out = RMSNorm(1e-5)(x)
    assert torch.allclose(out.pow(2).mean(-1), torch.ones(4, 7), atol=1e-4)
    assert RMSNorm(1e-5)(x.bfloat16()).dtype == torch.bfloat16


def test_swiglu_width_matches_the_reference_rounding():
    assert swiglu_width(512, 4) == 1536  # 2/3 * 4 * 512 = 1365.3 -> 1536
    assert swiglu_width(64, 4) == 256
    assert SwiGLU(512, 4).down.in_features == 1536


def test_truncated_lecun_init_has_the_requested_std_and_no_bias():
    layer = lecun_linear(256, 512)
    assert layer.bias is None
    std = 1 / math.sqrt(256)
    assert layer.weight.std().item() == pytest.approx(std, rel=0.03)
    assert layer.weight.abs().max().item() <= 2 * std / 0.8796 + 1e-6
    w = trunc_normal_(torch.empty(100_000), std=1.0)
    assert w.std().item() == pytest.approx(1.0, rel=0.02)


def test_attention_is_not_causal():
    torch.manual_seed(0)
    attn = Attention(32, 2)
    rope = RotaryEmbedding(16, 2, 10000.0, "rope1d")(2, 3, "cpu")
    x = torch.randn(1, 8, 32)
    changed = x.clone()
    changed[0, -1] += 1.0
    assert not torch.allclose(attn(x, rope)[0, 0], attn(changed, rope)[0, 0])


def test_block_is_post_norm_and_runs_under_bf16_autocast():
    torch.manual_seed(0)
    block = Block(32, 2, 4, 1e-5)
    rope = RotaryEmbedding(16, 2, 10000.0, "rope1d")(3, 3, "cpu")
    h = 5 * torch.randn(2, 11, 32)
    out = block(h, rope)
    assert out.shape == h.shape
    assert torch.allclose(out.pow(2).mean(-1), torch.ones(2, 11), atol=1e-4)
    assert all(p.ndim == 2 for p in block.parameters())  # weights only, no biases
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = block(h, rope)
    assert fast.dtype == torch.bfloat16
    assert (fast.float() - out).abs().mean() < 0.03  # bf16 matmuls: close on average
