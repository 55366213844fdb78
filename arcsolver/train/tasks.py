"""Which tasks and examples a pretraining run trains on, and how long it runs over them.

Shared by the run itself and by `arcsolver plan`, so that the plan describes the run.
"""

from __future__ import annotations

from arcsolver.config import PretrainConfig
from arcsolver.data.loaders import load_tasks
from arcsolver.data.stream import Puzzle, SizedStream, TrainStream, stream_for
from arcsolver.data.task import Task
from arcsolver.errors import ConfigError


def select_tasks(cfg: PretrainConfig) -> tuple[list[Task], list[Task]]:
    """(train tasks, held-out tasks) per the recipe; a task in both is only held out."""
    fits = cfg.data.max_side or cfg.model.canvas

    def load(names: list[str]) -> list[Task]:
        out = []
        for name in names:
            tasks = [t for t in load_tasks(name) if t.max_side() <= fits]
            out.extend(tasks[: cfg.data.max_tasks])
        return out

    heldout = load(cfg.data.heldout_sets)
    heldout_ids = {t.id for t in heldout}
    # Never train on a held-out task's test pairs, even if another set repeats the task.
    train = [t for t in load(cfg.data.train_sets) if t.id not in heldout_ids]
    if not train and not heldout:
        raise ConfigError(f"no task fits a {fits}x{fits} canvas in {cfg.data.train_sets + cfg.data.heldout_sets}")
    return train, heldout


def task_counts(train: list[Task], heldout: list[Task]) -> str:
    """The tasks of a run in the words of docs/setup.md: trained on in full, or held out (demonstrations
    trained on, test inputs held out for evaluation)."""
    parts = []
    if train:
        parts.append(f"{len(train)} tasks trained on in full")
    if heldout:
        parts.append(f"{len(heldout)} tasks: demonstrations trained on, test inputs held out")
    return " + ".join(parts)


def training_stream(cfg: PretrainConfig, puzzles: list[Puzzle], pairs: dict) -> TrainStream | SizedStream:
    """The recipe's stream: grid-sized canvases (cfg.canvas_sides()) or the one fixed canvas."""
    canvas = cfg.canvas_sides() or cfg.model.canvas
    return stream_for(puzzles, pairs, canvas, cfg.run.seed, cfg.data.translate, cfg.data.sampling)


def schedule(cfg: PretrainConfig, stream: TrainStream, total_steps: int) -> str:
    """The run's length in the recipe's unit and in steps, for the first lines of a run."""
    per_epoch = f"{stream.examples_per_epoch} examples per epoch ({cfg.data.sampling} sampling)"
    if cfg.run.epochs is not None:
        return f"{cfg.run.epochs} epochs of {per_epoch} = {total_steps} steps of {cfg.optim.global_batch_size}"
    return f"{total_steps} steps of {cfg.optim.global_batch_size}, {per_epoch}"
