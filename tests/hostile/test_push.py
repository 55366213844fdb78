"""Hostile runs given to `push`, against a fake Hub API on 127.0.0.1. Mechanism: push uploads
only the run's own regular files (every link resolved, anything leading out refused), loads the
checkpoint as solve would before the first byte leaves, and turns every network error into one
line naming the endpoint."""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import error_line

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "hf_fake_token_for_tests"
# Run in a child process, so that HF_ENDPOINT is read at huggingface_hub's import; the audit hook
# reports every file opened under SECRETS (its first argument), the rest runs the CLI.
WATCHED_PUSH = """
import os, sys
secrets = os.path.realpath(sys.argv.pop(1))
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.path.realpath(os.fsdecode(args[0]))
        if path == secrets or path.startswith(secrets + os.sep):
            sys.stderr.write(f"OPENED {path}\\n")
sys.addaudithook(hook)
from arcsolver.cli import app
app(prog_name="arcsolver")
"""


class FakeHub(BaseHTTPRequestHandler):
    """Answers what HfApi.create_repo and create_commit ask (every file uploaded inline, as a
    regular file) and keeps every request: (method, path, body)."""

    requests: list[tuple[str, str, bytes]] = []

    def answer(self, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.requests.append(("GET", self.path, b""))
        self.answer({})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.requests.append(("POST", self.path, body))
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        if self.path.endswith("/api/repos/create"):
            self.answer({"url": f"{base}/me/tiny", "name": "me/tiny"})
        elif "/preupload/" in self.path:
            files = json.loads(body)["files"]
            self.answer({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
        elif "/commit/" in self.path:
            self.answer({"commitUrl": f"{base}/me/tiny/commit/{'a' * 40}", "commitOid": "a" * 40})
        else:
            self.answer({})

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_hub():
    """The fake Hub's endpoint and the list of requests it received."""
    FakeHub.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", FakeHub.requests
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # free again once closed: nothing listens there


def push(run, endpoint: str, home: Path, secrets: Path | None = None):
    """`arcsolver push RUN --to hf:me/tiny` in a child process talking to endpoint only."""
    pytest.importorskip("huggingface_hub", reason="the hub extra is not installed")
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_ENDPOINT=endpoint, HF_TOKEN=TOKEN, HF_HOME=str(home))
    env.update(COLUMNS="300", HF_HUB_DISABLE_TELEMETRY="1", NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    env.pop("HF_HUB_OFFLINE", None)
    watched = str(secrets or home / "nothing-watched")
    return subprocess.run(
        [sys.executable, "-c", WATCHED_PUSH, watched, "push", str(run), "--to", "hf:me/tiny"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    """A copy of the tiny run that a test may change."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, symlinks=True)
    return run


def sent(requests) -> bytes:
    return b"".join(body for _, _, body in requests)


# push uploads only the run's own files: links resolved, a link out of the run refused by name
def test_links_out_of_the_run_are_refused_and_never_read(run_copy, fake_hub, tmp_path):
    endpoint, requests = fake_hub
    home = tmp_path / "home"
    home.mkdir()
    (home / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY----- secret key")
    (home / "token").write_text("hf_secret_token_of_the_user")
    for name, target in (("README.md", "id_ed25519"), ("puzzles.txt", "token")):
        (run_copy / name).unlink()
        (run_copy / name).symlink_to(home / target)
    done = push(run_copy, endpoint, tmp_path / "hf-home", secrets=home)
    assert done.returncode == 1, done.stdout + done.stderr
    error_line(done.stderr, run_copy / "README.md", "leads out of the run", "copy")
    assert "OPENED" not in done.stderr  # neither secret was ever opened
    assert "secret" not in sent(requests).decode("latin-1") and not requests
    assert "Traceback" not in done.stderr


# push uploads only regular files: a checkpoint file that is a link to a device is refused
def test_a_link_to_a_device_inside_the_checkpoint_is_refused(run_copy, fake_hub, tmp_path):
    endpoint, requests = fake_hub
    step = sorted((run_copy / "checkpoints").iterdir())[-1]
    (step / "ema.safetensors").unlink()
    (step / "ema.safetensors").symlink_to("/dev/zero")
    done = push(run_copy, endpoint, tmp_path / "hf-home")
    assert done.returncode == 1, done.stdout + done.stderr
    error_line(done.stderr, step / "ema.safetensors", "leads out of the run")
    assert not requests


# push uploads only the run's own files: links that stay inside the run are followed
def test_a_link_inside_the_run_is_uploaded_as_its_target(run_copy, fake_hub, tmp_path):
    endpoint, requests = fake_hub
    (run_copy / "card.md").write_bytes((run_copy / "README.md").read_bytes())
    (run_copy / "README.md").unlink()
    (run_copy / "README.md").symlink_to("card.md")
    done = push(run_copy, endpoint, tmp_path / "hf-home")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pushed 6 files" in done.stdout and TOKEN not in done.stdout + done.stderr
    commits = [body for method, path, body in requests if "/commit/" in path]
    assert len(commits) == 1 and b'"README.md"' in commits[0]


# push loads what it uploads as solve would, before the first byte leaves
def test_a_checkpoint_that_does_not_load_is_never_uploaded(run_copy, fake_hub, tmp_path):
    endpoint, requests = fake_hub
    broken = run_copy / "checkpoints" / "step_9999999"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"\0" * 100)  # no state.json: not a checkpoint solve loads
    done = push(run_copy, endpoint, tmp_path / "hf-home")
    assert done.returncode == 1, done.stdout + done.stderr
    error_line(done.stderr, broken / "state.json", "missing")
    assert not requests


# push turns every network error into one line naming the endpoint
def test_an_unreachable_endpoint_is_one_line_naming_it(run_copy, tmp_path):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    done = push(run_copy, endpoint, tmp_path / "hf-home")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    error_line(done.stderr, "hf:me/tiny", endpoint, "HF_ENDPOINT")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


# push uploads only regular files: a pipe inside the run is refused by name, never opened
def test_a_pipe_inside_the_run_is_refused(run_copy, fake_hub, tmp_path):
    endpoint, requests = fake_hub
    step = sorted((run_copy / "checkpoints").iterdir())[-1]
    os.mkfifo(step / "puzzles.txt")  # opening it would block until a writer came
    done = push(run_copy, endpoint, tmp_path / "hf-home")
    assert done.returncode == 1, done.stdout + done.stderr
    error_line(done.stderr, step / "puzzles.txt", "not a regular file")
    assert not requests
