"""The model: TRM's network, its recursion and deep supervision, the task table, the loss."""

from arcsolver.model.config import TRMConfig
from arcsolver.model.loss import halting_target, stablemax_cross_entropy, trm_loss
from arcsolver.model.puzzle_embedding import PuzzleEmbedding
from arcsolver.model.trm import TRM, Carry, StepOutput

__all__ = [
    "TRM",
    "Carry",
    "PuzzleEmbedding",
    "StepOutput",
    "TRMConfig",
    "halting_target",
    "stablemax_cross_entropy",
    "trm_loss",
]
