"""The solve stage never scores zero: a huge puzzle table, a failed adaptation or a killed
parent still leave every task answered by the model where it can be."""

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers.solve import QUICK, answered_by_the_model, quick, small_tasks, write_challenges
from rich.console import Console
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from arcsolver.cli import app
from arcsolver.data.loaders import load_tasks
from arcsolver.engine import checkpoint as ckpt
from arcsolver.engine import pretrained
from arcsolver.engine.pretrained import load_model
from arcsolver.errors import CheckpointError
from arcsolver.model.trm import TRM
from arcsolver.solve import adapt as adapt_module
from arcsolver.solve import ranking, shards, solver
from arcsolver.solve.adapt import adapt
from arcsolver.solve.submission import check_submission, fallback_attempts, submission_json


def copy_checkpoint(tiny_run, tmp_path) -> Path:
    dest = tmp_path / "ckpt"
    shutil.copytree(ckpt.find_checkpoint(tiny_run), dest)
    return dest


def load_whole(ckpt_dir: Path) -> TRM:
    """The model as loading it used to be: the whole puzzle table, then the EMA over it."""
    cfg = load_model(ckpt_dir, torch.device("cpu"))[1]
    weights = load_file(ckpt_dir / "model.safetensors")
    model = TRM(cfg.model, weights["puzzle_emb.weight"].shape[0])
    model.load_state_dict(weights)
    model.load_state_dict(load_file(ckpt_dir / "ema.safetensors"), strict=False)
    return model


def test_a_large_puzzle_table_loads_as_its_mean_and_answers_the_same(tiny_run, tmp_path, monkeypatch):
    ckpt_dir = copy_checkpoint(tiny_run, tmp_path)
    weights = load_file(ckpt_dir / "model.safetensors")
    dim = weights["puzzle_emb.weight"].shape[1]
    table = torch.randn(3001, dim, generator=torch.Generator().manual_seed(0)) + 0.5
    table[0] = 0
    save_file({**weights, "puzzle_emb.weight": table}, ckpt_dir / "model.safetensors")
    monkeypatch.setattr(pretrained, "TABLE_CHUNK_ROWS", 128)  # many chunks, a partial last one

    model, _, _ = load_model(ckpt_dir, torch.device("cpu"))
    whole = load_whole(ckpt_dir)
    assert model.puzzle_emb.n_rows == 2
    new_ids, old_ids = model.grow_puzzles(5), whole.grow_puzzles(5)
    new_rows, old_rows = model.puzzle_emb.weight[new_ids.start :], whole.puzzle_emb.weight[old_ids.start :]
    assert len(new_rows) == len(old_rows) == 5
    torch.testing.assert_close(new_rows, old_rows, rtol=0, atol=1e-6)
    torch.testing.assert_close(new_rows[0], table[1:].double().mean(0).float(), rtol=0, atol=1e-6)
    new_sd, old_sd = model.state_dict(), whole.state_dict()
    assert all(torch.equal(new_sd[k], old_sd[k]) for k in new_sd if k != "puzzle_emb.weight")

    # The same adaptation and inference give the same answers from either.
    tasks = small_tasks(3)
    answers = []
    for m in (load_model(ckpt_dir, torch.device("cpu"))[0], load_whole(ckpt_dir)):
        torch.manual_seed(0)
        adapted = adapt(m, tasks, quick(), torch.float32)
        answers.append(
            [
                [
                    [c.grid.tolist() for c in ranked]
                    for ranked in ranking.infer_task(
                        m, t, adapted.versions[t.id], quick(), m.config.canvas, torch.float32
                    )["votes"]
                ]
                for t in tasks
            ]
        )
    assert answers[0] == answers[1]


def test_an_ema_file_of_another_model_is_a_one_line_error(tiny_run, tmp_path):
    ckpt_dir = copy_checkpoint(tiny_run, tmp_path)
    ema = load_file(ckpt_dir / "ema.safetensors")
    del ema["lm_head.weight"]
    ema["head.weight"] = torch.zeros(2, 2)
    save_file(ema, ckpt_dir / "ema.safetensors")
    with pytest.raises(CheckpointError, match="missing lm_head.weight; unexpected head.weight") as e:
        load_model(ckpt_dir, torch.device("cpu"))
    assert str(ckpt_dir / "ema.safetensors") in str(e.value) and "\n" not in str(e.value)

    (tmp_path / "c.json").write_text("{}")
    result = CliRunner().invoke(
        app, ["solve", str(tmp_path / "c.json"), "--checkpoint", str(ckpt_dir), "--out", str(tmp_path / "s.json")]
    )
    assert result.exit_code == 1 and "ema.safetensors: not the EMA" in result.output
    assert "Traceback" not in result.output


def test_failed_adaptation_answers_with_the_unadapted_network(tiny_run, tmp_path, monkeypatch):
    tasks = small_tasks(4)
    challenges = tmp_path / "c.json"
    write_challenges(challenges, tasks)
    real_adapt = adapt_module.adapt

    def failing_adapt(model, tasks, cfg, dtype, deadline=None, on_step=None, **kwargs):
        def fail_at_third(step, loss, metrics):
            if step == 3:  # the network has already taken steps: they must be undone
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

        return real_adapt(model, tasks, cfg, dtype, deadline, fail_at_third, **kwargs)

    unadapted = tmp_path / "unadapted.json"
    solver.solve(challenges, unadapted, str(tiny_run), quick("adapt.steps=0"), Console(file=io.StringIO()))

    monkeypatch.setattr(adapt_module, "adapt", failing_adapt)
    log = io.StringIO()
    out = tmp_path / "submission.json"
    report = solver.solve(
        challenges, out, str(tiny_run), quick("adapt.embeddings_only_fraction=0"), Console(file=log, width=300)
    )
    assert answered_by_the_model(report) == len(tasks)
    assert report.adapt_error == "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert len(adapt_module.error_line(RuntimeError("x" * 1000))) == 200
    failed = [line for line in log.getvalue().splitlines() if "adaptation failed" in line]
    assert len(failed) == 1 and "OutOfMemoryError" in failed[0] and "unadapted network" in failed[0]
    assert json.loads(out.read_text()) == json.loads(unadapted.read_text())


def process_state(pid: int) -> str | None:
    """The /proc state letter of a process (Z: a zombie, ended), None if there is none."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def children_of(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return kids


def wait_gone(pids: list[int], seconds: float) -> list[int]:
    """The pids still running (not zombies) after up to seconds."""
    end = time.monotonic() + seconds
    while (alive := [p for p in pids if process_state(p) not in (None, "Z")]) and time.monotonic() < end:
        time.sleep(0.1)
    return alive


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")


@needs_proc
def test_sharded_solve_killed_keeps_finished_answers_and_its_workers_die(tiny_run, tmp_path):
    # Six tasks a worker, so that the workers are still busy when their first answers reach the
    # files, which are written every few seconds rather than after every task.
    tasks = list(load_tasks("arc1/evaluation").filter(lambda t: t.max_side() <= 8))[:12]
    challenges = tmp_path / "c.json"
    write_challenges(challenges, tasks)
    fallback = submission_json({t.id: fallback_attempts(t) for t in tasks})
    out = tmp_path / "submission.json"
    # Many versions per task: inference takes seconds per task, so the kill lands mid-run.
    slow = ["data.n_augmentations=200", "infer.max_versions=200", "adapt.steps=2"]
    cmd = [
        sys.executable,
        "-m",
        "arcsolver",
        "solve",
        str(challenges),
        "--out",
        str(out),
        "--checkpoint",
        str(tiny_run),
        "--workers",
        "2",
        *[x for s in QUICK + slow for x in ("--set", s)],
    ]
    log = (tmp_path / "log.txt").open("w")
    parent = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=log, stderr=log)
    workers = []
    try:
        deadline = time.monotonic() + 300
        answered: dict = {}
        while not answered:
            assert parent.poll() is None and time.monotonic() < deadline, (tmp_path / "log.txt").read_text()
            time.sleep(0.05)
            try:
                merged = json.loads(out.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            answered = {tid: v for tid, v in merged.items() if v != fallback[tid]}
        workers = children_of(parent.pid)
        assert workers, "the workers had finished before the kill"
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert wait_gone(workers, 5) == []
        merged = json.loads(out.read_text())
        assert check_submission(merged, None, str(out)) == [] and list(merged) == list(fallback)
        assert all(merged[tid] == v for tid, v in answered.items())
    finally:
        for pid in wait_gone(workers, 0):
            os.kill(pid, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
            parent.wait()


@needs_proc
def test_an_orphaned_worker_ends_itself(tmp_path):
    # A middle process starts a worker without the parent-death signal, then is killed: the
    # worker's own watch must notice that its parent is gone.
    worker = (
        "import time; from arcsolver.solve.shards import exit_with_parent; exit_with_parent(); "
        "print('ready', flush=True); time.sleep(120)"
    )
    middle = (
        f"import os, subprocess, sys; env = {{**os.environ, {shards.PARENT_PID_ENV!r}: str(os.getpid())}}; "
        f"p = subprocess.Popen([sys.executable, '-c', {worker!r}], env=env); print(p.pid, flush=True); p.wait()"
    )
    proc = subprocess.Popen([sys.executable, "-c", middle], stdout=subprocess.PIPE, text=True)
    pid = int(proc.stdout.readline())
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert wait_gone([pid], 5) == []
    finally:
        if process_state(pid) not in (None, "Z"):
            os.kill(pid, signal.SIGKILL)
