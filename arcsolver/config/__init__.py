"""Every setting, with its default and its meaning: the pretraining recipe (`PretrainConfig`: what
to train on, the model, the optimisation, evaluation, output; pretrain.py) and the submission recipe
(`SolveConfig`: test-time adaptation, augmented inference and the run's budget; submit.py), over the
bounds and sections both share (shared.py).

Defaults are the paper's ARC-AGI-1 settings; `pretrain/*.toml` and `submit/*.toml` recipes
override them.
"""

from arcsolver.config.pretrain import DataConfig, EvalConfig, PretrainConfig, RunConfig, steps_for_epochs
from arcsolver.config.shared import (
    FLOAT32_MAX,
    MAX_BATCH,
    MAX_FLOPS,
    MAX_ROLLOUTS,
    MAX_SECONDS,
    MAX_STEPS,
    MAX_THREADS,
    MAX_VERSIONS,
    AugmentConfig,
    InferenceLevers,
    MachineConfig,
    OptimConfig,
    Tracker,
)
from arcsolver.config.submit import AdaptConfig, InferConfig, SolveConfig, SolveRunConfig

__all__ = [
    "FLOAT32_MAX",
    "MAX_BATCH",
    "MAX_FLOPS",
    "MAX_ROLLOUTS",
    "MAX_SECONDS",
    "MAX_STEPS",
    "MAX_THREADS",
    "MAX_VERSIONS",
    "AdaptConfig",
    "AugmentConfig",
    "DataConfig",
    "EvalConfig",
    "InferConfig",
    "InferenceLevers",
    "MachineConfig",
    "OptimConfig",
    "PretrainConfig",
    "RunConfig",
    "SolveConfig",
    "SolveRunConfig",
    "Tracker",
    "steps_for_epochs",
]
