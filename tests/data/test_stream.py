"""The data protocol's sampling: the reference's epochs, world-size independence, the schedule length."""

from collections import defaultdict

import numpy as np
import pytest
from pydantic import ValidationError

from arcsolver.config import PretrainConfig, steps_for_epochs
from arcsolver.data.loaders import load_tasks
from arcsolver.data.stream import TrainStream, build_puzzles, trainable_pairs


@pytest.fixture(scope="module")
def data():
    tasks = list(load_tasks("arc1/training").filter(lambda t: t.max_side() <= 5))[:6]
    # Held-out tasks contribute only their demonstrations: the epoch must count those alone.
    return build_puzzles(tasks, 5, seed=0), trainable_pairs(tasks[:3], tasks[3:])


def stream(data, sampling, seed=1):
    puzzles, pairs = data
    return TrainStream(puzzles, pairs, canvas=6, seed=seed, sampling=sampling)


def epoch_rows(s: TrainStream, n_epochs: int, batch_size: int) -> list[np.ndarray]:
    """The (puzzle id, pair index) rows of the first n_epochs epochs, read batch after batch."""
    length = s.examples_per_epoch
    n_batches = -(-n_epochs * length // batch_size)
    rows = np.concatenate([s.example_indices(b, batch_size) for b in range(n_batches)])
    return [s.examples[rows[e * length : (e + 1) * length]] for e in range(n_epochs)]


def test_reference_epoch_is_one_version_of_every_task_with_all_its_pairs(data):
    puzzles, pairs = data
    s = stream(data, "reference")
    assert s.examples_per_epoch == sum(len(p) for p in pairs.values())
    seen = defaultdict(set)
    # A batch size that does not divide the epoch: epochs start and end inside batches.
    for epoch in epoch_rows(s, 12, batch_size=7):
        by_task = defaultdict(list)
        for puzzle_id, pair_index in epoch:
            by_task[puzzles[puzzle_id - 1].task.id].append((puzzle_id, pair_index))
        assert by_task.keys() == pairs.keys()
        for task_id, examples in by_task.items():
            versions = {p for p, _ in examples}
            assert len(versions) == 1, task_id
            assert sorted(j for _, j in examples) == list(range(len(pairs[task_id])))
            seen[task_id] |= versions
    # The version is drawn afresh every epoch.
    assert all(len(v) > 1 for v in seen.values())


def test_uniform_epoch_is_every_pair_of_every_version(data):
    s = stream(data, "uniform")
    assert s.examples_per_epoch == len(s)
    for epoch in epoch_rows(s, 2, batch_size=7):
        assert len({tuple(r) for r in epoch}) == len(s)


def test_uniform_sampling_keeps_its_batches(data):
    # The batches this stream drew before the reference sampling existed: old runs resume alike.
    b = stream(data, "uniform", seed=3).batch(5, 12)
    assert b.puzzle_ids.tolist() == [14, 22, 23, 16, 8, 17, 24, 1, 13, 13, 1, 29]


@pytest.mark.parametrize("sampling", ["reference", "uniform"])
def test_batch_is_the_same_whatever_the_world_size(data, sampling):
    s = stream(data, sampling)
    for index in (0, 3, 40):
        whole = s.batch(index, 12)
        for world_size in (2, 3, 4):
            parts = [s.batch(index, 12, rank, world_size) for rank in range(world_size)]
            for field in ("inputs", "labels", "puzzle_ids"):
                assert np.array_equal(np.concatenate([getattr(p, field) for p in parts]), getattr(whole, field))


@pytest.mark.parametrize("sampling", ["reference", "uniform"])
def test_batch_is_a_pure_function_of_seed_and_index(data, sampling):
    a, b = stream(data, sampling), stream(data, sampling)
    # Out of order and repeated: no hidden state carries from one batch to the next.
    for index in (9, 0, 9, 123, 2):
        x, y = a.batch(index, 8), b.batch(index, 8)
        for field in ("inputs", "labels", "puzzle_ids"):
            assert np.array_equal(getattr(x, field), getattr(y, field))
    other = stream(data, sampling, seed=2)
    assert any(not np.array_equal(a.batch(i, 8).inputs, other.batch(i, 8).inputs) for i in range(3))


def test_steps_for_epochs_covers_every_epoch():
    assert steps_for_epochs(1, 768, 768) == 1
    assert steps_for_epochs(1, 769, 768) == 2
    assert steps_for_epochs(100_000, 3081, 768) == 401_172  # ARC-AGI-1: training pairs + evaluation demos


def test_run_length_in_epochs_or_steps():
    assert PretrainConfig().run.epochs == 100_000  # the paper's
    by_epochs = PretrainConfig.model_validate({"run": {"epochs": 3}, "optim": {"global_batch_size": 8}})
    assert by_epochs.total_steps(examples_per_epoch=20) == 8  # 60 examples in batches of 8
    # A recipe that gives steps alone (cpu-small.toml, the tests' recipes) keeps meaning steps.
    by_steps = PretrainConfig.model_validate({"run": {"steps": 7}})
    assert by_steps.run.epochs is None and by_steps.total_steps(examples_per_epoch=20) == 7
    with pytest.raises(ValidationError, match="exactly one"):
        PretrainConfig.model_validate({"run": {"epochs": 3, "steps": 7}})
