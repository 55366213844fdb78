import math

import pytest
import torch

from arcsolver.data.encoding import EOS, PAD
from arcsolver.model.loss import (
    halting_target,
    stablemax_cross_entropy,
    stablemax_log_probs,
    trm_loss,
)


def test_stablemax_against_a_hand_computed_value():
    # s = [x + 1 for x >= 0, 1 / (1 - x) for x < 0] = [3, 0.5, 1, 1.25]; sum 5.75
    logits = torch.tensor([[[2.0, -1.0, 0.0, 0.25]]])
    labels = torch.tensor([[3]])
    loss = stablemax_cross_entropy(logits, labels)
    assert loss.item() == pytest.approx(-math.log(1.25 / 5.75), rel=1e-6)
    assert stablemax_log_probs(logits).exp().sum().item() == pytest.approx(1.0, rel=1e-6)


def test_stablemax_ignores_pad_labels():
    logits = torch.randn(1, 3, 12)
    loss = stablemax_cross_entropy(logits, torch.tensor([[PAD, 5, PAD]]))
    assert loss[0, 0] == 0 and loss[0, 2] == 0 and loss[0, 1] > 0


def test_stablemax_gradients_are_finite_at_the_branch_points():
    logits = torch.tensor([[[1.0, 0.0, -1.0, 50.0, -50.0]]], requires_grad=True)
    stablemax_cross_entropy(logits, torch.tensor([[2]])).sum().backward()
    assert torch.isfinite(logits.grad).all()


def _logits_for(tokens: torch.Tensor, vocab: int = 12) -> torch.Tensor:
    """Logits [B, L, vocab] whose argmax is `tokens` [B, L]."""
    return 4 * torch.nn.functional.one_hot(tokens, vocab).float() - 2


def test_halting_target_is_exact_match_on_supervised_tokens():
    labels = torch.tensor([[3, 4, EOS, PAD], [3, 4, EOS, PAD], [5, 5, EOS, PAD]])
    predicted = torch.tensor([[3, 4, EOS, 7], [3, 9, EOS, PAD], [5, 5, EOS, PAD]])
    target = halting_target(_logits_for(predicted), labels)
    # row 0: wrong only where the label is PAD; row 1: one wrong colour; row 2: all right
    assert target.tolist() == [1.0, 0.0, 1.0]
    # labels may come as canvases [B, H, W]
    assert halting_target(_logits_for(predicted), labels.view(3, 2, 2)).tolist() == [1.0, 0.0, 1.0]


def test_lm_loss_is_a_mean_per_sample_then_over_samples():
    logits = torch.randn(2, 4, 12)
    labels = torch.tensor([[3, PAD, PAD, PAD], [3, 4, 5, PAD]])
    per_token = stablemax_cross_entropy(logits, labels)
    expected = (per_token[0, 0] + per_token[1, :3].mean()) / 2
    _, metrics = trm_loss(logits, labels, torch.zeros(2), halt_loss_weight=0.5)
    assert metrics["lm_loss"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_total_is_lm_plus_weighted_halting_bce():
    labels = torch.tensor([[3, 4, EOS, PAD], [3, 4, EOS, PAD]])
    logits = _logits_for(torch.tensor([[3, 4, EOS, PAD], [3, 2, EOS, PAD]]))
    halt_logit = torch.tensor([0.3, -0.7])
    loss, metrics = trm_loss(logits, labels, halt_logit, halt_loss_weight=0.5)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(halt_logit, torch.tensor([1.0, 0.0]))
    assert metrics["halt_loss"].item() == pytest.approx(bce.item(), rel=1e-6)
    assert loss.item() == pytest.approx(metrics["lm_loss"].item() + 0.5 * bce.item(), rel=1e-6)
    assert metrics["exact_accuracy"].item() == 0.5
    assert metrics["token_accuracy"].item() == pytest.approx(5 / 6)
    assert metrics["halt_accuracy"].item() == 1.0


def test_pad_positions_do_not_change_the_loss():
    labels = torch.tensor([[3, PAD, 4, PAD]])
    logits = torch.randn(1, 4, 12)
    other = logits.clone()
    other[0, [1, 3]] = torch.randn(2, 12) * 10
    halt = torch.tensor([0.1])
    loss, _ = trm_loss(logits, labels, halt, 0.5)
    assert trm_loss(other, labels, halt, 0.5)[0].item() == pytest.approx(loss.item())


def test_samples_without_supervised_tokens_are_left_out():
    labels = torch.tensor([[3, 4], [PAD, PAD]])
    logits = torch.randn(2, 2, 12)
    halt = torch.tensor([0.2, 9.0])
    loss, metrics = trm_loss(logits, labels, halt, 0.5)
    alone, _ = trm_loss(logits[:1], labels[:1], halt[:1], 0.5)
    assert loss.item() == pytest.approx(alone.item(), rel=1e-6)


def test_mean_halt_steps_counts_halted_samples_only():
    labels = torch.tensor([[3], [3], [3]])
    halted, steps = torch.tensor([True, False, True]), torch.tensor([2, 7, 4])
    _, metrics = trm_loss(torch.randn(3, 1, 12), labels, torch.zeros(3), 0.5, halted=halted, steps=steps)
    assert metrics["mean_halt_steps"].item() == 3.0
    assert metrics["halted_fraction"].item() == pytest.approx(2 / 3)
