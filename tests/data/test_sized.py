"""Grid-sized canvases: the sized training stream, the inference canvas rule, and inference over
queries of several canvas sides."""

import numpy as np
import pytest
import torch

from arcsolver.data.augment import Augmentation
from arcsolver.data.encoding import CANVAS_SIDES, EOS, VOCAB_SIZE, canvas_sides, decode_grid, encode_grid, fitting_side
from arcsolver.data.loaders import load_tasks
from arcsolver.data.stream import SizedStream, build_puzzles, trainable_pairs
from arcsolver.data.task import Pair, Task, as_grid
from arcsolver.evaluation.canvas import inference_side, model_canvases, query_sides
from arcsolver.evaluation.inference import predict_with_log_probs, queries_for
from arcsolver.model.config import TRMConfig


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

    def predict(self, inputs, puzzle_ids, *levers):
        self.seen.append(tuple(inputs.shape[1:]))
        logits = torch.nn.functional.one_hot(inputs.flatten(1), VOCAB_SIZE).float() * 10
        return logits, torch.zeros(len(inputs))


def test_predict_runs_each_side_in_its_own_batches_and_keeps_the_query_order():
    small = Task("s", (Pair(grid(2, 2), grid(2, 2)),), (Pair(grid(3, 2, 4), None),))
    big = Task("b", (Pair(grid(11, 11), grid(11, 11)),), (Pair(grid(12, 5, 7), None),))
    augs = [(1, Augmentation.identity()), (2, Augmentation(1, tuple(range(10))))]
    queries = [q for pair in zip(queries_for(small, augs), queries_for(big, augs)) for q in pair]  # interleaved
    model = Echo()
    preds, log_probs = predict_with_log_probs(model, {"s": small, "b": big}, queries, CANVAS_SIDES, batch_size=8)
    assert sorted(set(model.seen)) == [(6, 6), (14, 14)] and len(model.seen) == 2
    for q, (g, _) in zip(queries, preds):
        assert np.array_equal(g, {"s": small, "b": big}[q.task_id].test[0].input)
    assert [lp.shape[0] for lp in log_probs] == [36, 196] * 2
    assert encode_grid(grid(3, 2), 6)[3, 0] == EOS


# A tiny run whose batches come on two canvas sides, 8 and 10 (4 is allowed but rare).
SIZED = [
    "model.canvas=10",
    "data.max_side=9",
    "data.max_tasks=4",
    "data.canvas_sides=[4,6,8]",
    "run.steps=8",
    "run.checkpoint_every=4",
    "model.halt_exploration_prob=0.0",
    "run.dtype='float32'",
]


def weights(run):
    from safetensors.torch import load_file

    latest = sorted((run / "checkpoints").glob("step_*"))[-1]
    return load_file(latest / "model.safetensors"), load_file(latest / "carry_rank0.safetensors")


def test_a_sized_run_keeps_a_carry_per_side_and_resumes_to_the_same_weights(tmp_path):
    from helpers import tiny_config

    from arcsolver.train.loop import pretrain

    cfg = tiny_config(*SIZED)
    assert cfg.canvas_sides() == (4, 6, 8, 10)
    pretrain(cfg, tmp_path / "straight")
    pretrain(tiny_config(*SIZED, "run.steps=4"), tmp_path / "split")
    pretrain(tiny_config(*SIZED), tmp_path / "split", resume=True)
    (a, carry_a), (b, carry_b) = weights(tmp_path / "straight"), weights(tmp_path / "split")
    for name in a:
        assert torch.equal(a[name], b[name]), name
    sides = {key.split(".")[0] for key in carry_a if key.startswith("side")}
    assert sides == {"side8", "side10"}
    assert carry_a["side8.inputs"].shape[1:] == (8, 8) and carry_a["side10.y"].shape[1] == 2 + 100
    for key in carry_a:
        assert torch.equal(carry_a[key], carry_b[key]), key


def test_each_side_carries_its_own_samples_on(tmp_path):
    from helpers import tiny_config

    from arcsolver.engine.distributed import Dist
    from arcsolver.engine.optim import build_optimizer
    from arcsolver.engine.step import Stepper, to_device
    from arcsolver.model.trm import TRM
    from arcsolver.train.tasks import select_tasks, training_stream

    cfg = tiny_config(*SIZED, "model.n_supervision=16", "model.halt_exploration_prob=1.0")
    train, heldout = select_tasks(cfg)
    puzzles = build_puzzles(train + heldout, 2, 0)
    stream = training_stream(cfg, puzzles, trainable_pairs(train, heldout))
    model = TRM(cfg.model, len(puzzles) + 1).train()
    opt = build_optimizer(model, "adamw", 1e-3, (0.9, 0.95), 0.0)
    stepper = Stepper(model, model, opt, None, cfg.optim, Dist(), torch.float32)
    carries, taken = {}, {}
    for k in range(12):
        side = stream.side_of(k)
        batch = to_device(stream.batch(k, 8), torch.device("cpu"))
        carry = carries.get(side) or model.initial_carry(batch)
        before = carry.steps.clone() if side in carries else torch.zeros(8, dtype=torch.long)
        carries[side], *_ = stepper.step(carry, batch, 1.0)
        # Samples that had not halted took one more step on their own canvas; halted ones restart.
        kept = ~carry.halted if side in taken else torch.zeros(8, dtype=torch.bool)
        assert torch.equal(carries[side].steps[kept], before[kept] + 1)
        assert carries[side].inputs.shape[1:] == (side, side)
        taken[side] = taken.get(side, 0) + 1
    assert set(taken) == {8, 10}


def test_two_processes_on_sized_canvases_follow_one(tmp_path):
    import json
    import os
    import subprocess
    import sys

    from helpers import TINY

    def run(name, *launcher):
        args = [x for s in TINY + SIZED for x in ("--set", s)]
        cmd = [sys.executable, *launcher, "-m", "arcsolver", "pretrain", "--out", str(tmp_path / name), *args]
        done = subprocess.run(
            cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stdout + done.stderr
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line)["loss"] for line in lines if '"loss"' in line]

    one = run("one")
    two = run("two", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2")
    assert len(one) == len(two) == 8
    assert one == pytest.approx(two, rel=1e-3, abs=1e-4)


def test_one_function_gives_the_canvases_of_training_and_of_inference():
    assert canvas_sides("rope2d", 10) == (6, 10)
    assert canvas_sides("rope2d", 12, sides=[6, 10, 14]) == (6, 10, 12)
    assert canvas_sides("rope2d", 10, layout="fixed") is None
    assert canvas_sides("rope1d", 30) is None  # rope1d positions know one canvas
    assert model_canvases(TRMConfig(positions="rope2d", canvas=10)) == CANVAS_SIDES  # any grid, up to 30x30
    assert model_canvases(TRMConfig(positions="rope1d", canvas=10)) == 10
