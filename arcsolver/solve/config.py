"""The submission recipe: test-time adaptation, augmented inference and the run's budget."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from arcsolver.train.config import OptimConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AdaptDataConfig(_Section):
    n_augmentations: int = Field(1000, ge=1, description="versions of each new task, identity included")
    fixed_colours: list[int] = Field([0], description="colours no permutation moves (0, black, the usual background)")
    translate: bool = Field(True, description="shift each example's grids to a random place on its canvas (one example per version stays at the corner)")


class AdaptConfig(_Section):
    steps: int = Field(15_000, ge=0, description="0: no adaptation (the new tasks keep the mean embedding)")
    embeddings_only_fraction: float = Field(0.25, ge=0, le=1, description="share of the steps that train the embeddings alone, before the whole network")
    log_every: int = Field(50, ge=1, description="steps between progress records")


class InferConfig(_Section):
    max_versions: int | None = Field(512, ge=1, description="augmented versions voted per test input")
    batch_size: int = Field(256, ge=1, description="queries per forward pass")
    ranking: Literal["votes", "likelihood"] = Field("votes", description="which ranking submission.json takes its two attempts from")
    likelihood_candidates: int = Field(8, ge=2, description="top voted candidates the likelihood re-ranks")
    write_all_rankings: bool = Field(True, description="also write <out>.votes.json and <out>.likelihood.json")


class SolveRunConfig(_Section):
    seed: int = Field(0, description="seeds the data, the augmentations and the weights")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when visible, else the CPU")
    dtype: Literal["auto", "bfloat16", "float32"] = Field("auto", description="autocast precision; auto: bf16 on CUDA and on CPUs with AMX, else float32")
    threads: int | None = Field(None, ge=1, description="CPU threads (default: torch's choice)")
    gpu_memory_gb: float | None = Field(None, gt=0, description="cap each process's GPU memory (rehearse a smaller card)")
    time_budget_s: float | None = Field(None, gt=0, description="the whole solve, adaptation and inference")
    safety_margin_s: float = Field(60.0, ge=0, description="kept free at the end of the budget")
    workers: int | Literal["auto"] = Field("auto", description="processes over disjoint task shards (auto: one per GPU)")


class SolveConfig(_Section):
    data: AdaptDataConfig = AdaptDataConfig()
    optim: OptimConfig = OptimConfig(global_batch_size=96, warmup_steps=200)
    adapt: AdaptConfig = AdaptConfig()
    infer: InferConfig = InferConfig()
    run: SolveRunConfig = SolveRunConfig()
