"""TRM's training loss: stable-max cross-entropy on the answer plus BCE on the halting logit."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from arcsolver.data.encoding import PAD


def stablemax_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """log p under stable-max: s(x) = x + 1 for x >= 0 and 1 / (1 - x) for x < 0, p = s / sum s.

    Unlike exp, s grows linearly, so logits cannot run away to push probabilities to exactly
    0 or 1 (softmax training of this model diverged in the HRM/TRM experiments). Computed in
    float32: the logits are only [B, H*W, 12], and s never overflows.
    """
    x = logits.float()
    # Each branch sees only its own half of the line, so neither produces inf/NaN gradients.
    s = torch.where(x >= 0, x.clamp(min=0) + 1, 1 / (1 - x.clamp(max=0)))
    return s.log() - s.sum(-1, keepdim=True).log()


def stablemax_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token loss [B, L] for logits [B, L, V] and labels [B, L] (or [B, H, W]); 0 at PAD."""
    labels = labels.reshape(logits.shape[:-1])
    log_p = stablemax_log_probs(logits)
    nll = -log_p.gather(-1, labels[..., None]).squeeze(-1)
    return nll.masked_fill(labels == PAD, 0.0)


def halting_target(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[B] 1.0 where every non-PAD label is the argmax prediction, else 0.0 (PAD cells ignored)."""
    labels = labels.flatten(1)
    wrong = (logits.argmax(-1) != labels) & (labels != PAD)
    return (~wrong.any(-1)).float()


def trm_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    halt_logit: torch.Tensor,
    halt_loss_weight: float,
    halted: torch.Tensor | None = None,
    steps: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """lm loss + halt_loss_weight (TRMConfig's) x halting BCE for one supervision step, and metrics.

    logits [B, H*W, V], labels [B, H, W] (or [B, H*W]), halt_logit [B]. The lm loss is the mean
    over each sample's supervised (non-PAD) tokens, then over samples; samples with no
    supervised token (batch padding) count in neither term. The halting target is "the answer
    is exactly right". Pass the carry's `halted` and `steps` to get the mean step count at
    which samples halted. Metrics are detached 0-d tensors (no device sync here).
    """
    labels = labels.flatten(1)
    supervised = labels != PAD
    n_supervised = supervised.sum(-1)
    valid = (n_supervised > 0).float()
    n_valid = valid.sum().clamp(min=1)

    per_token = stablemax_cross_entropy(logits, labels)
    per_sample = per_token.sum(-1) / n_supervised.clamp(min=1)
    lm_loss = (per_sample * valid).sum() / n_valid

    with torch.no_grad():
        correct = (logits.argmax(-1) == labels) & supervised
        exact = halting_target(logits, labels)
    halt_bce = F.binary_cross_entropy_with_logits(halt_logit.float(), exact, reduction="none")
    halt_loss = (halt_bce * valid).sum() / n_valid
    loss = lm_loss + halt_loss_weight * halt_loss

    with torch.no_grad():
        metrics = {
            "lm_loss": lm_loss.detach(),
            "halt_loss": halt_loss.detach(),
            "token_accuracy": correct.sum() / n_supervised.sum().clamp(min=1),
            "exact_accuracy": (exact * valid).sum() / n_valid,
            "halt_accuracy": (((halt_logit > 0).float() == exact).float() * valid).sum() / n_valid,
        }
        if halted is not None and steps is not None:
            done = halted.float() * valid
            metrics["halted_fraction"] = done.sum() / n_valid
            metrics["mean_halt_steps"] = (steps.float() * done).sum() / done.sum().clamp(min=1)
    return loss, metrics
