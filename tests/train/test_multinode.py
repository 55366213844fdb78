"""Two torchrun agents joined by a c10d rendezvous, as two nodes would be: the same weights as one
process, one checkpoint in the shared run directory, and a resume on a different world size."""

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import torch
from helpers import TINY
from safetensors.torch import load_file

# float32 and no exploration: the only difference between world sizes is float summation order.
SAME = ["run.steps=4", "run.checkpoint_every=100", "run.dtype='float32'", "model.halt_exploration_prob=0.0"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120"}


def sets(args):
    return [x for s in args for x in ("--set", s)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def pretrain(run_dir: Path, *extra: str) -> str:
    cmd = [sys.executable, "-m", "arcsolver", "pretrain", "--out", str(run_dir), *extra]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def pretrain_on_two_nodes(run_dir: Path, *extra: str) -> None:
    """Two torchrun agents on this machine, each a one-process node of the same rendezvous."""
    endpoint, run_id = f"localhost:{free_port()}", f"arcsolver-test-{uuid.uuid4().hex[:8]}"
    logs = [run_dir.parent / f"node{node}.log" for node in range(2)]
    agents = []
    for node, log in enumerate(logs):
        # Both agents see the endpoint as their own host: say which one serves the rendezvous store.
        launcher = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes",
            "2",
            "--nproc-per-node",
            "1",
            "--rdzv-backend",
            "c10d",
            "--rdzv-endpoint",
            endpoint,
            "--rdzv-id",
            run_id,
            "--rdzv-conf",
            f"is_host={int(node == 0)}",
        ]
        with open(log, "w") as out:
            agents.append(
                subprocess.Popen(
                    [*launcher, "-m", "arcsolver", "pretrain", "--out", str(run_dir), *extra],
                    env=ENV,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    try:
        codes = [agent.wait(timeout=300) for agent in agents]
    finally:
        for agent in agents:
            if agent.poll() is None:  # an agent left waiting for its peer: end it and its worker
                os.killpg(agent.pid, signal.SIGKILL)
    assert codes == [0, 0], "".join(log.read_text() for log in logs)


def checkpoints(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "checkpoints").glob("step_*"))


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    latest = checkpoints(run_dir)[-1]
    ema = {f"ema.{k}": v for k, v in load_file(latest / "ema.safetensors").items()}
    return load_file(latest / "model.safetensors") | ema


def test_two_nodes_train_like_one_process_and_resume_on_one(tmp_path):
    one, two = tmp_path / "one" / "run", tmp_path / "two" / "run"
    one.parent.mkdir()
    two.parent.mkdir()
    pretrain(one, *sets(TINY + SAME))
    pretrain_on_two_nodes(two, *sets(TINY + SAME))

    a, b = final_weights(one), final_weights(two)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5, msg=name)

    # One checkpoint in the shared directory, written once, with each process's carry beside it.
    (step4,) = checkpoints(two)
    assert json.loads((step4 / "state.json").read_text())["world_size"] == 2
    assert sorted(p.name for p in step4.glob("carry_rank*")) == ["carry_rank0.safetensors", "carry_rank1.safetensors"]

    # Resumed by one process: the weights and optimiser carry over, the per-rank carries do not.
    assert "resumed at step 4" in pretrain(two, "--resume", *sets(["run.steps=6"]))
    latest = checkpoints(two)[-1]
    assert latest.name == "step_0000006"
    assert json.loads((latest / "state.json").read_text())["world_size"] == 1
    assert [p.name for p in latest.glob("carry_rank*")] == ["carry_rank0.safetensors"]
