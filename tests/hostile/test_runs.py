"""Hostile settings, checkpoints and runs: every one ends in one line naming the setting, file or
run and the fix, or is survived at the cost of the tasks concerned; nothing that exists is
destroyed, and a run without a working model never reports success."""

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from helpers import tiny_config
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from arcsolver.cli import app
from arcsolver.config import PretrainConfig, SolveConfig
from arcsolver.errors import CheckpointError, ConfigError, Diverged
from arcsolver.recipes import load_recipe

runner = CliRunner()


# --- non-finite settings, losses and weights ---------------------------------------------------


@pytest.mark.parametrize(
    "setting",
    [
        "optim.lr=inf",
        "optim.weight_decay=inf",
        "optim.puzzle_emb_lr=nan",
        "optim.betas=[nan,nan]",
        "model.rope_theta=inf",
        "run.time_limit_s=inf",
    ],
)
def test_non_finite_settings_are_refused(setting):
    with pytest.raises(ConfigError, match=setting.split("=")[0].split(".")[1]):
        load_recipe(PretrainConfig, "pretrain", "cpu-small", [setting])


def test_non_finite_solve_settings_are_refused():
    with pytest.raises(ConfigError):
        load_recipe(SolveConfig, "submit", "cpu-small", ["optim.lr=inf"])


@pytest.mark.parametrize("log_every", [1, 1000])  # caught at a record, or at the checkpoint
def test_a_diverging_run_stops_and_keeps_its_last_good_checkpoint(tmp_path, log_every):
    from arcsolver.train.loop import pretrain

    cfg = tiny_config("run.steps=6", "optim.lr=1e30", "optim.warmup_steps=0", "run.checkpoint_every=1")
    cfg.run.log_every = log_every
    with pytest.raises(Diverged, match="diverged at step .*last good checkpoint"):
        pretrain(cfg, tmp_path / "run")
    kept = sorted((tmp_path / "run" / "checkpoints").iterdir())
    assert kept and len(kept) < 6
    for name in ("model.safetensors", "ema.safetensors"):
        assert all(torch.isfinite(t).all() for t in load_file(kept[-1] / name).values())


def dead_checkpoint(tiny_run, tmp_path):
    """A copy of the tiny run whose EMA weights are NaN."""
    run = tmp_path / "dead"
    shutil.copytree(tiny_run, run)
    (ckpt,) = sorted((run / "checkpoints").iterdir())[-1:]
    ema = load_file(ckpt / "ema.safetensors")
    save_file({k: torch.full_like(v, math.nan) for k, v in ema.items()}, str(ckpt / "ema.safetensors"))
    return run, ckpt


def test_a_checkpoint_with_non_finite_weights_is_refused(tiny_run, tmp_path):
    from arcsolver.engine.pretrained import load_model

    run, ckpt = dead_checkpoint(tiny_run, tmp_path)
    with pytest.raises(CheckpointError, match="ema.safetensors: .*inf or NaN.*earlier checkpoint"):
        load_model(run, torch.device("cpu"))
    challenges = tmp_path / "c.json"
    challenges.write_text(
        json.dumps({"t1": {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[1]]}]}})
    )
    result = runner.invoke(app, ["solve", str(challenges), "--checkpoint", str(run), "--out", str(tmp_path / "s.json")])
    assert result.exit_code == 1 and "inf or NaN" in result.output.splitlines()[-1]


def test_an_adaptation_that_diverges_is_undone(tiny_run):
    from arcsolver.data.task import Pair, Task, as_grid
    from arcsolver.engine.pretrained import load_model
    from arcsolver.solve.adapt import adapt_or_restore

    model, _, _ = load_model(tiny_run, torch.device("cpu"))
    cfg = load_recipe(
        SolveConfig,
        "submit",
        "cpu-small",
        [
            "optim.lr=1e30",
            "optim.warmup_steps=0",
            "adapt.steps=4",
            "adapt.embeddings_only_fraction=0",
            "data.n_augmentations=2",
            "optim.global_batch_size=8",
        ],
    )
    grid = as_grid([[1, 2]])
    task = Task("t1", (Pair(grid, grid[:, ::-1].copy()),), (Pair(grid),))
    _, error = adapt_or_restore(model, [task], cfg, torch.float32, None, None)
    assert error is not None and "diverged" in error
    assert all(torch.isfinite(t).all() for t in model.state_dict().values())


# --- outputs over inputs, and two writers of one path -----------------------------------------

TASKS = {"t1": {"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[1, 2]]}]}}


@pytest.fixture
def challenges(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(TASKS))
    return path


def assert_refused(args, fragment, untouched):
    before = {p: p.read_bytes() for p in untouched}
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error:") and fragment in last, last
    assert {p: p.read_bytes() for p in untouched} == before


def test_solve_refuses_to_write_over_its_challenges(challenges, tiny_run):
    solve = ["solve", challenges, "--checkpoint", tiny_run, "--set", "adapt.steps=0"]
    assert_refused([*solve, "--out", challenges], "is the challenges file", [challenges])
    side = challenges.with_name("s.votes.json")  # the side file of --out s.json
    shutil.copy(challenges, side)
    assert_refused(["solve", side, "--checkpoint", tiny_run, "--out", side.with_name("s.json")], "challenges", [side])
    shard = challenges.with_name("s.shard1.json")  # a worker's file of --out s.json --workers 2
    shutil.copy(challenges, shard)
    assert_refused(
        ["solve", shard, "--checkpoint", tiny_run, "--workers", "2", "--out", shard.with_name("s.json")],
        "challenges",
        [shard],
    )


def test_solve_refuses_an_output_that_is_not_a_regular_file(challenges, tiny_run, tmp_path):
    assert_refused(["solve", challenges, "--checkpoint", tiny_run, "--out", "/dev/null"], "not a regular file", [])
    assert_refused(["solve", challenges, "--checkpoint", tiny_run, "--out", tmp_path], "not a regular file", [])


def test_evaluate_refuses_to_write_over_its_inputs(tmp_path):
    solutions, submission = tmp_path / "x.json", tmp_path / "s.json"
    solutions.write_text(json.dumps({"t1": [[[1, 2]]]}))
    submission.write_text(json.dumps({"t1": [{"attempt_1": [[1, 2]], "attempt_2": [[2, 1]]}]}))
    evaluate = ["evaluate", submission, "--solutions", solutions]
    assert_refused([*evaluate, "--csv", submission], "--csv", [submission, solutions])
    assert_refused([*evaluate, "--html", solutions], "--html", [submission, solutions])
    assert_refused([*evaluate, "--csv", tmp_path / "r", "--html", tmp_path / "r"], "--csv and --html", [])


def test_a_second_solve_into_one_submission_is_refused(challenges, tiny_run, tmp_path):
    from arcsolver.locks import output_lock

    out = tmp_path / "s.json"
    with output_lock(out):
        assert_refused(["solve", challenges, "--checkpoint", tiny_run, "--out", out], f"{out} is in use by process", [])
    assert not out.exists()


def test_a_second_pretrain_into_one_run_directory_is_refused(tmp_path):
    from helpers import TINY

    from arcsolver.locks import run_lock

    run = tmp_path / "run"
    run.mkdir()
    sets = [x for s in TINY + ["run.steps=1"] for x in ("--set", s)]
    with run_lock(run):
        assert_refused(["pretrain", "--out", run, *sets], f"run directory {run} is in use by process", [])
    assert [p.name for p in run.iterdir()] == [".lock"]  # nothing was written


def test_a_refused_pretrain_leaves_no_directory_behind(tmp_path):
    run = tmp_path / "new"
    assert_refused(["pretrain", "--out", run, "--set", "optim.lr=-1"], "optim.lr", [])
    assert not run.exists()


# --- sharded solves --------------------------------------------------------------------------

QUICK = ["data.n_augmentations=2", "adapt.steps=0", "infer.max_versions=2", "run.threads=1", "run.device='cpu'"]
QUICK_SETS = [x for s in QUICK for x in ("--set", s)]


def test_a_sharded_solve_whose_workers_all_fail_exits_1_saying_so(challenges, tmp_path):
    out = tmp_path / "s.json"
    result = runner.invoke(
        app, ["solve", str(challenges), "--workers", "2", "--checkpoint", str(tmp_path / "none"), "--out", str(out)]
    )
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error:") and "the model answered none" in last and "failed" in last, last
    assert list(json.loads(out.read_text())) == ["t1"]  # the fallbacks, valid


def test_workers_ignore_the_current_directory_and_are_capped_at_the_tasks(tiny_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "arcsolver").mkdir()  # a stray package the workers must not import
    (tmp_path / "arcsolver" / "__init__.py").write_text("raise SystemExit(3)\n")
    shutil.copy(Path(__file__).parent / "corpus" / "-dash_name.json", tmp_path / "-x.json")  # two tasks
    result = runner.invoke(
        app,
        ["solve", "--workers", "5", "--checkpoint", str(tiny_run), "--out", "s.json", *QUICK_SETS, "--", "-x.json"],
    )
    assert result.exit_code == 0, result.output
    assert "5 workers for 2 tasks: starting 2" in result.output
    last = result.output.strip().splitlines()[-1]
    assert "merged from 2 shards" in last and "2 tasks, 2 from the model" in last, last
    assert not list(tmp_path.glob("*.report.json"))  # read and removed by the parent


# --- checkpoints checked before they are trusted -----------------------------------------------


def edited_checkpoint(tiny_run, tmp_path, edit):
    """A copy of the tiny run whose newest state.json has gone through edit."""
    run = tmp_path / "edited"
    shutil.copytree(tiny_run, run)
    ckpt = sorted((run / "checkpoints").iterdir())[-1]
    state = json.loads((ckpt / "state.json").read_text())
    edit(state)
    (ckpt / "state.json").write_text(json.dumps(state))
    return run, ckpt


def test_a_config_claiming_a_bigger_model_is_refused_before_it_is_built(tiny_run, tmp_path, monkeypatch):
    from arcsolver.engine import pretrained

    run, ckpt = edited_checkpoint(tiny_run, tmp_path, lambda s: s["config"]["model"].update(hidden_size=4096))
    monkeypatch.setattr(pretrained, "read_weights", lambda path: pytest.fail("weights read before the shapes"))
    with pytest.raises(CheckpointError, match=r"model.safetensors: .* is \[.*32\].*makes it \[.*4096\]"):
        pretrained.load_model(run, torch.device("cpu"))


@pytest.mark.parametrize(
    "step, fragment", [(10**30, "past the last a run can reach"), (1, "not the step of its directory")]
)
def test_a_checkpoint_step_out_of_bounds_or_not_its_name_is_refused(tiny_run, tmp_path, step, fragment):
    from arcsolver.engine.checkpoint import read_training_state

    run, ckpt = edited_checkpoint(tiny_run, tmp_path, lambda s: s.update(step=step))
    with pytest.raises(CheckpointError, match=fragment):
        read_training_state(ckpt)
    sets = [x for s in ["run.steps=5"] for x in ("--set", s)]
    assert_refused(["pretrain", "--out", run, "--resume", *sets], "no usable checkpoint", [ckpt / "state.json"])


# --- settings out of their bounds ------------------------------------------------------------

OUT_OF_BOUNDS = [
    "run.seed=-1",
    "run.seed=99999999999999999999",
    "optim.betas=[1.5,-3]",
    "model.expansion=1e-9",
    "data.fixed_colours=[42]",
    "data.fixed_colours=[1,1]",
    "run.threads=100000",
    "model.puzzle_emb_len=100000",
    "model.canvas=31",
    "data.canvas_sides=[0]",
    "run.steps=10000000000",
    "model.n_supervision=100000",
    "run.seed=" + "9" * 5000,
    "data.canvas_sides=" + "[" * 3000 + "]" * 3000,
]


@pytest.mark.parametrize("setting", OUT_OF_BOUNDS, ids=lambda s: s[:40])
def test_a_setting_out_of_its_bounds_is_one_line_naming_it(setting, tmp_path):
    key = setting.partition("=")[0]
    assert_refused(["plan", "--set", setting], key, [])
    assert_refused(["pretrain", "--out", tmp_path / "run", "--set", setting], key, [])
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "setting", ["run.seed=-1", "data.fixed_colours=[42]", "run.threads=100000", "run.workers=0", "optim.betas=[1,1]"]
)
def test_a_solve_setting_out_of_its_bounds_is_one_line_naming_it(setting, challenges, tmp_path):
    out = tmp_path / "s.json"
    assert_refused(["solve", challenges, "--checkpoint", tmp_path, "--out", out, "--set", setting], setting[:8], [])
    assert not out.exists()


# --- many tiny tasks ----------------------------------------------------------------------------


def tiny_tasks(n: int) -> dict:
    return {
        f"{i:08x}": {"train": [{"input": [[i % 10]], "output": [[1]]}], "test": [{"input": [[2]]}]} for i in range(n)
    }


def solve_counting_writes(tiny_run, tmp_path, monkeypatch, n, *sets):
    from arcsolver.solve import writer

    written = []
    write = writer.write_submission
    monkeypatch.setattr(writer, "write_submission", lambda path, obj: (written.append(path), write(path, obj)))
    challenges, out = tmp_path / "many.json", tmp_path / "s.json"
    challenges.write_text(json.dumps(tiny_tasks(n)))
    args = ["solve", challenges, "--checkpoint", tiny_run, "--out", out, *QUICK_SETS]
    result = runner.invoke(app, [str(a) for a in args + [x for s in sets for x in ("--set", s)]])
    assert result.exit_code == 0, result.output
    assert list(json.loads(out.read_text())) == list(tiny_tasks(n))
    return result.output.splitlines(), written


def test_many_tasks_are_written_on_a_timer_not_after_each(tiny_run, tmp_path, monkeypatch):
    from arcsolver.solve import writer

    monkeypatch.setattr(writer, "WRITE_EVERY_S", 3600.0)
    lines, written = solve_counting_writes(tiny_run, tmp_path, monkeypatch, 300)
    assert len(written) == 2 * 4  # the fallbacks first, everything at the end; each of the four files (sources too)
    assert "300 from the model" in lines[-1]
    monkeypatch.setattr(writer, "WRITE_EVERY_S", 0.0)
    monkeypatch.setattr(writer, "WRITE_SHARE_INVERSE", 0)
    _, written = solve_counting_writes(tiny_run, tmp_path, monkeypatch, 20)
    assert len(written) == (2 + 20) * 4  # due at every task: the cadence is the timer's


def test_fallbacks_past_a_few_dozen_are_counted_not_listed(tiny_run, tmp_path, monkeypatch):
    from arcsolver.solve.progress import FallbackLines

    lines, _ = solve_counting_writes(
        tiny_run, tmp_path, monkeypatch, 300, "run.time_budget_s=0.001", "run.safety_margin_s=0"
    )
    fallback = [line for line in lines if line.startswith("fallback")]
    assert len(fallback) == FallbackLines.LISTED + 1 and len(lines) < 60, lines
    assert (
        fallback[-1]
        == f"fallback {300 - FallbackLines.LISTED} more tasks ({300 - FallbackLines.LISTED} time budget reached before its inference)"
    )


def test_resume_passes_over_a_checkpoint_with_non_finite_weights(tiny_run, tmp_path):
    run, ckpt = dead_checkpoint(tiny_run, tmp_path)
    assert_refused(["pretrain", "--out", run, "--resume", "--set", "run.steps=5"], "no usable checkpoint", [])


def test_a_slow_write_waits_ten_times_as_long_before_the_next(tmp_path):
    from arcsolver.solve.writer import Submissions

    subs = Submissions(tmp_path / "s.json", ["t1"], {"t1": [([[1]], [[1]])]}, "votes", False, every_s=0.0)
    subs.write()
    subs.last_took = 3600.0  # as if the last write had taken an hour
    subs.write_due()
    assert subs.writes == 1
    subs.last_took = 0.0
    subs.write_due()
    assert subs.writes == 2
