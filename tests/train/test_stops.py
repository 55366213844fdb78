"""Ctrl-C and SIGTERM during pretraining: the current step finishes, a checkpoint is written and
the run says how to continue; a second signal cannot cut the checkpoint short; under torchrun
every process stops at the same step."""

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import TINY, tiny_config
from rich.console import Console
from typer.testing import CliRunner

from arcsolver.cli import app
from arcsolver.engine import checkpoint as ckpt
from arcsolver.train import heldout
from arcsolver.train.loop import pretrain

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
LONG = ["run.steps=100000", "run.checkpoint_every=100000"]


def sets(args):
    return [x for s in args for x in ("--set", s)]


def wait_for_first_record(run: Path, proc: subprocess.Popen, seconds: float = 120) -> None:
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + seconds
    while not (metrics.exists() and metrics.read_text().count("\n") >= 1):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.05)


def stop_line(out: str, name: str) -> int:
    """The step of the run's one `stopped by` line, checked to give the resume command."""
    lines = [line for line in out.splitlines() if "stopped by" in line]
    assert len(lines) == 1, out
    match = re.search(
        rf"stopped by {name} at step (\d+); checkpoint (\S+) written; continue with: "
        r"arcsolver pretrain --out (\S+) --resume( under the same torchrun launch)?$",
        lines[0],
    )
    assert match, lines[0]
    return int(match[1])


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_after_the_step_with_a_checkpoint_and_resume_finishes(tmp_path, signum, code):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "arcsolver", "pretrain", "--out", str(run), *sets(TINY + LONG)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for_first_record(run, proc)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == code, out
    assert "Traceback" not in out
    step = stop_line(out, signal.Signals(signum).name)
    assert f"--out {run} --resume" in out
    assert [p.name for p in ckpt.checkpoint_dirs(run)] == [f"step_{step:07d}"]
    assert ckpt.read_training_state(run / "checkpoints" / f"step_{step:07d}")["step"] == step
    logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(1, step + 1))

    done = CliRunner().invoke(app, ["pretrain", "--out", str(run), "--resume", "--set", f"run.steps={step + 2}"])
    assert done.exit_code == 0, done.output
    assert f"resumed at step {step}" in done.output and "held-out: pass@1" in done.output


def test_signals_while_a_checkpoint_is_written_do_not_cut_it_short(tmp_path, monkeypatch):
    real, writes = ckpt.write_main_part, []

    def write_under_fire(staging, *args):
        writes.append(staging)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the checkpoint is written...
        real(staging, *args)
        os.kill(os.getpid(), signal.SIGINT)  # ...and once more before it is published

    monkeypatch.setattr(ckpt, "write_main_part", write_under_fire)
    run = tmp_path / "run"
    log = io.StringIO()
    result = pretrain(tiny_config("run.steps=50", "run.checkpoint_every=2"), run, console=Console(file=log, width=300))
    # The periodic checkpoint of step 2 is finished, then the stop writes that step's again.
    assert (result.step, result.signal) == (2, signal.SIGINT) and len(writes) == 2
    assert stop_line(log.getvalue(), "SIGINT") == 2
    monkeypatch.undo()
    assert pretrain(tiny_config("run.steps=3"), run, resume=True, console=Console(file=io.StringIO())).step == 3


def test_a_signal_during_the_final_evaluation_ends_it_with_the_checkpoint_kept(tmp_path, monkeypatch):
    real = heldout.predict_with_answer_loss

    def predict(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(heldout, "predict_with_answer_loss", predict)
    run = tmp_path / "run"
    log = io.StringIO()
    result = pretrain(tiny_config("run.steps=2"), run, console=Console(file=log, width=300))
    assert (result.step, result.signal) == (2, signal.SIGTERM)
    assert (
        "stopped by SIGTERM during the final held-out evaluation; the checkpoint of step 2 is complete"
        in log.getvalue()
    )
    assert [p.name for p in ckpt.checkpoint_dirs(run)] == ["step_0000002"]
    assert "heldout" not in (run / "metrics.jsonl").read_text()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handlers are put back


def descendants(pid: int) -> list[int]:
    """Every process below pid, from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = [], [pid]
    while frontier:
        kids = [p for p, parent in parents.items() if parent in frontier]
        found += kids
        frontier = kids
    return found


def rank_of(pid: int) -> str | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    return next((v.decode().split("=", 1)[1] for v in env if v.startswith(b"RANK=")), None)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the worker processes in /proc")
def test_under_torchrun_a_signal_to_one_process_stops_both_at_one_step(tmp_path):
    run = tmp_path / "run"
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
        str(run),
        *sets(TINY + LONG),
    ]
    proc = subprocess.Popen(
        cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        wait_for_first_record(run, proc)
        second = [pid for pid in descendants(proc.pid) if rank_of(pid) == "1"]
        assert len(second) == 1
        os.kill(second[0], signal.SIGINT)  # the other process is not signalled: it must follow
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    step = stop_line(out, "SIGINT")  # printed by rank 0, which learnt of the signal from rank 1
    assert "--resume under the same torchrun launch" in out
    newest = run / "checkpoints" / f"step_{step:07d}"
    assert sorted(p.name for p in newest.glob("carry_rank*")) == ["carry_rank0.safetensors", "carry_rank1.safetensors"]
    assert ckpt.read_training_state(newest)["step"] == step
