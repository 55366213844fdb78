import math

import pytest
import torch

from arcsolver.model.layers import (
    Attention,
    Block,
    ConvSwiGLU,
    GridConvSwiGLU,
    RMSNorm,
    SwiGLU,
    lecun_linear,
    swiglu,
    swiglu_width,
    trunc_normal_,
)
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


# --- the SwiGLU's convolution (model.mlp_conv) ------------------------------------------


def urm_layers():
    """URM's models/layers.py from a clone named by URM_REFERENCE (github.com/zitian-gao/URM),
    or None. Its flash-attention import is met by an empty module: ConvSwiGLU does not use it."""
    import importlib.util
    import os
    import sys
    import types
    from pathlib import Path

    root = os.environ.get("URM_REFERENCE")
    if not root or not (Path(root) / "models" / "layers.py").is_file():
        return None
    pytest.importorskip("einops", reason="URM's layers need einops")
    sys.modules.setdefault("flash_attn_interface", types.SimpleNamespace(flash_attn_func=None))
    sys.path.insert(0, root)
    try:
        spec = importlib.util.spec_from_file_location("urm_layers", Path(root) / "models" / "layers.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(root)


def conv_swiglu_as_written(m: ConvSwiGLU, x: torch.Tensor) -> torch.Tensor:
    """URM's computation step by step: gate_up, silu(gate) * up, a depthwise Conv1d over the
    sequence (padding k // 2, bias) cut back to the sequence length, SiLU, down projection."""
    width, k = m.down.in_features, m.conv.kernel_size[0]
    gate, up = (x @ m.gate_up.weight.T).chunk(2, dim=-1)
    h = (torch.nn.functional.silu(gate) * up).transpose(1, 2)  # [B, width, L]
    padded = torch.nn.functional.pad(h, (k // 2, k // 2))
    out = torch.zeros_like(h) + m.conv.bias[None, :, None]
    for t in range(x.shape[1]):
        for j in range(k):
            out[:, :, t] += m.conv.weight[:, 0, j] * padded[:, :, t + j]
    assert width == h.shape[1]
    return torch.nn.functional.silu(out).transpose(1, 2) @ m.down.weight.T


@pytest.mark.parametrize("kernel", [2, 3])
def test_conv_swiglu_is_urms_computation(kernel):
    torch.manual_seed(0)
    m = ConvSwiGLU(32, 4, kernel)
    with torch.no_grad():
        m.conv.weight.normal_()
        m.conv.bias.normal_()
    x = torch.randn(2, 7, 32)
    torch.testing.assert_close(m(x), conv_swiglu_as_written(m, x), atol=1e-5, rtol=1e-4)
    # URM's k = 2: each position sees itself and the one before it, never the one after.
    if kernel == 2:
        changed = x.clone()
        changed[:, 4] += 1.0
        assert torch.equal(m(x)[:, :4], m(changed)[:, :4]) and not torch.equal(m(x)[:, 5], m(changed)[:, 5])


def test_conv_swiglu_equals_urms_module():
    urm = urm_layers()
    if urm is None:
        pytest.skip("no clone of URM (set URM_REFERENCE to one)")
    torch.manual_seed(0)
    theirs = urm.ConvSwiGLU(32, 4, conv_kernel=2).float()
    ours = ConvSwiGLU(32, 4, 2)
    ours.load_state_dict(
        {
            "gate_up.weight": theirs.gate_up_proj.weight,
            "down.weight": theirs.down_proj.weight,
            "conv.weight": theirs.dwconv.weight,
            "conv.bias": theirs.dwconv.bias,
        }
    )
    x = torch.randn(3, 11, 32)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-4)


def test_grid_conv_swiglu_convolves_the_canvas_and_passes_the_prefix_through():
    torch.manual_seed(0)
    prefix, side, k = 2, 4, 3
    m = GridConvSwiGLU(32, 4, k, prefix)
    x = torch.randn(2, prefix + side * side, 32)
    gate, up = m.gate_up(x).chunk(2, dim=-1)
    h = torch.nn.functional.silu(gate) * up
    cells = h[:, prefix:].reshape(2, side, side, -1).permute(0, 3, 1, 2)
    conv = torch.nn.functional.conv2d(cells, m.conv.weight, m.conv.bias, padding=1, groups=cells.shape[1])
    expected = torch.cat([h[:, :prefix], conv.permute(0, 2, 3, 1).reshape(2, side * side, -1)], dim=1)
    torch.testing.assert_close(m(x), m.down(torch.nn.functional.silu(expected)))
    # A cell reaches its 3x3 neighbourhood on the grid, nothing two rows or columns away, and
    # never the prefix.
    changed = x.clone()
    changed[:, prefix + 5] += 1.0  # row 1, column 1
    moved = (m(changed) - m(x)).abs().sum(-1)[0]
    assert all(moved[prefix + i] > 0 for i in (0, 2, 8, 10))
    assert all(moved[prefix + i] == 0 for i in (3, 7, 13, 15)) and (moved[:prefix] == 0).all()


def test_swiglu_without_conv_is_the_papers():
    assert type(swiglu(32, 4)) is SwiGLU
    assert type(swiglu(32, 4, "1d", 2)) is ConvSwiGLU and type(swiglu(32, 4, "2d", 2, 3)) is GridConvSwiGLU
    block = Block(32, 2, 4, 1e-5)
    assert type(block.mlp) is SwiGLU and set(dict(block.named_parameters())) == {
        "attn.qkv.weight",
        "attn.out.weight",
        "mlp.gate_up.weight",
        "mlp.down.weight",
    }
