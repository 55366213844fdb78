"""Hostile files inside runs and beside inputs: a FIFO, a link to /dev/zero or JSON nested too deep
in place of any file a command reads is one line naming it, never a hang, a MemoryError or a
traceback."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager

import pytest
from helpers import TINY, tiny_config
from typer.testing import CliRunner

from arcsolver.cli import app

runner = CliRunner()
TASKS = {"t1": {"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[1, 2]]}]}}
QUICK = [
    x for s in ["adapt.steps=0", "infer.max_versions=2", "run.threads=1", "run.device='cpu'"] for x in ("--set", s)
]


FIFOS: list = []  # the FIFOs the running test made, which within() opens to free a blocked reader


# Past its deadline, in a process of its own (a library blocked in open() may hold the GIL), mark
# the hang and keep opening each FIFO for writing, which frees a reader blocked in its open.
FREE = """
import os, sys, time
time.sleep(float(sys.argv[1]))
open(sys.argv[2], "w").close()
while True:
    for fifo in sys.argv[3:]:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass  # no reader waiting on it
    time.sleep(0.2)
"""


@contextmanager
def within(seconds: int):
    """Fail, rather than hang the suite, where the block blocks on one of the test's FIFOs."""
    with tempfile.TemporaryDirectory() as tmp:
        marker = os.path.join(tmp, "hung")
        watcher = subprocess.Popen([sys.executable, "-c", FREE, str(seconds), marker, *map(str, FIFOS)])
        try:
            yield
        finally:
            watcher.kill()
            watcher.wait()
        assert not os.path.exists(marker), f"blocked on a FIFO for over {seconds} s"


@pytest.fixture(autouse=True)
def forget_fifos():
    yield
    FIFOS.clear()


def replace(path, kind: str) -> None:
    """Put a FIFO, or a link to /dev/zero, where path is."""
    if os.path.lexists(path):
        os.remove(path)
    if kind == "fifo":
        os.mkfifo(path)
        FIFOS.append(path)
    else:
        os.symlink("/dev/zero", path)


def invoke(*args, seconds: int = 60):
    with within(seconds):
        return runner.invoke(app, [str(a) for a in args])


def refused(result, path, *fragments) -> str:
    """The command's one error line, which names path."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error:") and str(path) in line, result.output
    assert all(f in line for f in fragments), line
    return line


@pytest.fixture
def run(tiny_run, tmp_path):
    """A copy of the tiny run, its newest checkpoint directory and a challenges file."""
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    (tmp_path / "c.json").write_text(json.dumps(TASKS))
    return copy, sorted((copy / "checkpoints").iterdir())[-1]


KINDS = ["fifo", "zero"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["ema.safetensors", "model.safetensors", "state.json", "puzzles.txt"])
def test_solve_refuses_a_checkpoint_file_that_is_not_a_regular_file(run, tmp_path, name, kind):
    run_dir, ckpt = run
    replace(ckpt / name, kind)
    result = invoke("solve", tmp_path / "c.json", "--checkpoint", run_dir, "--out", tmp_path / "s.json", *QUICK)
    refused(result, ckpt / name, "not a regular file")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["ema.safetensors", "model.safetensors", "optimizer.safetensors", "state.json"])
def test_resume_passes_over_a_checkpoint_file_that_is_not_a_regular_file(run, name, kind):
    run_dir, ckpt = run
    replace(ckpt / name, kind)
    sets = [x for s in TINY for x in ("--set", s)]
    result = invoke("pretrain", "--out", run_dir, "--resume", "--recipe", "cpu-small", *sets)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert f"{ckpt / name}: not a regular file" in result.output  # said while it tries the one before it
    assert result.output.strip().splitlines()[-1].startswith(f"error: {run_dir}: no usable checkpoint")


@pytest.mark.parametrize("kind", KINDS)
def test_resume_refuses_a_config_that_is_not_a_regular_file(run, kind):
    run_dir, _ = run
    replace(run_dir / "config.json", kind)
    refused(invoke("pretrain", "--out", run_dir, "--resume"), run_dir / "config.json", "not a regular file")


def test_resume_trims_metrics_that_are_not_a_regular_file_in_one_line(run):
    from arcsolver.errors import DataError
    from arcsolver.train.resume import trim_metrics

    run_dir, _ = run
    for kind in KINDS:
        replace(run_dir / "metrics.jsonl", kind)
        with within(10), pytest.raises(DataError, match="metrics.jsonl: not a regular file"):
            trim_metrics(run_dir / "metrics.jsonl", 1)
    (run_dir / "metrics.jsonl").unlink()
    (run_dir / "metrics.jsonl").write_text('{"step": 1}\n' + "[" * 100_000 + "]" * 100_000 + "\n" + '{"step": 9}\n')
    trim_metrics(run_dir / "metrics.jsonl", 1)  # a line nested too deep is no record: kept, not fatal
    assert '"step": 9' not in (run_dir / "metrics.jsonl").read_text()


@pytest.mark.parametrize("kind", KINDS)
def test_plan_refuses_rate_metrics_that_are_not_a_regular_file(tmp_path, kind):
    (tmp_path / "config.json").write_text(tiny_config("run.steps=10").model_dump_json())  # a run of this recipe
    replace(tmp_path / "metrics.jsonl", kind)
    tiny = [x for s in TINY for x in ("--set", s)]
    refused(invoke("plan", *tiny, "--rate-from", tmp_path), tmp_path / "metrics.jsonl", "not a regular file")


def test_plan_reads_rate_metrics_with_a_line_nested_too_deep(tmp_path):
    records = [{"step": 10 * k, "samples_per_s": rate} for k, rate in enumerate([5.0, 80.0, 100.0], 1)]
    lines = [json.dumps(r) for r in records] + ["[" * 100_000 + "]" * 100_000]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "config.json").write_text(tiny_config("run.steps=10").model_dump_json())  # a run of this recipe
    tiny = [x for s in [*TINY, "run.steps=36000"] for x in ("--set", s)]
    result = invoke("plan", *tiny, "--rate-from", tmp_path)
    assert result.exit_code == 0 and "at the measured 90 samples/s" in result.output, result.output


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["metrics.jsonl", "config.json"])
def test_report_refuses_or_passes_over_run_files_that_are_not_regular(run, tmp_path, name, kind):
    pytest.importorskip("matplotlib")
    run_dir, _ = run
    replace(run_dir / name, kind)
    result = invoke("report", run_dir, "--out", tmp_path / "curves.png")
    if name == "metrics.jsonl":
        refused(result, run_dir / name, "not a regular file")
    else:  # the config only titles the page
        assert result.exit_code == 0, result.output


# the checked reader everywhere: compare reads a run's config.json through it, as every other command
@pytest.mark.parametrize("kind", KINDS)
def test_compare_refuses_a_config_that_is_not_a_regular_file(run, tmp_path, kind):
    run_dir, _ = run
    other = tmp_path / "other"
    shutil.copytree(run_dir, other)
    replace(run_dir / "config.json", kind)
    result = invoke("compare", run_dir, other, "--png", tmp_path / "compare.png")
    refused(result, run_dir / "config.json", "not a regular file")


@pytest.mark.parametrize("kind", KINDS)
def test_identifiers_that_are_not_a_regular_file_are_one_line(tmp_path, kind):
    from arcsolver.errors import ConfigError
    from arcsolver.reference.names import read_identifiers

    path = tmp_path / "identifiers.json"
    replace(path, kind)
    with within(10), pytest.raises(ConfigError, match="identifiers.json: not a regular file"):
        read_identifiers(path, 3)


def test_identifiers_nested_too_deep_are_one_line(tmp_path):
    from arcsolver.errors import ConfigError
    from arcsolver.reference.names import read_identifiers

    path = tmp_path / "identifiers.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match="identifiers.json: JSON nested too deeply"):
        read_identifiers(path, 3)


@pytest.mark.parametrize("kind", KINDS)
def test_a_reference_checkpoint_or_its_settings_that_are_not_regular_are_one_line(tmp_path, kind):
    from arcsolver.errors import CheckpointError, ConfigError
    from arcsolver.reference.checkpoint import read_reference_state
    from arcsolver.reference.settings import read_reference_arch

    replace(tmp_path / "step_1", kind)
    with within(10), pytest.raises(CheckpointError, match="step_1: not a regular file"):
        read_reference_state(tmp_path / "step_1")
    pytest.importorskip("yaml")
    replace(tmp_path / "all_config.yaml", kind)
    with within(10), pytest.raises(ConfigError, match="all_config.yaml: not a regular file"):
        read_reference_arch(tmp_path / "all_config.yaml")


def test_a_checkpoint_state_nested_too_deep_is_one_line(run, tmp_path):
    run_dir, ckpt = run
    (ckpt / "state.json").write_text("[" * 100_000 + "]" * 100_000)
    result = invoke("solve", tmp_path / "c.json", "--checkpoint", run_dir, "--out", tmp_path / "s.json", *QUICK)
    refused(result, ckpt / "state.json", "nested too deeply")


def test_a_file_swapped_for_a_fifo_after_its_stat_is_refused_through_its_descriptor(tmp_path, monkeypatch):
    from arcsolver import reader
    from arcsolver.errors import DataError

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    FIFOS.append(fifo)
    monkeypatch.setattr(reader, "check_input_file", lambda path, error: None)  # the stat saw a regular file
    with within(10), pytest.raises(DataError, match="pipe: not a regular file"):
        reader.read_bytes(fifo)


# --- lock files -------------------------------------------------------------------------------


def test_a_lock_path_that_is_a_link_is_refused_and_never_written_through(tmp_path):
    from arcsolver.locks import LockError, run_lock

    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".lock").symlink_to(precious)
    with pytest.raises(LockError, match=r"run/\.lock: a symbolic link .* remove it"):
        run_lock(run_dir).acquire()
    assert precious.read_text() == "keep me"
    (run_dir / ".lock").unlink()
    (run_dir / ".lock").symlink_to(tmp_path / "absent")  # a dangling link is not followed to create its target
    with pytest.raises(LockError, match="symbolic link"):
        run_lock(run_dir).acquire()
    assert not (tmp_path / "absent").exists()


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_lock_path_that_is_not_a_file_is_one_line(tmp_path, kind):
    from arcsolver.locks import LockError, output_lock

    out = tmp_path / "s.json"
    lock = tmp_path / ".s.json.lock"
    if kind == "directory":
        lock.mkdir()
    else:
        replace(lock, "fifo")
    with within(10), pytest.raises(LockError, match=r"\.s\.json\.lock: (a directory|not a regular file)"):
        output_lock(out).acquire()


def test_commands_refuse_a_lock_path_that_is_a_link_or_a_directory_in_one_line(run, tmp_path):
    run_dir, _ = run
    (run_dir / ".lock").unlink(missing_ok=True)
    (run_dir / ".lock").mkdir()
    refused(invoke("pretrain", "--out", run_dir, "--resume"), run_dir / ".lock", "a directory", "remove")
    (tmp_path / ".s.json.lock").symlink_to(tmp_path / "c.json")
    before = (tmp_path / "c.json").read_text()
    result = invoke("solve", tmp_path / "c.json", "--checkpoint", run_dir, "--out", tmp_path / "s.json", *QUICK)
    refused(result, tmp_path / ".s.json.lock", "symbolic link")
    assert (tmp_path / "c.json").read_text() == before


@contextmanager
def read_only(folder, monkeypatch):
    """folder made read-only: by its mode, or where this runs as root (whom modes do not stop) as a
    read-only file system would be, refusing writes into it with EROFS."""
    import errno
    from pathlib import Path

    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    real_access, real_open = os.access, os.open
    inside = lambda path: Path(path).resolve().parent == folder.resolve()  # noqa: E731

    def access(path, mode, *args, **kwargs):
        if mode & os.W_OK and Path(path).resolve() == folder.resolve():
            return False
        return real_access(path, mode, *args, **kwargs)

    def open_(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(os, "access", access)
        m.setattr(os, "open", open_)
        yield


def test_a_read_only_run_or_submission_directory_is_one_line(run, tmp_path, monkeypatch):
    run_dir, _ = run
    sets = [x for s in TINY for x in ("--set", s)]
    with read_only(run_dir, monkeypatch):
        refused(invoke("pretrain", "--out", run_dir, *sets), run_dir, "cannot write there", "make it writable")
        refused(invoke("pretrain", "--out", run_dir, "--resume"), run_dir, "cannot write there")
    folder = tmp_path / "ro"
    folder.mkdir()
    with read_only(folder, monkeypatch):
        result = invoke("solve", tmp_path / "c.json", "--checkpoint", run_dir, "--out", folder / "s.json", *QUICK)
        refused(result, folder, "cannot write there", "make it writable")
        result = invoke("import-reference", tmp_path / "reference" / "step_1", "--out", folder / "converted")
        refused(result, folder, "cannot write there", "make it writable")
    assert list(folder.iterdir()) == []


# --- outputs over the inputs a command found itself ---------------------------------------------


def unchanged(*paths):
    """The bytes of paths (files, or every file under a directory), to compare after a refusal."""
    files = [p for path in paths for p in ([path] if path.is_file() else sorted(path.rglob("*")))]
    return {p: p.read_bytes() for p in files if p.is_file()}


def test_solve_refuses_to_write_over_a_checkpoint_or_run_file(run, tmp_path):
    run_dir, ckpt = run
    before = unchanged(run_dir)
    solve = ["solve", tmp_path / "c.json", "--checkpoint", run_dir, *QUICK]
    for out, fragment in [
        (ckpt / "ema.safetensors", "is the checkpoint's ema.safetensors"),
        (run_dir / "config.json", "is the run's config.json"),
        (run_dir / "metrics.jsonl", "is the run's metrics.jsonl"),
        (ckpt / "submission.json", "lies inside the checkpoint"),
        (run_dir / "checkpoints" / "s.json", "lies inside the run's checkpoints"),
    ]:
        refused(invoke(*solve, "--out", out), out, fragment, "write to another path")
    link = tmp_path / "link"
    link.symlink_to(ckpt)  # the output reached through a link: resolved
    refused(invoke(*solve, "--out", link / "state.json"), link / "state.json", "is the checkpoint's state.json")
    given = ["solve", tmp_path / "c.json", "--checkpoint", ckpt, *QUICK]  # the checkpoint named, not its run
    refused(invoke(*given, "--out", run_dir / "config.json"), run_dir / "config.json", "run's config.json")
    assert unchanged(run_dir) == before


def test_solve_writes_beside_the_run_it_reads(run, tmp_path):
    run_dir, _ = run
    result = invoke("solve", tmp_path / "c.json", "--checkpoint", run_dir, "--out", run_dir / "s.json", *QUICK)
    assert result.exit_code == 0, result.output


def test_evaluate_refuses_to_write_over_the_challenges_beside_the_solutions(tmp_path):
    challenges, solutions = tmp_path / "x_challenges.json", tmp_path / "x_solutions.json"
    challenges.write_text(json.dumps(TASKS))
    solutions.write_text(json.dumps({"t1": [[[2, 1]]]}))
    submission = tmp_path / "s.json"
    submission.write_text(json.dumps({"t1": [{"attempt_1": [[2, 1]], "attempt_2": [[1, 2]]}]}))
    before = unchanged(tmp_path)
    for option in ("--html", "--csv"):
        result = invoke("evaluate", submission, "--solutions", solutions, option, challenges)
        refused(result, challenges, option, "is the challenges file")
    assert unchanged(tmp_path) == before
    result = invoke("evaluate", submission, "--solutions", solutions, "--html", tmp_path / "report.html")
    assert result.exit_code == 0, result.output  # beside its inputs is fine


def test_report_refuses_to_write_over_the_runs_files(run, tmp_path):
    run_dir, ckpt = run
    before = unchanged(run_dir)
    for out, fragment in [
        (run_dir / "metrics.jsonl", "is the run's metrics.jsonl"),
        (run_dir / "config.json", "is the run's config.json"),
        (ckpt / "curves.png", "lies inside the run's checkpoints"),
    ]:
        refused(invoke("report", run_dir, "--out", out), out, fragment)
    assert unchanged(run_dir) == before


def test_data_export_refuses_to_write_over_the_file_it_exports(tmp_path):
    source = tmp_path / "x_challenges.json"
    source.write_text(json.dumps(TASKS))
    before = unchanged(tmp_path)
    refused(invoke("data", "export", source, "--out", tmp_path), source, "is the task file this command reads")
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "t1.json").write_text(json.dumps(TASKS["t1"]))
    refused(invoke("data", "export", folder, "--out", folder), folder, "lies inside the task directory")
    assert unchanged(tmp_path) == {**before, folder / "t1.json": (folder / "t1.json").read_bytes()}


def test_pretrain_refuses_a_run_directory_whose_files_are_its_data(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "config.json").write_text(json.dumps(TASKS))
    sets = [x for s in [*TINY, f"data.train_sets=['{data / 'config.json'}']"] for x in ("--set", s)]
    refused(invoke("pretrain", "--out", data, *sets), data, "nor a run of arcsolver", "overwrite config.json")
    assert (data / "config.json").read_text() == json.dumps(TASKS)
    (data / "config.json").write_text(tiny_config().model_dump_json())  # a run of ours, not started yet
    (data / "puzzles.txt").write_text(json.dumps(TASKS))
    sets = [x for s in [*TINY, f"data.train_sets=['{data / 'puzzles.txt'}']"] for x in ("--set", s)]
    refused(invoke("pretrain", "--out", data, *sets), data / "puzzles.txt", "is the data set file")
    assert (data / "puzzles.txt").read_text() == json.dumps(TASKS)


def test_bundle_and_import_refuse_an_output_inside_what_they_read(run, tmp_path):
    run_dir, ckpt = run
    out = ckpt / "bundle"
    refused(invoke("kaggle", "bundle", "--checkpoint", run_dir, "--out", out), out, "lies inside the checkpoint")
    assert not out.exists()
    reference = tmp_path / "reference"
    reference.mkdir()
    (reference / "step_1").write_bytes(b"weights")
    out = reference / "converted"
    refused(invoke("import-reference", reference, "--out", out), out, "lies inside the reference")
    identifiers = tmp_path / "ids.json"
    identifiers.write_text("[]")
    result = invoke("import-reference", reference, "--identifiers", identifiers, "--out", identifiers)
    refused(result, identifiers, "is the identifiers file")
    assert not out.exists() and identifiers.read_text() == "[]"
