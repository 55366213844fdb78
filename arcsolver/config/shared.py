"""What both recipes share: the bounds no setting may pass, and the sections pretraining and
solving both have (augmentation, the machine, the optimiser, the inference levers)."""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# Bounds that no run means to pass: past them a setting is a slip (a digit too many), and would
# end in a crash, an overflow or a run that never ends rather than in this one line.
MAX_STEPS = 10**7 - 1  # a checkpoint's 7-digit step (engine/checkpoint.py's MAX_STEP)
MAX_SECONDS = 10**8  # three years
MAX_BATCH = 1 << 20
MAX_VERSIONS = 100_000  # augmented versions of a task (8 symmetries x 9! colour orders bound them anyway)
MAX_THREADS = 1024  # CPU threads or worker processes; far past it torch's thread pool crashes
# The largest float32 (torch.finfo(torch.float32).max): a rate or factor the optimiser applies to
# float32 weights must be one, or torch refuses it mid-step ("cannot be converted ... overflow").
FLOAT32_MAX = 3.4028234663852886e38
MAX_FLOPS = 1e24  # ten thousand times the paper's ARC-AGI-1 run (about 1e20 FLOPs)


def _distinct(values: list[int]) -> list[int]:
    if len(set(values)) != len(values):
        raise ValueError(f"{values} names a colour twice; name each once")
    return values


Colour = Annotated[int, Field(ge=0, le=9)]
Beta = Annotated[float, Field(ge=0, lt=1)]


class Section(BaseModel):
    # No setting means anything at infinity or NaN: an lr of inf trains a dead model without a word.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class AugmentConfig(Section):
    """How each task is augmented, in pretraining and in adaptation alike."""

    n_augmentations: int = Field(1000, ge=1, le=MAX_VERSIONS, description="versions per task, identity included")
    fixed_colours: Annotated[list[Colour], AfterValidator(_distinct)] = Field(
        [0], max_length=10, description="colours no permutation moves (0, black, the usual background)"
    )
    translate: bool = Field(
        True,
        description="shift each example's grids to a random place on its canvas (one example per version stays at the corner)",
    )


class MachineConfig(Section):
    """The run's seed and how it uses the hardware, in pretraining and in solving alike."""

    seed: int = Field(
        0,
        ge=0,
        le=2**32 - 1,
        description="seeds the augmentations, the order of the examples and, in pretraining, the initial weights",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when visible, else the CPU")
    dtype: Literal["auto", "bfloat16", "float32"] = Field(
        "auto", description="autocast precision; auto: bf16 on CUDA and on CPUs with AMX or AVX-512 BF16, else float32"
    )
    threads: int | None = Field(None, ge=1, le=MAX_THREADS, description="CPU threads (default: torch's choice)")
    gpu_memory_gb: float | None = Field(
        None, gt=0, le=100_000, description="cap each process's GPU memory (share a card, or rehearse a smaller one)"
    )


Tracker = Literal["tensorboard", "wandb"]
TRACKERS_DESCRIPTION = (
    "also send {} to these: tensorboard, wandb (offline unless WANDB_MODE or WANDB_API_KEY is set); each needs "
    "its package, e.g. pip install tensorboard"
)


def _muon_in_torch(name: str) -> str:
    if name == "muon" and not hasattr(torch.optim, "Muon"):
        raise ValueError(
            f"muon needs torch.optim.Muon, part of torch since 2.9, and this is torch {torch.__version__}; "
            "upgrade torch, or use adam_atan2"
        )
    return name


class OptimConfig(Section):
    optimizer: Annotated[Literal["adam_atan2", "adamw", "muon"], AfterValidator(_muon_in_torch)] = Field(
        "adam_atan2",
        description="adam_atan2: the paper's Adam with atan2 in place of epsilon; muon: torch.optim.Muon for the blocks' matrices, adam_atan2 for the rest",
    )
    global_batch_size: int = Field(768, ge=1, le=MAX_BATCH, description="what the optimiser and sign-SGD see per step")
    micro_batch_size: Annotated[int, Field(ge=1, le=MAX_BATCH)] | Literal["auto"] = Field(
        "auto",
        description="Samples per forward/backward within a process; gradients accumulate up to the batch. auto: measured on CUDA to fill the GPU; on a CPU the whole local batch where it fits half the memory available, else split.",
    )
    lr: float = Field(1e-4, gt=0, le=FLOAT32_MAX, description="learning rate of the network (after warm-up)")
    betas: tuple[Beta, Beta] = Field((0.9, 0.95), description="Adam's moment decay rates")
    weight_decay: float = Field(0.1, ge=0, le=FLOAT32_MAX, description="decoupled weight decay of the network")
    warmup_steps: int = Field(2000, ge=0, le=MAX_STEPS, description="linear learning-rate warm-up from 0")
    cooldown: float = Field(
        0.0,
        ge=0,
        le=1,
        description="the last fraction of the run over which the learning rates fall linearly to 0 (warm-up, stable, decay); the run's length is whichever of its bounds (steps, run.flops, the time limit) it is nearest; 0: no decay (the paper's)",
    )
    grad_clip: float | None = Field(
        None, gt=0, le=FLOAT32_MAX, description="clip the global gradient norm to this (None: no clipping)"
    )
    puzzle_emb_lr: float = Field(
        1e-2, gt=0, le=FLOAT32_MAX, description="sign-SGD learning rate of the puzzle-embedding rows"
    )
    puzzle_emb_weight_decay: float = Field(
        0.1, ge=0, le=FLOAT32_MAX, description="decoupled weight decay of the puzzle-embedding rows"
    )
    ema_rate: float | None = Field(0.999, gt=0, lt=1, description="None: evaluate the raw weights")


MAX_ROLLOUTS = 1000


class InferenceLevers(Section):
    """Test-time levers of augmented inference, shared by pretraining's held-out evaluation
    (eval.*) and solve (infer.*): off (None, 0) they change nothing."""

    n_recursions: int | None = Field(
        None, ge=1, le=64, description="T at inference: recursions per supervision step (None: the model's own)"
    )
    n_supervision: int | None = Field(
        None, ge=1, le=256, description="N_sup at inference: supervision steps run (None: the model's own)"
    )
    rollouts: int = Field(
        0,
        ge=0,
        le=MAX_ROLLOUTS,
        description="K: each query also runs K times from a noisy start of y and z; their answers join the vote",
    )
    rollout_noise: float = Field(
        0.1,
        gt=0,
        le=10,
        description="sigma: scale of the Gaussian noise added to the rollouts' initial y and z (unit-scale vectors)",
    )
