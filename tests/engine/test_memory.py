"""The memory model behind the micro-batch: per canvas side, with every side's carry held."""

import torch
from helpers import TINY
from typer.testing import CliRunner

from arcsolver.cli import app
from arcsolver.engine.memory import micro_batches
from arcsolver.engine.memory_model import StepMemory, estimate_step_memory
from arcsolver.model.config import TRMConfig
from arcsolver.model.trm import TRM


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


def test_on_a_cpu_auto_keeps_the_whole_batch_where_it_fits_and_splits_it_where_it_does_not(monkeypatch, tmp_path):
    import io
    import json

    from helpers import tiny_config
    from rich.console import Console

    from arcsolver.engine import memory
    from arcsolver.train.loop import pretrain

    model = TRM(TRMConfig(hidden_size=32, n_heads=2, canvas=30, positions="rope2d", puzzle_emb_len=2), 3)
    cpu, said = torch.device("cpu"), []
    monkeypatch.setattr(memory, "available_memory", lambda: 64 * 2**30)
    stream = torch.get_rng_state()
    assert memory.choose_micro_batch("auto", model, 64, torch.float32, cpu, None, said.append, (6, 30)) is None
    assert said == []  # as before: nothing said, the whole batch
    assert torch.equal(torch.get_rng_state(), stream)  # and the run's random stream untouched by the count
    # Room for a quarter of the batch on the 30x30 canvas (CPU_SHARE of what is available).
    sides = {side: estimate_step_memory(model, torch.float32, side=side) for side in (6, 30)}
    carries = sum(m.carry_per_sample for m in sides.values()) * 64
    room = sides[30].fixed + carries + sides[30].per_sample * 16.5
    monkeypatch.setattr(memory, "available_memory", lambda: room / memory.CPU_SHARE)
    chosen = memory.choose_micro_batch("auto", model, 64, torch.float32, cpu, None, said.append, (6, 30))
    assert chosen == {6: 64, 30: 16}, chosen
    assert torch.equal(torch.get_rng_state(), stream)
    assert said and said[0].startswith("micro-batch per canvas side of 64 per process on the CPU: 6: 64, 30: 16; ")
    monkeypatch.setattr(memory, "available_memory", lambda: None)  # unreadable: the whole batch, as before
    assert memory.choose_micro_batch("auto", model, 64, torch.float32, cpu, None, said.append, (6, 30)) is None

    # A run on a machine with little memory trains in micro-batches to the end.
    monkeypatch.setattr(memory, "available_memory", lambda: 1.0)
    log = io.StringIO()
    pretrain(tiny_config("run.steps=3"), tmp_path / "run", console=Console(file=log, width=300))
    assert "micro-batch 1 of 8 per process on the CPU; " in log.getvalue(), log.getvalue()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 3


def test_the_memory_available_is_capped_by_a_cgroups_limit(monkeypatch, tmp_path):
    from arcsolver.engine import memory

    limit, usage = tmp_path / "memory.max", tmp_path / "memory.current"
    limit.write_text(f"{2**30}\n")
    usage.write_text(f"{2**28}\n")
    monkeypatch.setattr(memory, "CGROUP_FILES", ((str(limit), str(usage)),))
    assert memory.available_memory() == 2**30 - 2**28  # below any machine's MemAvailable here
    limit.write_text("max\n")  # no limit: the machine's own
    assert memory.available_memory() > 2**30 - 2**28
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(memory, "available_memory", lambda: 8.0 * 2**30)
    assert memory.cpu_budget() == 8.0 * 2**30 * memory.CPU_SHARE / 2  # shared by the machine's processes
