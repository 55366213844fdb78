"""arcsolver/evaluation/inference.py: the held-out loss beside the predictions."""

import math

import numpy as np
import torch

from arcsolver.data.augment import Augmentation
from arcsolver.data.encoding import VOCAB_SIZE
from arcsolver.data.task import Pair, Task, as_grid
from arcsolver.evaluation.inference import predict, predict_with_answer_loss, queries_for

CONFIDENCE = 10.0


class Echo(torch.nn.Module):
    """Answers every input with itself: logit 10 on the input's token, 0 elsewhere."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def predict(self, inputs, puzzle_ids, *levers):
        logits = torch.nn.functional.one_hot(inputs.flatten(1), VOCAB_SIZE).float() * CONFIDENCE
        return logits, torch.zeros(len(inputs))


def grid(rows):
    return as_grid(rows)


def test_the_answer_loss_is_the_stablemax_cross_entropy_of_every_answer_cell():
    # Input 2x2, output 2x2 with one cell changed: on a 3x3 canvas the label holds 4 colour cells
    # and 5 EOS cells; the echo is right on 3 colour cells and all 5 EOS cells, wrong on one.
    task = Task(
        "t",
        (Pair(grid([[1, 1], [1, 1]]), grid([[1, 1], [1, 1]])),),
        (Pair(grid([[1, 2], [3, 4]]), grid([[1, 2], [3, 5]])),),
    )
    queries = queries_for(task, [(1, Augmentation.identity()), (2, Augmentation(1, tuple(range(10))))])
    preds, loss = predict_with_answer_loss(Echo(), {"t": task}, queries, 3, batch_size=8)
    # Stable-max: s(10) = 11, s(0) = 1, so the right token has p = 11 / (11 + 11) and a wrong one 1 / 22.
    right, wrong = -math.log(11 / (11 + VOCAB_SIZE - 1)), -math.log(1 / (11 + VOCAB_SIZE - 1))
    assert loss.cells == 2 * 9
    assert math.isclose(loss.nll, 2 * (8 * right + wrong), rel_tol=1e-6)
    # The predictions are predict's.
    plain = predict(Echo(), {"t": task}, queries, 3, batch_size=8)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(preds, plain))


def test_queries_without_an_answer_or_whose_answer_does_not_fit_count_nowhere():
    unknown = Task("u", (Pair(grid([[1]]), grid([[1]])),), (Pair(grid([[1]]), None),))
    too_big = Task("b", (Pair(grid([[1]]), grid([[1]])),), (Pair(grid([[1]]), grid([[1] * 4] * 4)),))
    identity = [(1, Augmentation.identity())]
    queries = queries_for(unknown, identity) + queries_for(too_big, identity)
    _, loss = predict_with_answer_loss(Echo(), {"u": unknown, "b": too_big}, queries, 3, batch_size=8)
    assert loss.cells == 0 and loss.nll == 0
