"""Grid-sized canvases: the sized training stream, the inference canvas rule, and inference over
queries of several canvas sides."""

import numpy as np
import pytest
import torch

from arcsolver.data.augment import Augmentation
from arcsolver.data.encoding import CANVAS_SIDES, EOS, VOCAB_SIZE, decode_grid, encode_grid, fitting_side
from arcsolver.data.loaders import load_tasks
from arcsolver.data.task import Pair, Task, as_grid
from arcsolver.solve.inference import inference_side, predict, queries_for, query_sides
from arcsolver.train.dataset import SizedStream, build_puzzles, trainable_pairs


@pytest.fixture(scope="module")
def stream():
    tasks = list(load_tasks("arc1/training"))[:40]
    puzzles = build_puzzles(tasks, 3, seed=0)
    return tasks, puzzles, SizedStream(puzzles, trainable_pairs(tasks, []), CANVAS_SIDES, seed=5, sampling="reference")


def test_fitting_side_leaves_room_for_the_eos_border():
    assert fitting_side([(5, 5)]) == 6 and fitting_side([(6, 2)]) == 10 and fitting_side([(2, 9), (3, 3)]) == 10
    assert fitting_side([(29, 29)]) == 30 and fitting_side([(30, 30)]) == 30  # a full canvas needs no border
    with pytest.raises(ValueError):
        fitting_side([(12, 12)], sides=(6, 10))


def test_every_batch_sits_on_its_own_side_and_every_grid_decodes(stream):
    tasks, puzzles, s = stream
    by_id = {t.id: t for t in tasks}
    for k in range(0, 60, 3):
        side = s.side_of(k)
        batch = s.batch(k, 8)
        assert batch.inputs.shape == (8, side, side) == batch.labels.shape
        for inp, lab, pid in zip(batch.inputs, batch.labels, batch.puzzle_ids):
            puzzle = puzzles[pid - 1]
            task = by_id[puzzle.task.id]
            out = decode_grid(np.roll(lab, (-np.argwhere(lab >= 2).min(0)).tolist(), axis=(0, 1)))
            originals = [puzzle.augmentation.apply_grid(p.output) for p in task.train + task.test]
            assert any(o.shape == out.shape and (o == out).all() for o in originals)
            # The smallest side that holds the pair: one size down would not.
            assert side == fitting_side([out.shape, tuple(np.ptp(np.argwhere(inp >= 2), axis=0) + 1)])


def test_sized_batches_are_the_same_whatever_the_world_size(stream):
    _, _, s = stream
    for k in (0, 7, 1500):
        whole = s.batch(k, 12)
        parts = [s.batch(k, 12, rank=r, world_size=3) for r in range(3)]
        assert np.array_equal(np.concatenate([p.labels for p in parts]), whole.labels)
        assert np.array_equal(np.concatenate([p.puzzle_ids for p in parts]), whole.puzzle_ids)


def test_sides_follow_their_share_of_the_examples(stream):
    _, _, s = stream
    drawn = np.asarray([s.side_of(k) for k in range(4000)])
    for side, p in zip(s.sides, s.probabilities):
        assert abs((drawn == side).mean() - p) < 0.03
    # Each side walks through its own batches in order: batch k is its side's n-th, n counted.
    assert s._position(3999)[1] == int((drawn[:3999] == drawn[3999]).sum())


def grid(h, w, c=1):
    return as_grid(np.full((h, w), c).tolist())


def test_inference_side_guesses_the_output_size_from_the_demonstrations():
    same = Task("a", (Pair(grid(3, 3), grid(3, 3)), Pair(grid(7, 2), grid(7, 2))), (Pair(grid(9, 4), None),))
    assert inference_side(same, 0, CANVAS_SIDES) == 10
    fixed = Task("b", (Pair(grid(3, 3), grid(12, 12)), Pair(grid(4, 4), grid(12, 12))), (Pair(grid(5, 5), None),))
    assert inference_side(fixed, 0, CANVAS_SIDES) == 14
    mixed = Task("c", (Pair(grid(2, 2), grid(4, 4)), Pair(grid(3, 3), grid(17, 6))), (Pair(grid(5, 5), None),))
    assert inference_side(mixed, 0, CANVAS_SIDES) == 18
    assert query_sides({"a": same}, queries_for(same, [(1, Augmentation.identity())]), 30) == [30]


class Echo(torch.nn.Module):
    """Answers every input with itself, on whatever canvas it is given."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.seen = []

    def predict(self, inputs, puzzle_ids):
        self.seen.append(tuple(inputs.shape[1:]))
        logits = torch.nn.functional.one_hot(inputs.flatten(1), VOCAB_SIZE).float() * 10
        return logits, torch.zeros(len(inputs))


def test_predict_runs_each_side_in_its_own_batches_and_keeps_the_query_order():
    small = Task("s", (Pair(grid(2, 2), grid(2, 2)),), (Pair(grid(3, 2, 4), None),))
    big = Task("b", (Pair(grid(11, 11), grid(11, 11)),), (Pair(grid(12, 5, 7), None),))
    augs = [(1, Augmentation.identity()), (2, Augmentation(1, tuple(range(10))))]
    queries = [q for pair in zip(queries_for(small, augs), queries_for(big, augs)) for q in pair]  # interleaved
    model = Echo()
    preds, log_probs = predict(model, {"s": small, "b": big}, queries, CANVAS_SIDES, batch_size=8, keep_log_probs=True)
    assert sorted(set(model.seen)) == [(6, 6), (14, 14)] and len(model.seen) == 2
    for q, (g, _) in zip(queries, preds):
        assert np.array_equal(g, {"s": small, "b": big}[q.task_id].test[0].input)
    assert [lp.shape[0] for lp in log_probs] == [36, 196] * 2
    assert encode_grid(grid(3, 2), 6)[3, 0] == EOS
