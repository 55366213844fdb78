"""The training loop: data protocol, checkpoints, kill/resume, and 1- vs 2-process parity."""

import io
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY, error_line
from helpers import tiny_config as tiny
from rich.console import Console
from safetensors.torch import load_file

import arcsolver.console
from arcsolver.data.loaders import load_tasks
from arcsolver.data.stream import TrainStream, build_puzzles, trainable_pairs
from arcsolver.errors import ArcsolverError
from arcsolver.train.tasks import select_tasks


def cli(args, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120"}
    return subprocess.Popen(
        [sys.executable, "-m", "arcsolver", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def sets(args):
    return [x for s in args for x in ("--set", s)]


def test_heldout_test_pairs_are_never_trained_on():
    cfg = tiny("data.heldout_sets=['arc1/training']")  # the same tasks in both lists
    train, heldout = select_tasks(cfg)
    assert train == [] and len(heldout) == 3
    pairs = trainable_pairs(train, heldout)
    for task in heldout:
        assert pairs[task.id] == task.train


def test_stream_is_a_pure_function_of_seed_and_batch_index():
    tasks = list(load_tasks("arc1/training").filter(lambda t: t.max_side() <= 5))[:3]
    puzzles = build_puzzles(tasks, 4, seed=0)
    pairs = trainable_pairs(tasks, [])
    a = TrainStream(puzzles, pairs, canvas=6, seed=1, sampling="uniform")
    b = TrainStream(puzzles, pairs, canvas=6, seed=1, sampling="uniform")
    for index in (5, 0, 5, 123):
        x, y = a.batch(index, 16), b.batch(index, 16)
        assert np.array_equal(x.inputs, y.inputs) and np.array_equal(x.puzzle_ids, y.puzzle_ids)
    # Two processes' slices make up the one-process batch.
    whole = a.batch(7, 16)
    halves = [a.batch(7, 16, rank=r, world_size=2) for r in (0, 1)]
    assert np.array_equal(np.concatenate([h.labels for h in halves]), whole.labels)
    # One epoch visits every example once.
    rows = np.concatenate([a.example_indices(i, 8) for i in range(len(a) // 8)])
    assert len(set(rows.tolist())) == len(rows)


def test_translation_keeps_the_pair_aligned():
    tasks = list(load_tasks("arc1/training").filter(lambda t: t.max_side() <= 4))[:2]
    puzzles = build_puzzles(tasks, 1, seed=0)
    stream = TrainStream(puzzles, trainable_pairs(tasks, []), canvas=8, seed=0, translate=True, sampling="uniform")
    batch = stream.batch(0, 32)
    for inp, lab in zip(batch.inputs, batch.labels):
        r_in, c_in = np.argwhere(inp >= 2).min(0)
        r_out, c_out = np.argwhere(lab >= 2).min(0)
        assert (r_in, c_in) == (r_out, c_out)


def run_to_end(run_dir: Path, extra=()):
    proc = cli(["pretrain", "--out", str(run_dir), *sets(TINY + list(extra))])
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    return out


def final_weights(run_dir: Path) -> dict:
    latest = sorted((run_dir / "checkpoints").glob("step_*"))[-1]
    return load_file(latest / "model.safetensors") | {
        f"ema.{k}": v for k, v in load_file(latest / "ema.safetensors").items()
    }


def test_pretrain_writes_a_run_directory_and_prints_scores(tmp_path):
    out = run_to_end(tmp_path / "run", ["run.steps=6", "run.checkpoint_every=4"])
    assert "held-out: pass@1" in out
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["model"]["hidden_size"] == 32
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == list(range(1, 7))
    assert "heldout_pass@2" in records[-1]
    assert [p.name for p in sorted((run / "checkpoints").iterdir())] == ["step_0000004", "step_0000006"]
    assert len((run / "puzzles.txt").read_text().split()) == 6 * 2  # 3+3 tasks x 2 versions


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    steps = ["run.steps=12", "run.checkpoint_every=4"]
    run_to_end(tmp_path / "straight", steps)

    killed = tmp_path / "killed"
    proc = cli(["pretrain", "--out", str(killed), *sets(TINY + steps)])
    deadline = time.monotonic() + 300
    while not (killed / "checkpoints" / "step_0000008").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "run ended before its 2nd checkpoint"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "checkpoints" / "step_0000012").exists()

    resumed = cli(["pretrain", "--out", str(killed), "--resume"])
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    assert "resumed at step" in out

    a, b = final_weights(tmp_path / "straight"), final_weights(killed)
    assert a.keys() == b.keys()
    for name in a:
        assert (a[name] == b[name]).all(), name


def test_existing_run_needs_resume(tiny_run, tmp_path):
    import shutil

    from typer.testing import CliRunner

    from arcsolver.cli import app

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    result = CliRunner().invoke(
        app, ["pretrain", "--out", str(run), *sets(TINY + ["run.steps=2"])], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    error_line(result.output, run, "already holds a run", "--resume", "another --out")


def test_two_processes_follow_the_one_process_loss_curve(tmp_path):
    # A compute budget that ends both runs before run.steps: FLOPs are counted over all processes.
    same = ["run.steps=8", "run.dtype='float32'", "model.halt_exploration_prob=0.0", "run.flops=1.3e9"]
    run_to_end(tmp_path / "one", same)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
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
        str(tmp_path / "two"),
        *sets(TINY + same),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr

    def records(run):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines if '"loss"' in line]

    one, two = records("one"), records("two")
    assert len(one) == len(two) == 6  # a seventh step of 8 samples would pass 1.3 GFLOP
    assert [r["loss"] for r in one] == pytest.approx([r["loss"] for r in two], rel=1e-3, abs=1e-4)
    assert [r["flops"] for r in one] == [r["flops"] for r in two]


def test_the_first_line_says_what_held_out_tasks_are(tmp_path):
    from arcsolver.train.loop import pretrain

    log = io.StringIO()
    pretrain(
        tiny("run.steps=1", "data.train_sets=[]", "data.heldout_sets=['arc1/training']"),
        tmp_path / "run",
        console=Console(file=log, width=300),
    )
    assert log.getvalue().startswith("3 tasks: demonstrations trained on, test inputs held out; 6 puzzles")


def bar_counts(text: str) -> tuple[int, int]:
    """The m/n of the progress bar's last state on a terminal (its control sequences dropped)."""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    line = [line for line in re.split(r"[\r\n]", text) if line.startswith("pretrain ") and "━" in line][-1]
    done, total = re.search(r"(\d+)/(\d+)", line).groups()
    return int(done), int(total)


def test_plain_progress_lines_alone_off_a_terminal_and_bar_totals_where_the_run_ended(tmp_path, monkeypatch):
    from arcsolver.train import loop

    monkeypatch.setattr(arcsolver.console, "HEARTBEAT_S", 0.0)  # a line at every chance
    log = io.StringIO()
    loop.pretrain(tiny("run.steps=5"), tmp_path / "five", console=Console(file=log, width=300))
    lines = log.getvalue().splitlines()
    steps = [
        re.match(r"pretrain step (\d+)/5: loss [\d.]+ exact [\d.]+ .*elapsed, about \S+ left$", line)
        for line in lines
        if line.startswith("pretrain step")
    ]
    assert [int(m[1]) for m in steps] == [1, 2, 3, 4, 5], lines
    assert any(re.match(r"held-out evaluation: \d+/\d+ queries, ", line) for line in lines), lines
    assert "━" not in log.getvalue()  # no bar lands at the log's end beside the lines

    # A run stopped by its time limit ends its bar at the step it reached, out of that step.
    log = io.StringIO()
    terminal = Console(file=log, width=300, force_terminal=True)
    result = loop.pretrain(tiny("run.steps=100000", "run.time_limit_s=1"), tmp_path / "limited", console=terminal)
    assert f"time limit of 1s reached at step {result.step}" in log.getvalue()
    assert bar_counts(log.getvalue()) == (result.step, result.step)

    # On a terminal the bar says it all.
    terminal = io.StringIO()
    loop.pretrain(
        tiny("run.steps=2"), tmp_path / "terminal", console=Console(file=terminal, width=300, force_terminal=True)
    )
    assert "pretrain step" not in terminal.getvalue() and "held-out evaluation:" not in terminal.getvalue()


def test_a_checkpoint_that_cannot_be_written_is_one_line_and_the_earlier_ones_stay(tmp_path):
    """A real full disk: the file size limit makes the checkpoint's writes fail as ENOSPC would."""
    from arcsolver.train.loop import pretrain

    run = tmp_path / "run"
    pretrain(tiny("run.steps=2"), run, console=Console(file=io.StringIO()))
    before = {p: p.read_bytes() for p in (run / "checkpoints").rglob("*") if p.is_file()}
    limit = 32 * 1024  # room for config.json and the metrics, not for a checkpoint's tensors

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = cli(["pretrain", "--out", str(run), "--resume", "--set", "run.steps=4"], preexec_fn=small_files)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "Traceback" not in out, out
    error = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and error[0].startswith(
        f"error: {run}/checkpoints: cannot write the checkpoint of step 4 ("
    ), out
    assert "File too large" in error[0] and "the checkpoints already there are intact" in error[0]
    assert {p: p.read_bytes() for p in (run / "checkpoints").rglob("*") if p.is_file()} == before  # no staging left


def test_run_files_that_cannot_be_written_are_one_line(tmp_path, monkeypatch):
    import errno

    from typer.testing import CliRunner

    from arcsolver.cli import app
    from arcsolver.train import resume

    def read_only(path, obj):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(resume, "atomic_write_json", read_only)
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["pretrain", "--out", str(run), *sets(TINY + ["run.steps=2"])])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    error_line(result.output, run, "Read-only file system", "already there are intact")


def test_paced_chunks_cover_every_item_in_order_grow_while_fast_and_halve_when_slow(monkeypatch):
    from arcsolver.train import heldout

    items = list(range(1000))
    chunks = list(heldout.paced_chunks(items, 256))
    assert [len(c) for c in chunks][:5] == [32, 64, 128, 256, 256]
    assert sum(chunks, []) == items
    monkeypatch.setattr(arcsolver.console, "HEARTBEAT_S", 0.0)  # every slice outlasts a third of it
    assert [len(c) for c in heldout.paced_chunks(items[:100], 256)][:4] == [32, 16, 8, 4]


def test_a_nested_task_directory_trains_and_a_duplicate_id_is_one_line(tmp_path):
    from helpers.data import concept_corpus, nested_write

    from arcsolver.data.loaders import read_bundled
    from arcsolver.train.loop import pretrain

    small = [t for t in read_bundled("arc1/training")[0] if t.max_side() <= 5][:3]
    corpus = concept_corpus(tmp_path / "corpus", small)
    log = io.StringIO()
    result = pretrain(
        tiny("run.steps=1", f"data.train_sets=['{corpus}']"), tmp_path / "run", console=Console(file=log, width=300)
    )
    assert result.step == 1
    assert log.getvalue().startswith("3 tasks trained on in full")

    first = nested_write(corpus / "Other" / f"{small[0].id}.json", {"train": [], "test": []})
    proc = cli(["pretrain", "--out", str(tmp_path / "again"), *sets([*TINY, f"data.train_sets=['{corpus}']"])])
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode != 0
    error_line(out, first, str(corpus / "Concept0" / f"{small[0].id}.json"), "rename one")


def test_the_heldout_record_says_the_depth_and_rollouts_it_ran(tmp_path):
    from arcsolver.train.loop import pretrain

    def record(*extra):
        run = tmp_path / f"run{len(extra)}"
        pretrain(tiny("run.steps=1", *extra), run, console=Console(file=io.StringIO()))
        return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]

    own = record()
    assert (own["heldout_n_recursions"], own["heldout_n_supervision"], own["heldout_rollouts"]) == (2, 3, 0)
    deeper = record("eval.n_recursions=3", "eval.n_supervision=5", "eval.rollouts=1")
    assert (deeper["heldout_n_recursions"], deeper["heldout_n_supervision"], deeper["heldout_rollouts"]) == (3, 5, 1)


def test_evaluate_run_scores_kept_checkpoints_as_pretraining_did_and_an_ensemble_of_copies_as_one(tmp_path):
    from arcsolver.recipes import resumed_settings
    from arcsolver.train.evaluate_run import evaluate_run, pick_checkpoints

    run = tmp_path / "run"
    run_to_end(run, ["run.steps=2", "run.checkpoint_every=1", "eval.max_versions=2"])
    final = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    proc = cli(["evaluate-run", str(run), "--checkpoints", "last:1"])
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    record = json.loads((run / "evaluations.jsonl").read_text().splitlines()[-1])
    assert record["checkpoints"] == ["step_0000002"] and (record["n_recursions"], record["n_supervision"]) == (2, 3)
    for key in ("pass@1", "pass@2", "cell_accuracy", "tasks"):
        assert record["ensemble"][key] == final[f"heldout_{key}"]  # the very scores of pretraining's evaluation

    cfg = resumed_settings(run / "config.json", ["eval.n_supervision=4"])
    twice = evaluate_run(run, cfg, pick_checkpoints(run, "2,2"), lambda text: None)
    assert twice["n_supervision"] == 4 and twice["ensemble"] == twice["alone"]["step_0000002"]
    assert [p.name for p in pick_checkpoints(run, "all")] == ["step_0000001", "step_0000002"]

    proc = cli(["evaluate-run", str(run), "--checkpoints", "7"])
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1
    error_line(out, "--checkpoints 7", "keeps steps [1, 2]")

    # The record is never written through a link, nor waited on as a pipe: refused before any work.
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep\n")
    (run / "evaluations.jsonl").unlink()
    (run / "evaluations.jsonl").symlink_to(target)
    said = []
    with pytest.raises(ArcsolverError, match="evaluations.jsonl: a link; remove it"):
        evaluate_run(run, cfg, pick_checkpoints(run, "2"), said.append)
    (run / "evaluations.jsonl").unlink()
    os.mkfifo(run / "evaluations.jsonl")
    with pytest.raises(ArcsolverError, match="evaluations.jsonl: not a regular file; remove it"):
        evaluate_run(run, cfg, pick_checkpoints(run, "2"), said.append)
    assert target.read_text() == "keep\n" and said == []


@pytest.mark.parametrize(
    "levers",
    [
        ["model.mlp_conv='2d'", "model.mlp_conv_kernel=3", "model.grad_latent_steps=1", "optim.optimizer='muon'"],
        ["model.positions='rope1d'", "model.mixer='mlp'", "model.mlp_conv='1d'", "model.halt_exploration='per_sample'"],
    ],
    ids=["sized", "fixed"],
)
def test_levers_train_checkpoint_and_evaluate(tmp_path, levers):
    from arcsolver.train.loop import pretrain

    result = pretrain(tiny("run.steps=3", *levers), tmp_path / "run", console=Console(file=io.StringIO()))
    assert result.step == 3
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in records if "loss" in r)
    assert result.scores["tasks"] == 3  # the held-out evaluation ran on the model


def test_the_cooldown_brings_the_learning_rate_down_by_the_runs_nearest_bound(tmp_path):
    from arcsolver.train.loop import pretrain

    def lrs(run):
        return [json.loads(line).get("lr") for line in (run / "metrics.jsonl").read_text().splitlines()]

    # Bounded by its steps: full for the first half of 8 steps, then a quarter less at each step.
    pretrain(tiny("run.steps=8", "optim.warmup_steps=0", "optim.cooldown=0.5"), tmp_path / "steps")
    assert [x for x in lrs(tmp_path / "steps") if x is not None] == pytest.approx([1e-3] * 5 + [7.5e-4, 5e-4, 2.5e-4])
    # Bounded by run.flops long before its steps: the rate falls as the compute is spent.
    pretrain(tiny("run.steps=10000", "optim.warmup_steps=0", "optim.cooldown=1", "run.flops=2e9"), tmp_path / "flops")
    falling = [x for x in lrs(tmp_path / "flops") if x is not None]
    assert 4 <= len(falling) < 10000 and falling[0] == pytest.approx(1e-3)
    assert all(a > b for a, b in zip(falling, falling[1:])) and falling[-1] < 1e-3 / len(falling) * 1.5
