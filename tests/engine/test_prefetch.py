"""The prefetcher gives exactly the stream's batches, whatever order they are asked in."""

import numpy as np
import torch

from arcsolver.data.loaders import load_tasks
from arcsolver.data.stream import SizedStream, build_puzzles, trainable_pairs
from arcsolver.engine.prefetch import Prefetcher


def stream() -> SizedStream:
    tasks = list(load_tasks("arc1/training"))[:12]
    return SizedStream(
        build_puzzles(tasks, 4, seed=0), trainable_pairs(tasks, []), (6, 10, 30), seed=0, sampling="reference"
    )


def test_batches_equal_the_streams_in_order_and_after_a_jump():
    reference = stream()
    with Prefetcher(stream(), 8, torch.device("cpu"), rank=1, world_size=2) as prefetch:
        for step in [0, 1, 2, 7, 8, 3]:  # a resume jumps; a stale batch is dropped
            side, tensors = prefetch.get(step)
            expected = reference.batch(step, 8, rank=1, world_size=2)
            assert side == reference.side_of(step) == tensors["inputs"].shape[-1]
            assert np.array_equal(tensors["inputs"].numpy(), expected.inputs)
            assert np.array_equal(tensors["labels"].numpy(), expected.labels)
            assert np.array_equal(tensors["puzzle_ids"].numpy(), expected.puzzle_ids)
            assert tensors["inputs"].dtype == torch.long and len(tensors["inputs"]) == 4
