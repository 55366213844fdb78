"""The submission recipe, `SolveConfig` (`submit/*.toml`): test-time adaptation, augmented
inference and the run's budget."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from arcsolver.config.shared import (
    MAX_BATCH,
    MAX_SECONDS,
    MAX_STEPS,
    MAX_THREADS,
    MAX_VERSIONS,
    TRACKERS_DESCRIPTION,
    AugmentConfig,
    InferenceLevers,
    MachineConfig,
    OptimConfig,
    Section,
    Tracker,
)


class AdaptConfig(Section):
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


class SolveConfig(Section):
    data: AugmentConfig = AugmentConfig()
    # Adaptation's optimiser differs from pretraining's only here: a batch of 96 per process, a 200-step warm-up.
    optim: OptimConfig = OptimConfig(global_batch_size=96, warmup_steps=200)
    adapt: AdaptConfig = AdaptConfig()
    infer: InferConfig = InferConfig()
    run: SolveRunConfig = SolveRunConfig()
