"""Solving quickly in tests: the submit settings, a challenges file, and what a solve's report and
sources record say."""

import json

from arcsolver.config import SolveConfig
from arcsolver.data.loaders import load_tasks
from arcsolver.recipes import load_recipe

QUICK = [
    "data.n_augmentations=2",
    "adapt.steps=4",
    "adapt.log_every=1",
    "optim.global_batch_size=8",
    "infer.max_versions=2",
    "infer.batch_size=16",
    "run.threads=1",
]


def quick(*extra) -> SolveConfig:
    return load_recipe(SolveConfig, "submit", "cpu-small", QUICK + list(extra))


def write_challenges(path, tasks, extra=None):
    obj = {
        t.id: {
            "train": [{"input": p.input.tolist(), "output": p.output.tolist()} for p in t.train],
            "test": [{"input": p.input.tolist()} for p in t.test],
        }
        for t in tasks
    }
    obj.update(extra or {})
    path.write_text(json.dumps(obj))
    return obj


def answered_by_the_model(report) -> int:
    """Tasks the model ran to the end, with a grid or with none (NO_GRID): every other fallback
    reason is a task it never answered (malformed, too big, the time budget, an error)."""
    from arcsolver.solve.answer import NO_GRID

    return report.tasks - sum(reason != NO_GRID for reason in report.fallbacks.values())


def sources_counts(sources: dict) -> tuple[int, int]:
    """(tasks the model gave an attempt of, tasks of fallbacks only), read from a sources record."""
    model = sum(any(a["source"] == "model" for test in task for a in test.values()) for task in sources.values())
    return model, len(sources) - model


def small_tasks(n: int):
    return list(load_tasks("arc1/evaluation").filter(lambda t: t.max_side() <= 5))[:n]
