import pytest
import torch

from arcsolver.model.positions import RotaryEmbedding, apply_rotary


def _rotated_dot(cos, sin, i, j, q, k):
    """<rot_i q, rot_j k> for positions i, j of a table."""
    rq = apply_rotary(q[None], cos[i : i + 1], sin[i : i + 1])[0]
    rk = apply_rotary(k[None], cos[j : j + 1], sin[j : j + 1])[0]
    return (rq * rk).sum().item()


def test_rotary_preserves_norm_and_depends_on_relative_position_1d():
    rope = RotaryEmbedding(head_dim=16, prefix_len=4, theta=10000.0, mode="rope1d")
    cos, sin = rope(5, 5, torch.device("cpu"))
    assert cos.shape == (4 + 25, 8)
    x = torch.randn(29, 16)
    assert torch.allclose(apply_rotary(x, cos, sin).norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    q, k = torch.randn(16), torch.randn(16)
    same_offset = _rotated_dot(cos, sin, 13, 20, q, k)
    assert _rotated_dot(cos, sin, 3, 10, q, k) == pytest.approx(same_offset, abs=1e-4)


def test_rope2d_offsets_do_not_depend_on_canvas_size():
    rope = RotaryEmbedding(head_dim=16, prefix_len=3, theta=10000.0, mode="rope2d")
    small, big = rope(5, 5, torch.device("cpu")), rope(8, 8, torch.device("cpu"))
    q, k = torch.randn(16), torch.randn(16)

    def cell(canvas, r, c):
        return 3 + r * canvas + c

    # the same pairs of cells on both canvases, then the prefix's first position to a cell
    for a, b in [((1, 2), (3, 0)), ((0, 0), (4, 4))]:
        on_small = _rotated_dot(*small, cell(5, *a), cell(5, *b), q, k)
        on_big = _rotated_dot(*big, cell(8, *a), cell(8, *b), q, k)
        assert on_small == pytest.approx(on_big, abs=1e-4)
    prefix_to_cell = _rotated_dot(*big, 0, cell(8, 2, 2), q, k)
    assert _rotated_dot(*small, 0, cell(5, 2, 2), q, k) == pytest.approx(prefix_to_cell, abs=1e-4)


def test_rope2d_positions_are_all_distinct_prefix_included():
    rope = RotaryEmbedding(head_dim=16, prefix_len=16, theta=10000.0, mode="rope2d")
    cos, sin = rope(30, 30, torch.device("cpu"))
    table = torch.cat([cos, sin], dim=-1)
    assert len(torch.unique(table, dim=0)) == 16 + 900


def test_rotary_tables_are_cached():
    rope = RotaryEmbedding(head_dim=8, prefix_len=2, theta=10000.0, mode="rope2d")
    assert rope(4, 4, "cpu")[0] is rope(4, 4, torch.device("cpu"))[0]


def test_rotary_rejects_bad_head_dims():
    with pytest.raises(ValueError, match="divisible by 4"):
        RotaryEmbedding(head_dim=6, prefix_len=2, theta=10000.0, mode="rope2d")
    with pytest.raises(ValueError, match="unknown rotary mode"):
        RotaryEmbedding(head_dim=8, prefix_len=2, theta=10000.0, mode="learned")


def test_rotary_tables_are_not_in_the_state_dict():
    # Checkpoints hold no positions: a model's tables are rebuilt from its config.
    rope = RotaryEmbedding(16, 2, 10000.0, "rope2d", canvas=6)
    rope(6, 6, "cpu")
    assert rope.state_dict() == {}
