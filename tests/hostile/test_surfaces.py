"""Hostile trackers, plans, checkpoints, bundles and signals: each ends in one line naming the
path or setting and the fix, before any work, and destroys nothing."""

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import TINY, error_line, tiny_config
from typer.testing import CliRunner

from arcsolver.cli import app

runner = CliRunner()

TASKS = {"t1": {"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[1, 2]]}]}}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def sets(*settings):
    return [x for s in settings for x in ("--set", s)]


@contextmanager
def read_only(directory: Path):
    """directory made read-only for this process: by its mode, or (as root, whom modes do not stop)
    by the immutable attribute; skipped where neither holds."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        undo = lambda: directory.chmod(0o755)  # noqa: E731
    elif subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode == 0:
        undo = lambda: subprocess.run(["chattr", "-i", str(directory)], check=True)  # noqa: E731
    else:
        pytest.skip("no way to make a directory read-only for root here")
    try:
        if os.access(directory, os.W_OK):
            pytest.skip("a read-only directory is still writable here")
        yield directory
    finally:
        undo()


# --- trackers -----------------------------------------------------------------------------------


@pytest.fixture
def challenges(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(TASKS))
    return path


def pretrain_with(run, *settings):
    return invoke("pretrain", "--out", run, *sets(*TINY, "run.steps=1", *settings))


def run_of_ours(run: Path) -> str:
    """run made a run of ours that has not started (its config.json alone, of the tiny recipe):
    pretrain takes it, where it refuses a folder of the user's; returns the config."""
    run.mkdir(parents=True, exist_ok=True)
    config = tiny_config().model_dump_json()
    (run / "config.json").write_text(config)
    return config


def test_pretrain_refuses_a_tracker_directory_that_is_a_file(tmp_path):
    run = tmp_path / "run"
    config = run_of_ours(run)
    (run / "tensorboard").write_text("mine")
    result = pretrain_with(run, "run.trackers=['tensorboard']")
    assert result.exit_code == 1, result.output
    error_line(result.output, run / "tensorboard", "not a directory", "choose another --out")
    assert (run / "tensorboard").read_text() == "mine"
    assert (run / "config.json").read_text() == config  # refused before any work


def test_pretrain_refuses_a_read_only_run_directory_for_its_trackers(tmp_path):
    run = tmp_path / "run"
    config = run_of_ours(run)
    (run / "tensorboard").mkdir(parents=True)
    with read_only(run / "tensorboard"):
        result = pretrain_with(run, "run.trackers=['tensorboard']")
    assert result.exit_code == 1, result.output
    error_line(result.output, run / "tensorboard", "read-only")
    assert (run / "config.json").read_text() == config


@pytest.mark.parametrize("occupied", ["s.trackers", "s.trackers/tensorboard"])
def test_solve_refuses_a_tracker_directory_that_is_a_file(challenges, tiny_run, tmp_path, occupied):
    (tmp_path / occupied).parent.mkdir(exist_ok=True)
    (tmp_path / occupied).write_text("mine")
    out = tmp_path / "s.json"
    result = invoke("solve", challenges, "--checkpoint", tiny_run, "--out", out, *sets("run.trackers=['tensorboard']"))
    assert result.exit_code == 1, result.output
    error_line(result.output, tmp_path / occupied, "not a directory")
    assert (tmp_path / occupied).read_text() == "mine" and not out.exists()


def test_solve_refuses_a_read_only_tracker_directory(challenges, tiny_run, tmp_path):
    out = tmp_path / "s.json"
    (tmp_path / "s.trackers").mkdir()
    with read_only(tmp_path / "s.trackers"):
        result = invoke(
            "solve", challenges, "--checkpoint", tiny_run, "--out", out, *sets("run.trackers=['tensorboard']")
        )
    assert result.exit_code == 1, result.output
    error_line(result.output, tmp_path / "s.trackers", "read-only")
    assert not out.exists()


@pytest.fixture
def broken_wandb(tmp_path, monkeypatch):
    """A wandb package that imports but has none of wandb's functions."""
    package = tmp_path / "site" / "wandb"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("__version__ = '0.0'\n")
    monkeypatch.syspath_prepend(str(package.parent))
    for name in [m for m in sys.modules if m == "wandb" or m.startswith("wandb.")]:
        monkeypatch.delitem(sys.modules, name)
    yield
    sys.modules.pop("wandb", None)  # the broken one, imported by the check; the real one comes back


def test_a_broken_wandb_stops_pretrain_and_solve_before_any_work(broken_wandb, challenges, tiny_run, tmp_path):
    run = tmp_path / "run"
    result = pretrain_with(run, "run.trackers=['wandb']")
    assert result.exit_code == 1, result.output
    error_line(result.output, "run.trackers", "wandb", "broken", "no wandb.init", "pip install --force-reinstall wandb")
    assert not run.exists()
    out = tmp_path / "s.json"
    result = invoke("solve", challenges, "--checkpoint", tiny_run, "--out", out, *sets("run.trackers=['wandb']"))
    assert result.exit_code == 1, result.output
    error_line(result.output, "run.trackers", "broken")
    assert not out.exists()


# --- arcsolver plan -----------------------------------------------------------------------------

TINY_SETS = sets(*TINY, "run.steps=36000")


def measured_run(path: Path, rates, *settings, on_gpu=False) -> Path:
    """A run directory as a short run of TINY (with settings) leaves it, its records at these rates."""
    from helpers import tiny_config

    path.mkdir(exist_ok=True)
    (path / "config.json").write_text(tiny_config("run.steps=10", *settings).model_dump_json())
    extra = {"gpu_peak_gib": 1.0} if on_gpu else {}
    lines = [json.dumps({"step": 10 * k, "samples_per_s": r, **extra}) for k, r in enumerate(rates, 1)]
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("rate", ["NaN", "Infinity", "-Infinity", "-90.0", "0", "1e-300", "true", "1e300"])
def test_plan_refuses_a_rate_that_is_no_measurement_naming_its_record(tmp_path, rate):
    run = measured_run(tmp_path / "run", [5.0, 80.0, 90.0])
    text = (run / "metrics.jsonl").read_text().splitlines()
    text[2] = text[2].replace("90.0", rate)
    (run / "metrics.jsonl").write_text("\n".join(text) + "\n")
    result = invoke("plan", *TINY_SETS, "--rate-from", run)
    assert result.exit_code == 1, result.output
    error_line(result.output, run / "metrics.jsonl", "line 3 (step 30)", "samples_per_s", "measure again")
    assert "hours" not in result.output


def test_plan_refuses_a_rate_of_another_model_or_device(tmp_path):
    other = measured_run(tmp_path / "other", [5.0, 80.0, 90.0], "model.hidden_size=64")
    result = invoke("plan", *TINY_SETS, "--rate-from", other)
    assert result.exit_code == 1, result.output
    error_line(result.output, f"--rate-from {other}", "another model", "model.hidden_size 64 (this recipe: 32)")
    gpu = measured_run(tmp_path / "gpu", [5.0, 80.0, 90.0], on_gpu=True)  # TINY plans for the CPU
    result = invoke("plan", *TINY_SETS, "--rate-from", gpu)
    assert result.exit_code == 1, result.output
    error_line(result.output, f"--rate-from {gpu}", "measured on a GPU", "for a CPU")
    cpu = measured_run(tmp_path / "cpu", [5.0, 80.0, 90.0])
    result = invoke("plan", *sets(*TINY, "run.steps=36000", "run.device='auto'"), "--rate-from", cpu)
    assert result.exit_code == 1, result.output
    error_line(result.output, f"--rate-from {cpu}", "measured on a CPU", "for GPUs")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "metrics.jsonl").write_text((cpu / "metrics.jsonl").read_text())
    result = invoke("plan", *TINY_SETS, "--rate-from", bare)
    assert result.exit_code == 1, result.output
    error_line(result.output, f"--rate-from {bare}", "no config.json")


def test_plan_without_a_measured_rate_names_the_reference_or_says_there_is_none(monkeypatch):
    from helpers import tiny_config

    from arcsolver.train import plan as plan_module

    tiny = tiny_config("run.steps=36000")
    assert plan_module.time_line(tiny, 36000, 1, None).startswith("time: no measured rate for this recipe")
    assert plan_module.reference_rate(tiny) is None
    # The arc1 recipe is the reference's: 401,172 steps of 768 at 836 samples/s are about 102 hours.
    arc1 = load_arc1()
    assert plan_module.reference_rate(arc1) == plan_module.H100_ARC1
    line = plan_module.time_line(arc1, 401_172, 1, None)
    assert line.startswith("time: 102.4 hours for 401172 steps of 768 at the reference rate 836 samples/s"), line
    assert "H100" in line and "BENCHMARKS.md" in line and "not on this machine" in line
    arc1_lr = load_arc1("optim.lr=3e-4")  # a setting that does not shape a step keeps the reference
    assert plan_module.reference_rate(arc1_lr) == plan_module.H100_ARC1
    assert plan_module.reference_rate(load_arc1("model.hidden_size=256")) is None
    assert plan_module.reference_rate(load_arc1("run.device='cpu'")) is None


def load_arc1(*settings):
    from arcsolver.config import PretrainConfig
    from arcsolver.recipes import load_recipe

    return load_recipe(PretrainConfig, "pretrain", "arc1", list(settings))


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--processes", "1000"], "--processes 1000: optim.global_batch_size 8 does not split"),
        (["--processes", "3"], "give a divisor of 8"),
        (["--gpu-memory", "nan"], "--gpu-memory nan: not a GPU size"),
        (["--gpu-memory", "-24"], "--gpu-memory -24.0: not a GPU size"),
        (["--gpu-memory", "0"], "not a GPU size"),
        (["--gpu-memory", "inf"], "not a GPU size"),
    ],
)
def test_plan_refuses_processes_and_gpu_sizes_that_make_no_plan(args, fragment):
    result = invoke("plan", *TINY_SETS, *args)
    assert result.exit_code == 1, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error: ") and fragment in line, line
    assert "Traceback" not in result.output


# --- resume and signals -------------------------------------------------------------------------


def test_a_checkpoint_with_non_finite_optimiser_moments_gives_way_to_the_one_before(tmp_path):
    import io
    import math

    import torch
    from helpers import tiny_config
    from rich.console import Console
    from safetensors.torch import load_file, save_file

    from arcsolver.train.loop import pretrain

    steps = ["run.steps=4", "run.checkpoint_every=2"]
    run = tmp_path / "run"
    pretrain(tiny_config(*steps), run, console=Console(file=io.StringIO()))
    newest = run / "checkpoints" / "step_0000004" / "optimizer.safetensors"
    moments = load_file(newest)
    name = sorted(moments)[0]
    moments[name] = torch.full_like(moments[name], math.nan)
    save_file(moments, str(newest))
    log = io.StringIO()
    result = pretrain(tiny_config(*steps[:1], "run.steps=5"), run, resume=True, console=Console(file=log, width=400))
    lines = log.getvalue().splitlines()
    said = [line for line in lines if "trying the checkpoint before it" in line]
    assert len(said) == 1 and f"{newest}: 1 optimiser moments hold inf or NaN" in said[0], lines
    assert any("resumed at step 2" in line for line in lines) and result.step == 5


@pytest.mark.parametrize("setting", ["optim.lr=1e308", "optim.puzzle_emb_lr=1e39", "optim.weight_decay=1e300"])
def test_a_rate_past_what_float32_holds_is_one_line_from_the_settings(setting, tmp_path):
    challenges = tmp_path / "c.json"
    challenges.write_text(json.dumps(TASKS))
    result = invoke("solve", challenges, "--out", tmp_path / "s.json", *sets(setting))
    assert result.exit_code == 1, result.output
    error_line(result.output, f"--set {setting!r}", setting.split("=")[0], "less than or equal to 3.40282e+38")
    result = invoke("pretrain", "--out", tmp_path / "run", *sets(setting))
    assert result.exit_code == 1 and "3.40282e+38" in result.output, result.output


def test_two_ctrl_c_50_ms_apart_exit_130_without_a_traceback(tmp_path):
    import signal
    import time

    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "arcsolver", "pretrain", "--out", str(run), *sets(*TINY, "run.steps=100000")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not ((run / "metrics.jsonl").exists() and (run / "metrics.jsonl").read_text().count("\n") >= 1):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in out and "KeyboardInterrupt" not in out, out
    assert "stopped by SIGINT" in out


# --- kaggle bundle: staged, locked, cleaned up on every exit --------------------------------------

HANGING_BUNDLE = """
import sys, time
from pathlib import Path
from arcsolver.kaggle import bundle

def build_wheel(source, wheel_dir):
    wheel_dir.mkdir(parents=True, exist_ok=True)
    (wheel_dir / "arcsolver-0-py3-none-any.whl").write_bytes(b"half")
    print("building", flush=True)
    time.sleep(120)

bundle.build_wheel = build_wheel
from arcsolver.cli import app
app(["kaggle", "bundle", "--checkpoint", sys.argv[1], "--out", sys.argv[2], "--python-version", "3.12"])
"""


def leftovers(parent: Path, out: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{out.name}.partial"))


def test_a_bundle_killed_by_sigterm_leaves_no_half_built_folder(tiny_run, tmp_path):
    import signal

    out = tmp_path / "bundle"
    proc = subprocess.Popen(
        [sys.executable, "-c", HANGING_BUNDLE, str(tiny_run), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout.readline().strip() == "building", proc.communicate()[0]
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "Traceback" not in output, output
    assert not out.exists() and leftovers(tmp_path, out) == []


def test_a_failed_bundle_leaves_nothing_and_a_finished_one_is_never_written_over(tiny_run, tmp_path, monkeypatch):
    from arcsolver.errors import ArcsolverError
    from arcsolver.kaggle import bundle

    def fails(source, wheel_dir):
        wheel_dir.mkdir(parents=True)
        (wheel_dir / "half.whl").write_bytes(b"half")
        raise ArcsolverError("pip wheel (building arcsolver) failed: no room")

    monkeypatch.setattr(bundle, "build_wheel", fails)
    out = tmp_path / "bundle"
    result = invoke("kaggle", "bundle", "--checkpoint", tiny_run, "--out", out, "--python-version", "3.12")
    assert result.exit_code == 1 and "no room" in result.output, result.output
    assert not out.exists() and leftovers(tmp_path, out) == []
    out.mkdir()
    (out / "manifest.json").write_text("{}")  # a finished bundle
    result = invoke("kaggle", "bundle", "--checkpoint", tiny_run, "--out", out, "--python-version", "3.12")
    error_line(result.output, f"--out {out}", "would overwrite manifest.json", "new or empty folder")
    assert [p.name for p in out.iterdir()] == ["manifest.json"]


def test_a_second_bundle_into_one_out_is_refused_and_touches_nothing_of_the_first(tiny_run, tmp_path, monkeypatch):
    from arcsolver.kaggle import bundle
    from arcsolver.locks import Lock

    monkeypatch.setattr(bundle, "build_wheel", lambda source, wheel_dir: pytest.fail("the second bundle built"))
    out = tmp_path / "bundle"
    first = tmp_path / f".bundle.partial-{os.getpid() + 1}"  # the first bundle, half-way through
    (first / "wheels").mkdir(parents=True)
    (first / "wheels" / "arcsolver.whl").write_bytes(b"first")
    with Lock(tmp_path / ".bundle.lock", f"bundle {out}"):
        result = invoke("kaggle", "bundle", "--checkpoint", tiny_run, "--out", out, "--python-version", "3.12")
    assert result.exit_code == 1, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith(f"error: bundle {out} is in use by process {os.getpid()}"), line
    assert (first / "wheels" / "arcsolver.whl").read_bytes() == b"first" and not out.exists()


# --- every input checked before long work: --keep-rows before the wheels ------------------------


def test_an_unknown_keep_rows_id_is_refused_before_any_wheel_is_built(tiny_run, tmp_path, monkeypatch):
    from arcsolver.kaggle import bundle

    monkeypatch.setattr(bundle, "build_wheel", lambda source, wheel_dir: pytest.fail("a wheel was built first"))
    out = tmp_path / "bundle"
    args = ("--checkpoint", tiny_run, "--out", out, "--python-version", "3.12", "--keep-rows", "no_such_task")
    result = invoke("kaggle", "bundle", *args)
    error_line(result.output, "--keep-rows", "no task of no_such_task has a trained row", "give tasks it names")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# --- what a killed process leaves: the bundle's pip dies with it, and pip's temporary files lie in
# the staging folder, which the next bundle removes, saying so -----------------------------------

FAKE_PIP = """
import os, pathlib, sys, tempfile, time
pathlib.Path(os.environ["FAKE_PIP_RECORD"]).write_text(f"{os.getpid()} {os.environ.get('TMPDIR', '')}")
pathlib.Path(tempfile.mkdtemp(prefix="pip-build-"), "part").write_bytes(b"x" * 1000)  # as pip's builds do
if os.environ.get("FAKE_PIP_HANG"):
    time.sleep(120)
print("ERROR: the fake pip stops here")
sys.exit(1)
"""


@pytest.fixture
def fake_pip(tmp_path, monkeypatch):
    """`python -m pip` runs a pip that records its pid and $TMPDIR (in the returned file), makes a
    build folder there, and fails; or hangs, with FAKE_PIP_HANG set."""
    (tmp_path / "fake" / "pip").mkdir(parents=True)
    (tmp_path / "fake" / "pip" / "__init__.py").write_text("")
    (tmp_path / "fake" / "pip" / "__main__.py").write_text(FAKE_PIP)
    record = tmp_path / "pip-record"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "fake"), str(Path(__file__).parents[2])]))
    monkeypatch.setenv("FAKE_PIP_RECORD", str(record))
    return record


def running(pid: int) -> bool:
    """Whether pid is a process that has not ended (a zombie no one has reaped has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_killed_bundles_pip_dies_with_it_and_the_next_bundle_removes_what_it_left(tiny_run, tmp_path, fake_pip):
    import signal
    import time

    out = tmp_path / "bundle"
    args = ["kaggle", "bundle", "--checkpoint", str(tiny_run), "--out", str(out), "--python-version", "3.12"]
    code = "import sys; from arcsolver.cli import app; app(sys.argv[1:])"
    bundler = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=dict(os.environ, FAKE_PIP_HANG="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (fake_pip.exists() and fake_pip.read_text()):
        assert bundler.poll() is None and time.monotonic() < deadline, "the bundle ended before pip started"
        time.sleep(0.1)
    pid, tmp = fake_pip.read_text().split(" ", 1)
    bundler.send_signal(signal.SIGKILL)
    bundler.wait(timeout=60)
    deadline = time.monotonic() + 30
    while running(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(int(pid)), "pip outlived the bundle that started it"
    [left] = [p for p in tmp_path.iterdir() if p.name.startswith(".bundle.partial-")]
    assert Path(tmp).is_relative_to(left) and list(Path(tmp).glob("pip-build-*/part")), tmp  # not in $TMPDIR

    fake_pip.unlink()
    result = invoke(*args)
    assert result.exit_code == 1, result.output
    assert f"removed {left}: the unfinished work of process {bundler.pid} on " in result.output
    assert "pip wheel (building arcsolver) failed: ERROR: the fake pip stops here" in result.output
    from arcsolver.atomic import owner_tag

    _, tmp = fake_pip.read_text().split(" ", 1)
    assert Path(tmp).is_relative_to(tmp_path / f".bundle.partial-{owner_tag()}")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".bundle")) == [".bundle.lock"]
