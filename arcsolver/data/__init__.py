"""The data layer: ARC grids, pairs, tasks and task sets, their loaders and augmentation."""

from arcsolver.data.task import Grid, Pair, Task, TaskSet

__all__ = ["Grid", "Pair", "Task", "TaskSet"]
