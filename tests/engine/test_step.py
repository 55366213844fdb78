"""The optimisation step: gradient accumulation takes the same step as the whole batch, and an
out-of-memory error halves the micro-batch and retries."""

import os
import subprocess
import sys

import pytest
import torch
from helpers import TINY, tiny_config
from safetensors.torch import load_file

from arcsolver.data.stream import TrainStream, build_puzzles, trainable_pairs
from arcsolver.engine.distributed import Dist
from arcsolver.engine.ema import EMA
from arcsolver.engine.optim import build_optimizer
from arcsolver.engine.step import Stepper, micro_slices, to_device
from arcsolver.model.trm import TRM
from arcsolver.train.tasks import select_tasks


def make(micro, batch=64, seed=0, **over):
    cfg = tiny_config(
        f"optim.global_batch_size={batch}", "model.halt_exploration_prob=0.0", *[f"{k}={v}" for k, v in over.items()]
    )
    train, heldout = select_tasks(cfg)
    puzzles = build_puzzles(train + heldout, cfg.data.n_augmentations, cfg.run.seed)
    torch.manual_seed(seed)
    model = TRM(cfg.model, len(puzzles) + 1)
    with torch.no_grad():  # rows away from zero, so that sign-SGD and decay both show
        model.puzzle_emb.weight[1:].normal_()
    model.train()
    opt = build_optimizer(model, cfg.optim.optimizer, cfg.optim.lr, cfg.optim.betas, cfg.optim.weight_decay)
    ema = EMA(model, 0.9)
    stream = TrainStream(
        puzzles, trainable_pairs(train, heldout), cfg.model.canvas, cfg.run.seed, cfg.data.translate, sampling="uniform"
    )
    messages = []
    stepper = Stepper(model, model, opt, ema, cfg.optim, Dist(), torch.float32, micro, on_message=messages.append)
    return model, ema, stream, stepper, messages


def run(model, stream, stepper, steps, batch=64):
    carry, losses = None, []
    for k in range(steps):
        b = to_device(stream.batch(k, batch), torch.device("cpu"))
        carry = carry or model.initial_carry(b)
        carry, loss, _, _ = stepper.step(carry, b, 1.0)
        losses.append(float(loss))
    return carry, losses


def state(model, ema):
    return {
        **{k: v.clone() for k, v in model.state_dict().items()},
        **{f"ema.{k}": v.clone() for k, v in ema.shadow.items()},
    }


def assert_same(a, b, atol=1e-6):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=atol, msg=k)


def test_micro_slices_cover_the_batch_in_near_equal_parts():
    for size, micro in [(64, 16), (64, 64), (10, 3), (7, 100), (5, 1)]:
        slices = micro_slices(size, micro)
        covered = [i for s in slices for i in range(size)[s]]
        assert covered == list(range(size))
        lengths = {s.stop - s.start for s in slices}
        assert max(lengths) <= micro and max(lengths) - min(lengths) <= 1


@pytest.mark.parametrize("optimizer", ["adam_atan2", "adamw"])
def test_four_micro_batches_of_16_take_the_step_of_one_batch_of_64(optimizer):
    whole, ema_w, stream, step_w, _ = make(None, **{"optim.optimizer": f"'{optimizer}'"})
    split, ema_s, _, step_s, _ = make(16, **{"optim.optimizer": f"'{optimizer}'"})
    before = state(whole, ema_w)
    carry_w, loss_w = run(whole, stream, step_w, 1)
    carry_s, loss_s = run(split, stream, step_s, 1)
    after = state(whole, ema_w)
    assert not torch.equal(before["puzzle_emb.weight"], after["puzzle_emb.weight"])
    assert not torch.equal(before["lm_head.weight"], after["lm_head.weight"])
    assert loss_w == pytest.approx(loss_s, rel=1e-5)
    assert_same(after, state(split, ema_s))
    torch.testing.assert_close(carry_w.y, carry_s.y)
    assert torch.equal(carry_w.halted, carry_s.halted) and torch.equal(carry_w.steps, carry_s.steps)


def test_accumulation_follows_the_whole_batch_over_several_steps():
    whole, ema_w, stream, step_w, _ = make(None)
    split, ema_s, _, step_s, _ = make(24)  # uneven: 21 + 21 + 22
    _, loss_w = run(whole, stream, step_w, 4)
    _, loss_s = run(split, stream, step_s, 4)
    assert loss_w == pytest.approx(loss_s, rel=1e-4)
    assert_same(state(whole, ema_w), state(split, ema_s), atol=1e-5)


def test_out_of_memory_halves_the_micro_batch_and_retries_the_step(monkeypatch):
    whole, ema_w, stream, step_w, _ = make(None)
    model, ema, _, stepper, messages = make(64)
    real = TRM.forward
    calls = {"oom": 0}

    def forward(self, carry, batch):
        if batch["inputs"].shape[0] > 16:
            calls["oom"] += 1
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(self, carry, batch)

    monkeypatch.setattr(TRM, "forward", forward)
    _, losses = run(model, stream, stepper, 2)
    assert stepper.micro_batch == 16 and calls["oom"] == 2  # 64 -> 32 -> 16, then no more
    assert messages == [
        "out of memory at micro-batch 64 on the 5x5 canvas: retrying the step with 32",
        "out of memory at micro-batch 32 on the 5x5 canvas: retrying the step with 16",
    ]
    monkeypatch.setattr(TRM, "forward", real)
    _, losses_w = run(whole, stream, step_w, 2)
    assert losses == pytest.approx(losses_w, rel=1e-4)
    assert_same(state(model, ema), state(whole, ema_w), atol=1e-5)


# Tasks up to 10x10 on rope2d canvases of sides 6 and 10.
SIDES_10 = {"model.canvas": 10, "data.max_side": 10, "data.max_tasks": 12, "model.positions": '"rope2d"'}


def test_micro_batches_per_canvas_side_take_the_whole_batch_step(monkeypatch):
    """Each side runs in its own micro-batch; an out-of-memory error shrinks that side's only."""
    from arcsolver.data.stream import SizedStream

    whole, ema_w, _, step_w, _ = make(None, **SIDES_10)
    split, ema_s, stream, step_s, _ = make({6: 64, 10: 16}, **SIDES_10)
    sized = SizedStream(stream.puzzles, stream.trainable, (6, 10), seed=0, sampling="uniform")
    steps = [k for k in range(40) if sized.side_of(k) == 6][:3] + [k for k in range(40) if sized.side_of(k) == 10][:3]
    assert len(steps) == 6
    passes = []
    real = TRM.forward

    def forward(self, carry, batch):
        passes.append((batch["inputs"].shape[-1], batch["inputs"].shape[0]))
        if batch["inputs"].shape[-1] == 10 and batch["inputs"].shape[0] > 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real(self, carry, batch)

    def train(model, stepper):
        carries, losses = {}, []
        for k in sorted(steps):
            b = to_device(sized.batch(k, 64), torch.device("cpu"))
            side = b["inputs"].shape[-1]
            carries[side], loss, _, _ = stepper.step(carries.get(side) or model.initial_carry(b), b, 1.0)
            losses.append(float(loss))
        return losses

    losses_w = train(whole, step_w)
    monkeypatch.setattr(TRM, "forward", forward)
    losses_s = train(split, step_s)
    assert step_s.micro_batch == {6: 64, 10: 8}
    assert {n for side, n in passes if side == 6} == {64} and {n for side, n in passes[-8:] if side == 10} <= {8}
    assert losses_s == pytest.approx(losses_w, rel=1e-4)
    assert_same(state(split, ema_s), state(whole, ema_w), atol=1e-5)


def test_other_errors_are_not_retried(monkeypatch):
    model, _, stream, stepper, _ = make(64)
    monkeypatch.setattr(TRM, "forward", lambda self, c, b: (_ for _ in ()).throw(RuntimeError("shape mismatch")))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        run(model, stream, stepper, 1)
    assert stepper.micro_batch == 64


def test_a_pretraining_run_survives_an_out_of_memory_step(tmp_path, monkeypatch):
    from arcsolver.train.loop import pretrain

    real, seen = TRM.forward, {"n": 0}

    def forward(self, carry, batch):
        seen["n"] += 1
        if seen["n"] == 3:  # the second step's first forward
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real(self, carry, batch)

    monkeypatch.setattr(TRM, "forward", forward)
    printed = []

    class Console:
        def print(self, text, **kw):
            printed.append(str(text))

    cfg = tiny_config("run.steps=4", "optim.micro_batch_size=8")
    from arcsolver.train.logger import Logger

    monkeypatch.setattr(Logger, "print", lambda self, text: printed.append(text))
    result = pretrain(cfg, tmp_path / "run")
    assert result.step == 4
    assert any("retrying the step with 4" in line for line in printed)


def torchrun(run_dir, *settings):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [
        x
        for s in TINY + ["run.steps=3", "run.dtype='float32'", "model.halt_exploration_prob=0.0", *settings]
        for x in ("--set", s)
    ]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "arcsolver",
        "pretrain",
        "--out",
        str(run_dir),
        *args,
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    latest = sorted((run_dir / "checkpoints").glob("step_*"))[-1]
    return load_file(latest / "model.safetensors") | {
        f"ema.{k}": v for k, v in load_file(latest / "ema.safetensors").items()
    }


def test_two_processes_accumulating_match_two_processes_without(tmp_path):
    whole = torchrun(tmp_path / "whole", "optim.global_batch_size=16")
    split = torchrun(tmp_path / "split", "optim.global_batch_size=16", "optim.micro_batch_size=3")  # 8 -> 3+3+2
    assert_same(whole, split, atol=1e-5)
