"""The pretraining recipe, `PretrainConfig` (`pretrain/*.toml`): what to train on, the model, the
optimisation, the run and its held-out evaluation."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from arcsolver.config.shared import (
    MAX_BATCH,
    MAX_FLOPS,
    MAX_SECONDS,
    MAX_STEPS,
    MAX_VERSIONS,
    TRACKERS_DESCRIPTION,
    AugmentConfig,
    InferenceLevers,
    MachineConfig,
    OptimConfig,
    Section,
    Tracker,
)
from arcsolver.data.encoding import CANVAS_SIDES, canvas_sides
from arcsolver.model.config import TRMConfig


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


class PretrainConfig(Section):
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
