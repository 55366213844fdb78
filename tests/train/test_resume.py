"""Resuming a pretraining run: it continues exactly the run it finds, or refuses in one line
before writing anything; an unreadable newest checkpoint gives way to the one before it; the
metrics of the steps redone are not repeated."""

import io
import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import TINY, error_line, tiny_config
from rich.console import Console
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from arcsolver.cli import app
from arcsolver.engine import checkpoint as ckpt
from arcsolver.errors import CheckpointError
from arcsolver.train.loop import pretrain
from arcsolver.train.resume import trim_metrics

runner = CliRunner()
STEPS = ["run.steps=4", "run.checkpoint_every=2"]


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory) -> Path:
    """A tiny run of 4 steps with checkpoints at steps 2 and 4 (copied by each test that changes it)."""
    run = tmp_path_factory.mktemp("resume") / "run"
    pretrain(tiny_config(*STEPS), run, console=Console(file=io.StringIO()))
    return run


@pytest.fixture
def run_copy(two_checkpoints, tmp_path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(two_checkpoints, dest)
    return dest


def files_of(run: Path) -> dict[str, bytes]:
    """The run's files, but for the lock of the run directory (which names its latest holder)."""
    return {
        str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and p.name != ".lock"
    }


def resume(run: Path, *args: str):
    return runner.invoke(app, ["pretrain", "--out", str(run), "--resume", *args])


def one_error_line(result) -> str:
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def test_changed_settings_are_refused_each_named_and_nothing_is_written(run_copy):
    before = files_of(run_copy)
    line = one_error_line(
        resume(
            run_copy,
            "--set",
            "data.max_tasks=2",
            "--set",
            "data.n_augmentations=3",
            "--set",
            "optim.optimizer='adamw'",
            "--set",
            "data.heldout_sets=['arc1/training']",
        )
    )
    assert "cannot resume: 4 settings differ from its checkpoint step_0000004" in line
    for fragment in (
        "data.max_tasks: 3 -> 2",
        "data.n_augmentations: 2 -> 3",
        'optim.optimizer: "adam_atan2" -> "adamw"',
        'data.heldout_sets: ["arc1/evaluation"] -> ["arc1/training"]',
    ):
        assert fragment in line, fragment
    assert files_of(run_copy) == before


def test_a_recipe_given_with_resume_is_compared_with_the_checkpoint(run_copy):
    before = files_of(run_copy)
    line = one_error_line(resume(run_copy, "--recipe", "cpu-small"))  # the tiny run's settings are not cpu-small's
    assert "cannot resume" in line and "model.hidden_size: 32 -> 128" in line
    assert files_of(run_copy) == before
    # The same recipe with the run's settings and a longer run continues it.
    done = resume(run_copy, "--recipe", "cpu-small", *[x for s in TINY + ["run.steps=5"] for x in ("--set", s)])
    assert done.exit_code == 0, done.output
    assert "resumed at step 4" in done.output and (run_copy / "checkpoints" / "step_0000005").is_dir()


def test_run_length_logging_evaluation_and_hardware_may_change(run_copy):
    done = resume(
        run_copy,
        "--set",
        "run.steps=6",
        "--set",
        "run.log_every=2",
        "--set",
        "run.checkpoint_every=3",
        "--set",
        "run.keep_checkpoints=1",
        "--set",
        "eval.max_versions=1",
        "--set",
        "run.threads=1",
        "--set",
        "optim.micro_batch_size=4",
        "--set",
        "run.time_limit_s=300",
    )
    assert done.exit_code == 0, done.output
    assert "resumed at step 4" in done.output
    assert [p.name for p in ckpt.checkpoint_dirs(run_copy)] == ["step_0000006"]
    assert json.loads((run_copy / "config.json").read_text())["run"]["steps"] == 6


def test_a_bad_set_key_on_resume_names_the_set(run_copy):
    line = one_error_line(resume(run_copy, "--set", "data.max_task=2"))
    assert "--set 'data.max_task=2'" in line and "did you mean data.max_tasks?" in line
    line = one_error_line(resume(run_copy, "--set", "optim.lr=-1"))
    assert "--set 'optim.lr=-1'" in line


def test_an_unreadable_config_json_is_one_line(run_copy):
    (run_copy / "config.json").write_text("[1, 2]")
    assert "config.json: not an object of settings" in one_error_line(resume(run_copy))
    (run_copy / "config.json").write_text("{nope")
    assert "config.json: invalid JSON" in one_error_line(resume(run_copy))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def reshape(path: Path) -> None:
    """Every tensor of the file with a leading dimension of one more row."""
    tensors = load_file(path)
    save_file({k: torch.cat([v, v[:1]]) if v.ndim else v for k, v in tensors.items()}, path)


def state_edit(edit):
    def apply(newest: Path) -> None:
        path = newest / "state.json"
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))

    return apply


DAMAGE = {
    "truncated weights": (
        lambda c: truncate(c / "model.safetensors"),
        "model.safetensors: not a readable safetensors file",
    ),
    "missing state.json": (lambda c: (c / "state.json").unlink(), "state.json: missing"),
    "corrupt state.json": (lambda c: (c / "state.json").write_text('{"step": 4,'), "state.json: corrupt"),
    "state.json a list": (lambda c: (c / "state.json").write_text("[4]"), "state.json: corrupt (an object of step"),
    "state.json missing keys": (state_edit(lambda s: {"step": s["step"]}), "world_size is not a number of processes"),
    "state.json of another optimiser": (
        state_edit(
            lambda s: (
                s
                | {
                    "optimizer": {
                        "param_groups": [{**g, "eps": 1e-8} for g in s["optimizer"]["param_groups"]],
                        "scalars": s["optimizer"]["scalars"],
                    }
                }
            )
        ),
        "state.json: the optimiser settings of another optimiser or model (unexpected eps)",
    ),
    "carry of another shape": (
        lambda c: reshape(c / "carry_rank0.safetensors"),
        "carry_rank0.safetensors: not a carry of this run",
    ),
    "EMA of another shape": (
        lambda c: reshape(c / "ema.safetensors"),
        "ema.safetensors: not the EMA of this run's model",
    ),
    "optimiser of another shape": (
        lambda c: reshape(c / "optimizer.safetensors"),
        "optimizer.safetensors: optimiser state",
    ),
    "weights of another shape": (lambda c: reshape(c / "model.safetensors"), "model.safetensors: not the weights"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_an_unreadable_newest_checkpoint_gives_way_to_the_one_before(run_copy, damage):
    spoil, fragment = DAMAGE[damage]
    newest = run_copy / "checkpoints" / "step_0000004"
    spoil(newest)
    log = io.StringIO()
    result = pretrain(tiny_config(*STEPS), run_copy, resume=True, console=Console(file=log, width=400))
    assert result.step == 4
    lines = log.getvalue().splitlines()
    said = [line for line in lines if "trying the checkpoint before it" in line]
    assert len(said) == 1 and fragment in said[0] and str(newest) in said[0], lines
    assert any("resumed at step 2" in line for line in lines)


def test_no_usable_checkpoint_is_one_line_naming_the_run(run_copy):
    for step in ("step_0000002", "step_0000004"):
        truncate(run_copy / "checkpoints" / step / "model.safetensors")
    before = files_of(run_copy)
    result = resume(run_copy)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and "Traceback" not in result.output
    error_line(result.output, run_copy, "no usable checkpoint")
    assert len([line for line in lines if "trying the checkpoint before it" in line]) == 2
    assert files_of(run_copy) == before


def test_a_state_json_of_the_wrong_shape_is_a_checkpoint_error_for_solve_too(run_copy):
    from arcsolver.engine.pretrained import load_model

    newest = run_copy / "checkpoints" / "step_0000004"
    for text, fragment in (("[1]", "got list"), ('{"step": 4}', "config is not an object")):
        (newest / "state.json").write_text(text)
        with pytest.raises(CheckpointError, match=fragment):
            load_model(newest, torch.device("cpu"))


def test_a_run_whose_saved_settings_hold_the_table_size_resumes_and_solves(run_copy):
    from arcsolver.engine.pretrained import load_model

    rows = load_file(run_copy / "checkpoints" / "step_0000004" / "model.safetensors")["puzzle_emb.weight"].shape[0]
    # Runs saved before the table's size left the settings kept it in config.json and state.json.
    for path in [run_copy / "config.json", *run_copy.glob("checkpoints/*/state.json")]:
        saved = json.loads(path.read_text())
        (saved["config"] if "config" in saved else saved)["model"]["n_puzzle_ids"] = rows
        path.write_text(json.dumps(saved))
    model, _, _ = load_model(run_copy, torch.device("cpu"))
    assert model.puzzle_emb.n_rows == 2  # the blank row and the trained rows' mean, whatever the settings said
    result = resume(run_copy, "--set", "run.steps=5")
    assert result.exit_code == 0, result.output
    assert "resumed at step 4" in result.output


def steps_logged(run: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]


def test_resumed_metrics_do_not_repeat_the_steps_after_the_checkpoint(run_copy):
    # As if killed after logging step 4 but before its checkpoint, in the middle of a record.
    shutil.rmtree(run_copy / "checkpoints" / "step_0000004")
    with open(run_copy / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "loss": 1.')
    pretrain(tiny_config(*STEPS), run_copy, resume=True, console=Console(file=io.StringIO()))
    assert steps_logged(run_copy) == [1, 2, 3, 4]
    heldout = [json.loads(line) for line in (run_copy / "metrics.jsonl").read_text().splitlines() if "heldout" in line]
    assert [r["step"] for r in heldout] == [4]  # the killed run's final evaluation is dropped, the new one kept


def test_trim_metrics_keeps_what_it_cannot_read_and_leaves_an_untouched_file_alone(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\nnot json\n{"step": 2}\n[3]\n')
    stamp = path.stat().st_mtime_ns, path.stat().st_ino
    trim_metrics(path, 2)
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == stamp  # nothing to drop: not rewritten
    trim_metrics(path, 1)
    assert path.read_text() == '{"step": 1}\nnot json\n[3]\n'


# --- what a killed process leaves: the checkpoint a killed run was staging (atomic.staged_folder's
# rule: named after the main process, removed by the next run, saying so) ------------------------


def test_a_resumed_run_removes_the_checkpoint_a_killed_run_left_half_written_saying_so(run_copy):
    from helpers import dead_owner

    left = run_copy / ckpt.CHECKPOINTS / f"{ckpt.STAGING}0000005-{dead_owner()}"
    left.mkdir()
    (left / "model.safetensors").write_bytes(b"half")
    done = resume(run_copy, "--set", "run.steps=5")
    assert done.exit_code == 0, done.output
    assert f"removed {left}: the unfinished work of process" in done.output
    assert [p.name for p in (run_copy / ckpt.CHECKPOINTS).iterdir() if not p.name.startswith(ckpt.PREFIX)] == []
    assert (run_copy / ckpt.CHECKPOINTS / "step_0000005").is_dir()
