"""The memory model behind the micro-batch: per canvas side, with every side's carry held."""

import torch
from conftest import TINY
from typer.testing import CliRunner

from arcsolver.cli import app
from arcsolver.engine.memory import StepMemory, estimate_step_memory, micro_batches
from arcsolver.model.trm import TRM, TRMConfig


def test_a_small_canvas_takes_fewer_passes_than_the_largest():
    model = TRM(TRMConfig(hidden_size=32, n_heads=2, canvas=30, positions="rope2d", puzzle_emb_len=2), 3)
    memories = {side: estimate_step_memory(model, torch.bfloat16, side=side) for side in (6, 18, 30)}
    per_sample = [memories[s].per_sample for s in (6, 18, 30)]
    assert per_sample == sorted(per_sample) and per_sample[2] > 10 * per_sample[0]
    # A budget where the largest side needs four passes of the local batch.
    local = 64
    carries = sum(m.carry_per_sample for m in memories.values()) * local
    budget = memories[30].fixed + carries + memories[30].per_sample * 16.5
    chosen = micro_batches(memories, budget, local)
    assert chosen[30] == 16 and chosen[6] == 64 and chosen[6] >= chosen[18] >= chosen[30]
    # Every side's carry is held at once, and each side's passes fit beside all of them.
    for side, micro in chosen.items():
        assert memories[side].fixed + carries + memories[side].per_sample * micro <= budget


def test_micro_batch_evens_out_the_passes():
    memory = StepMemory(fixed=0, per_sample=1, carry_per_sample=0)
    assert memory.micro_batch(293, 768) == 256
    assert memory.micro_batch(293, 768, carries=100) == 192  # room for 193: 4 passes of 192
    assert memory.micro_batch(1000, 768) == 768


def test_plan_of_a_sized_layout_gives_each_side_its_micro_batch():
    sized = [*TINY, "model.positions='rope2d'", "model.canvas=10", "data.max_side=10", "optim.global_batch_size=64"]
    result = CliRunner().invoke(app, ["plan", *[x for item in sized for x in ("--set", item)], "--gpu-memory", "2"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("on a 2 GB GPU"))
    assert "micro-batch per canvas side" in line and "6: " in line and "10: " in line
