"""The submission recipe: test-time adaptation, augmented inference and the run's budget."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from arcsolver.train.config import OptimConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AdaptDataConfig(_Section):
    n_augmentations: int = Field(1000, ge=1)  # versions of each new task, identity included
    fixed_colours: list[int] = [0]
    translate: bool = True


class AdaptConfig(_Section):
    steps: int = Field(15_000, ge=0)  # 0: no adaptation (the new tasks keep the mean embedding)
    embeddings_only_fraction: float = Field(0.25, ge=0, le=1)  # then the whole network
    log_every: int = Field(50, ge=1)


class InferConfig(_Section):
    max_versions: int | None = Field(512, ge=1)  # augmented versions voted per test input
    batch_size: int = Field(256, ge=1)
    ranking: Literal["votes", "likelihood"] = "votes"
    likelihood_candidates: int = Field(8, ge=2)  # top voted candidates the likelihood re-ranks
    write_all_rankings: bool = True  # also write <out>.votes.json and <out>.likelihood.json


class SolveRunConfig(_Section):
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "bfloat16", "float32"] = "auto"
    threads: int | None = Field(None, ge=1)
    gpu_memory_gb: float | None = Field(None, gt=0)  # cap each process's GPU memory (rehearse a smaller card)
    time_budget_s: float | None = Field(None, gt=0)  # the whole solve, adaptation and inference
    safety_margin_s: float = Field(60.0, ge=0)  # kept free at the end of the budget
    workers: int | Literal["auto"] = "auto"  # processes over disjoint task shards (auto: one per GPU)


class SolveConfig(_Section):
    data: AdaptDataConfig = AdaptDataConfig()
    optim: OptimConfig = OptimConfig(global_batch_size=96, warmup_steps=200)
    adapt: AdaptConfig = AdaptConfig()
    infer: InferConfig = InferConfig()
    run: SolveRunConfig = SolveRunConfig()
