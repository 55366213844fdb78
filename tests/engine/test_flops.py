"""arcsolver/engine/flops.py: training FLOPs counted from the model, in every record, and run.flops."""

import json

import torch
from helpers import TINY, tiny_config
from safetensors.torch import load_file
from typer.testing import CliRunner

from arcsolver.cli import app
from arcsolver.engine.flops import cumulative_flops, flop_counter, format_flops, step_flops
from arcsolver.model.trm import TRM
from arcsolver.train.loop import pretrain


def records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def weights(run):
    newest = sorted((run / "checkpoints").iterdir())[-1]
    return load_file(newest / "model.safetensors")


def test_a_step_costs_its_batch_times_one_sample_and_counting_it_changes_nothing():
    cfg = tiny_config()
    torch.manual_seed(0)
    model = TRM(cfg.model, n_puzzle_ids=5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    one = step_flops(model, 5)
    assert one > 0
    assert step_flops(model, 5, batch_size=3) == 3 * one  # exact: scaling a micro-batch of 1 is no estimate
    assert step_flops(model, 4) < one  # a smaller canvas costs less
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters()) and not model.puzzle_emb._batch_rows


def test_the_cpus_fused_attention_counts_as_the_same_computation_in_matmuls():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = (torch.randn(2, 4, 29, 16, requires_grad=True) for _ in range(3))

    def count() -> int:
        with flop_counter() as counter:
            torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return counter.get_total_flops()

    fused = count()
    with sdpa_kernel(SDPBackend.MATH):  # the same attention as two batched matmuls
        matmuls = count()
    assert fused == matmuls == 2 * (2 * 2 * 4 * 29 * 29 * 16)


def test_the_backward_and_every_recursion_are_counted():
    cfg = tiny_config()
    model = TRM(cfg.model, n_puzzle_ids=5)
    deeper = TRM(cfg.model.model_copy(update={"n_recursions": cfg.model.n_recursions + 1}), n_puzzle_ids=5)
    # One more recursion without a graph adds its forward only: less than the step with its backward.
    added = step_flops(deeper, 5) - step_flops(model, 5)
    assert 0 < added < step_flops(model, 5) / 2


def test_every_record_carries_the_cumulative_flops_and_run_flops_stops_within_the_budget(tmp_path):
    cfg = tiny_config("run.steps=10")
    per_step = step_flops(TRM(cfg.model, n_puzzle_ids=2), 5, batch_size=cfg.optim.global_batch_size)
    budget = 4.5 * per_step
    result = pretrain(tiny_config("run.steps=10", f"run.flops={budget}"), tmp_path / "run")
    assert result.step == 4  # a fifth step would pass the budget
    train = [r for r in records(tmp_path / "run") if "loss" in r]
    assert [r["flops"] for r in train] == [k * per_step for k in range(1, 5)]
    final = [r for r in records(tmp_path / "run") if "heldout_loss" in r]
    assert final and final[-1]["flops"] == 4 * per_step and final[-1]["heldout_loss"] > 0
    state = json.loads((tmp_path / "run" / "checkpoints" / "step_0000004" / "state.json").read_text())
    assert state["flops"] == 4 * per_step


def test_a_resumed_run_counts_on_from_its_checkpoint(tmp_path):
    pretrain(tiny_config("run.steps=2"), tmp_path / "run")
    pretrain(tiny_config("run.steps=4"), tmp_path / "run", resume=True)
    pretrain(tiny_config("run.steps=4"), tmp_path / "whole")
    resumed = [r["flops"] for r in records(tmp_path / "run") if "loss" in r]
    assert resumed == [r["flops"] for r in records(tmp_path / "whole") if "loss" in r]


def test_a_checkpoint_without_a_count_or_with_a_bad_one_replays_its_sides():
    from arcsolver.train.resume import resumed_flops

    per_sample = {6: 10, 10: 30}
    side_of = lambda k: 6 if k % 2 else 10  # noqa: E731
    assert cumulative_flops(per_sample, side_of, 4, batch=2) == (30 + 10 + 30 + 10) * 2
    for state in ({"step": 4}, {"step": 4, "flops": "many"}, {"step": 4, "flops": -1}, {"step": 4, "flops": 1.5}):
        assert resumed_flops([(None, state)], 4, per_sample, side_of, 2) == 160
    assert (
        resumed_flops([(None, {"step": 4, "flops": 7}), (None, {"step": 2, "flops": 3})], 2, per_sample, side_of, 2)
        == 3
    )


def test_counting_leaves_the_trained_weights_as_they_were(tmp_path, monkeypatch):
    pretrain(tiny_config("run.steps=3", "eval.max_versions=1"), tmp_path / "counted")
    # The same run with the count replaced by a table that never touches the model, and a budget
    # that does not bind: the weights are bit for bit the same.
    monkeypatch.setattr("arcsolver.train.loop.flops_per_sample", lambda model, sides: dict.fromkeys(sides, 1))
    pretrain(tiny_config("run.steps=3", "eval.max_versions=1", "run.flops=1e20"), tmp_path / "uncounted")
    a, b = weights(tmp_path / "counted"), weights(tmp_path / "uncounted")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_plan_prints_the_flops_of_a_step_and_of_the_run():
    tiny = [x for item in [*TINY, "run.steps=100", "run.flops=1e12"] for x in ("--set", item)]
    result = CliRunner().invoke(app, ["plan", *tiny])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("compute: "))
    assert "per step" in line and "for the run's 100 steps" in line and "run.flops stops it at 1 TFLOP" in line


def test_run_flops_is_bounded_and_listed():
    result = CliRunner().invoke(app, ["settings", "pretrain"], terminal_width=80)
    assert "run.flops" in result.output
    tiny = [x for item in [*TINY, "run.flops=-1"] for x in ("--set", item)]
    result = CliRunner().invoke(app, ["plan", *tiny])
    assert result.exit_code != 0 and "run.flops" in result.output.strip().splitlines()[-1]


def test_format_flops_reads_in_engineering_units():
    assert (
        format_flops(7.1e15) == "7.1 PFLOP" and format_flops(83.8e9) == "83.8 GFLOP" and format_flops(12) == "12 FLOP"
    )


def test_steps_in_budget_is_where_run_flops_stops_and_extrapolates_long_budgets(monkeypatch):
    from arcsolver.engine import flops

    per_sample, side_of = {6: 3, 10: 7}, lambda k: 6 if k % 3 else 10  # steps cost 7, 3, 3, 7, ... x batch 2
    assert (
        flops.steps_in_budget(per_sample, side_of, 0, 0, 26, 2) == 3
    )  # 14 + 6 + 6 = 26: the third step ends exactly at it
    assert flops.steps_in_budget(per_sample, side_of, 0, 0, 25.9, 2) == 2
    assert flops.steps_in_budget(per_sample, side_of, 0, 0, 39, 2) == 3
    assert flops.steps_in_budget(per_sample, side_of, 3, 26, 26, 2) == 3  # resumed at the budget: no step left
    monkeypatch.setattr(flops, "WALKED_STEPS", 30)  # past the walk, the mean step (26/3 per step) carries on
    assert flops.steps_in_budget(per_sample, side_of, 0, 0, 26 * 100, 2) == 300


def test_the_progress_total_of_a_flops_budgeted_run_is_where_the_budget_ends_it(tmp_path, monkeypatch):
    from arcsolver.train import logger

    totals = []
    original = logger.Logger.__init__
    monkeypatch.setattr(
        logger.Logger,
        "__init__",
        lambda self, run, total, *a, **k: (totals.append(total), original(self, run, total, *a, **k))[1],
    )
    cfg = tiny_config("run.steps=1000")
    per_step = step_flops(TRM(cfg.model, n_puzzle_ids=2), 5, batch_size=cfg.optim.global_batch_size)
    result = pretrain(tiny_config("run.steps=1000", f"run.flops={3.5 * per_step}"), tmp_path / "run")
    assert result.step == 3 and totals == [3]  # not the 1000 steps the run would otherwise take


def test_a_query_and_the_shapes_alone_count_what_the_model_computes():
    from arcsolver.engine.flops import query_flops, shapes_only
    from arcsolver.engine.memory_model import example_batch

    cfg = tiny_config().model
    model = TRM(cfg, n_puzzle_ids=5)
    batch = example_batch(model, 1, torch.device("cpu"), 4)
    with flop_counter() as counter:
        model.predict(batch["inputs"], batch["puzzle_ids"], 3, 5)
    assert query_flops(model, 4, 3, 5) == counter.get_total_flops()  # exact, though two steps were counted
    meta = shapes_only(cfg)
    assert next(meta.parameters()).is_meta
    assert query_flops(meta, 4, 3, 5) == counter.get_total_flops()
    # Training: the unfused attention's backward does not recompute the scores, the CPU's fused one does.
    assert 0.9 * step_flops(model, 4) < step_flops(meta, 4) < step_flops(model, 4)
