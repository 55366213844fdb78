"""Every setting, with its default and its meaning: the pretraining recipe (`PretrainConfig`: what
to train on, the model, the optimisation, evaluation, output) and the submission recipe
(`SolveConfig`: test-time adaptation, augmented inference and the run's budget).

Defaults are the paper's ARC-AGI-1 settings; `pretrain/*.toml` and `submit/*.toml` recipes
override them.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from arcsolver.data.encoding import CANVAS_SIDES, canvas_sides
from arcsolver.model.config import TRMConfig

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


class _Section(BaseModel):
    # No setting means anything at infinity or NaN: an lr of inf trains a dead model without a word.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class AugmentConfig(_Section):
    """How each task is augmented, in pretraining and in adaptation alike."""

    n_augmentations: int = Field(1000, ge=1, le=MAX_VERSIONS, description="versions per task, identity included")
    fixed_colours: Annotated[list[Colour], AfterValidator(_distinct)] = Field(
        [0], max_length=10, description="colours no permutation moves (0, black, the usual background)"
    )
    translate: bool = Field(
        True,
        description="shift each example's grids to a random place on its canvas (one example per version stays at the corner)",
    )


class MachineConfig(_Section):
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


class DataConfig(AugmentConfig):
    train_sets: list[str] = Field(
        ["arc1/training"],
        description="All pairs of these tasks are trained on (their test pairs too, where the outputs are known). Each a bundled set, a challenges file or a directory of task files at any depth.",
    )
    heldout_sets: list[str] = Field(
        ["arc1/evaluation"],
        description="Demonstration pairs trained on, test pairs held out for evaluation (the TRM protocol).",
    )
    max_side: int | None = Field(None, ge=1, le=30, description="keep tasks whose grids all fit this side")
    max_tasks: int | None = Field(
        None, ge=1, le=10_000_000, description="first N tasks of each set (quick runs, tests)"
    )
    sampling: Literal["reference", "uniform"] = Field(
        "reference",
        description="reference: each epoch takes one random version of every task, with all its pairs (TRM's); uniform: every (version, pair) example once per epoch, so tasks with more versions weigh more.",
    )
    layout: Literal["auto", "sized", "fixed"] = Field(
        "auto",
        description="sized: each example on the smallest square canvas of canvas_sides (up to model.canvas) that holds its grids, batches drawn one side at a time; fixed: every example on model.canvas (the paper's layout). auto: sized when the model's positions are rope2d (rope1d needs one canvas).",
    )
    canvas_sides: list[Annotated[int, Field(ge=1, le=30)]] = Field(
        default_factory=lambda: list(CANVAS_SIDES),
        min_length=1,
        description="square canvas sides of the sized layout (model.canvas is always one)",
    )


def _muon_in_torch(name: str) -> str:
    if name == "muon" and not hasattr(torch.optim, "Muon"):
        raise ValueError(
            f"muon needs torch.optim.Muon, part of torch since 2.9, and this is torch {torch.__version__}; "
            "upgrade torch, or use adam_atan2"
        )
    return name


class OptimConfig(_Section):
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


class RunConfig(MachineConfig):
    epochs: int | None = Field(
        100_000,
        ge=1,
        le=MAX_STEPS,
        description="run length in epochs of data.sampling (the paper's unit); give this or run.steps",
    )
    steps: int | None = Field(
        None,
        ge=1,
        le=MAX_STEPS,
        description="run length in optimiser steps (one per supervision step); give this or run.epochs",
    )
    time_limit_s: float | None = Field(None, gt=0, le=MAX_SECONDS, description="stop early, checkpoint and evaluate")
    flops: float | None = Field(
        None,
        gt=0,
        le=MAX_FLOPS,
        description="stop early at this compute: training FLOPs (forward and backward, all processes), e.g. 1e15",
    )
    target_heldout_loss: float | None = Field(
        None,
        gt=0,
        le=100,
        description="stop when the held-out loss of a fixed sample first reaches this (time to target); None: no target",
    )
    target_every: int = Field(
        25, ge=1, le=MAX_STEPS, description="steps between the target's checks (their FLOPs count against the run)"
    )
    target_queries: int = Field(
        64, ge=1, le=100_000, description="held-out test inputs in the target's fixed sample (one version each)"
    )
    compile: bool = Field(False, description="torch.compile the network (CUDA)")
    log_every: int = Field(
        10, ge=1, le=MAX_STEPS, description="steps between progress records (each the mean of the steps since the last)"
    )
    trackers: list[Tracker] = Field([], description=TRACKERS_DESCRIPTION.format("the records of metrics.jsonl"))
    checkpoint_every: int = Field(1000, ge=1, le=MAX_STEPS, description="steps between checkpoints")
    keep_checkpoints: int = Field(3, ge=1, le=1000, description="newest checkpoints kept on disk")

    @model_validator(mode="before")
    @classmethod
    def _steps_replace_default_epochs(cls, data):
        # A recipe that gives steps and no epochs means steps, not both.
        if isinstance(data, dict) and data.get("steps") is not None and "epochs" not in data:
            return {**data, "epochs": None}
        return data

    @model_validator(mode="after")
    def _one_length(self) -> RunConfig:
        if (self.epochs is None) == (self.steps is None):
            raise ValueError(
                f"run.epochs = {self.epochs} and run.steps = {self.steps}: give the run's length in exactly one "
                "of them (a recipe in epochs is shortened with --set run.epochs=N)"
            )
        return self


MAX_ROLLOUTS = 1000


class InferenceLevers(_Section):
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


class EvalConfig(InferenceLevers):
    every: int | None = Field(
        None, ge=1, le=MAX_STEPS, description="steps between held-out evaluations (None: at the end only)"
    )
    max_versions: int | None = Field(
        None, ge=1, le=MAX_VERSIONS, description="augmented versions per test input (None: all)"
    )
    periodic_max_versions: int | None = Field(
        64,
        ge=1,
        le=MAX_VERSIONS,
        description="The periodic evaluations vote over fewer versions (cheaper); the final one uses max_versions.",
    )
    batch_size: int = Field(256, ge=1, le=MAX_BATCH, description="queries per forward pass")


class PretrainConfig(_Section):
    data: DataConfig = DataConfig()
    model: TRMConfig = TRMConfig()
    optim: OptimConfig = OptimConfig()
    run: RunConfig = RunConfig()
    eval: EvalConfig = EvalConfig()

    @model_validator(mode="after")
    def _check(self) -> PretrainConfig:
        if self.data.max_side is not None and self.data.max_side > self.model.canvas:
            raise ValueError(f"data.max_side {self.data.max_side} exceeds model.canvas {self.model.canvas}")
        if self.data.layout == "sized" and self.model.positions == "rope1d":
            raise ValueError("data.layout 'sized' needs model.positions = 'rope2d' (rope1d positions know one canvas)")
        return self

    def canvas_sides(self) -> tuple[int, ...] | None:
        """The canvas sides of a sized layout (those of data.canvas_sides below model.canvas, and
        model.canvas itself), or None for the fixed model.canvas."""
        return canvas_sides(self.model.positions, self.model.canvas, self.data.layout, self.data.canvas_sides)

    def total_steps(self, examples_per_epoch: int) -> int:
        """The run's length in optimiser steps: run.steps, or enough global batches for run.epochs
        epochs of examples_per_epoch examples (TrainStream.examples_per_epoch)."""
        if self.run.steps is not None:
            return self.run.steps
        return steps_for_epochs(self.run.epochs, examples_per_epoch, self.optim.global_batch_size)


def steps_for_epochs(epochs: int, examples_per_epoch: int, global_batch_size: int) -> int:
    """Optimiser steps that cover `epochs` epochs in global batches (the last one completed)."""
    return -(-epochs * examples_per_epoch // global_batch_size)


# The submission recipe.


class AdaptConfig(_Section):
    steps: int = Field(
        15_000, ge=0, le=MAX_STEPS, description="0: no adaptation (the new tasks keep the mean embedding)"
    )
    embeddings_only_fraction: float = Field(
        0.25, ge=0, le=1, description="share of the steps that train the embeddings alone, before the whole network"
    )
    log_every: int = Field(
        50, ge=1, le=MAX_STEPS, description="steps between progress records (each the mean of the steps since the last)"
    )


class InferConfig(InferenceLevers):
    max_versions: int | None = Field(512, ge=1, le=MAX_VERSIONS, description="augmented versions voted per test input")
    batch_size: int = Field(256, ge=1, le=MAX_BATCH, description="queries per forward pass")
    ranking: Literal["votes", "likelihood"] = Field(
        "votes", description="which ranking submission.json takes its two attempts from"
    )
    likelihood_candidates: int = Field(8, ge=2, le=1000, description="top voted candidates the likelihood re-ranks")
    write_all_rankings: bool = Field(
        True, description="also write <out>.votes.json, <out>.likelihood.json and the sources record <out>.sources.json"
    )


class SolveRunConfig(MachineConfig):
    time_budget_s: float | None = Field(
        None, gt=0, le=MAX_SECONDS, description="the whole solve, adaptation and inference"
    )
    safety_margin_s: float = Field(60.0, ge=0, le=MAX_SECONDS, description="kept free at the end of the budget")
    workers: Annotated[int, Field(ge=1, le=MAX_THREADS)] | Literal["auto"] = Field(
        "auto", description="processes over disjoint task shards (auto: one per GPU)"
    )
    trackers: list[Tracker] = Field([], description=TRACKERS_DESCRIPTION.format("adaptation's progress records"))
    checkpoints: list[Annotated[str, Field(min_length=1)]] = Field(
        [],
        max_length=100,
        description="checkpoints or run directories answering as an ensemble, each adapted and voting (empty: --checkpoint, else the newest run)",
    )


class SolveConfig(_Section):
    data: AugmentConfig = AugmentConfig()
    # Adaptation's optimiser differs from pretraining's only here: a batch of 96 per process, a 200-step warm-up.
    optim: OptimConfig = OptimConfig(global_batch_size=96, warmup_steps=200)
    adapt: AdaptConfig = AdaptConfig()
    infer: InferConfig = InferConfig()
    run: SolveRunConfig = SolveRunConfig()
