"""Hostile output paths. Mechanisms: a folder a command fills (a run, a bundle) is new, empty or a
run of ours, and a command that adds files to a folder overwrites nothing of the user's (both in
arcsolver/inputs.py, refuse_foreign_dir and refuse_overwrites); no output is ever a lock file (the
output guard, inputs._clash). Each refusal is one line, before any work, and changes nothing."""

import json
import shutil

import pytest
from helpers import TINY, error_line
from typer.testing import CliRunner

from arcsolver.cli import app

runner = CliRunner()
TASKS = {"t1": {"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[1, 2]]}]}}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "300"})


def contents(folder):
    """Every file under folder, hidden ones included, with its bytes."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def users_folder(tmp_path):
    """A folder of the user's own files, among them names a run uses."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "README.md").write_text("# my project\n")
    (folder / "config.json").write_text(json.dumps({"editor": "vim"}))
    (folder / "notes.txt").write_text("keep me\n")
    return folder


# a run directory is new, empty or a run of ours: a folder of the user's is refused naming what it would overwrite
def test_pretrain_refuses_a_folder_of_the_users_naming_the_files(users_folder):
    before = contents(users_folder)
    result = invoke("pretrain", "--out", users_folder, *[x for s in [*TINY, "run.steps=1"] for x in ("--set", s)])
    assert result.exit_code == 1, result.output
    error_line(result.output, f"--out {users_folder}", "config.json, README.md", "new or empty folder")
    assert contents(users_folder) == before  # no lock written, nothing replaced


# a run directory is new, empty or a run of ours: other files are named though none would be overwritten
def test_pretrain_refuses_a_folder_that_holds_other_files(tmp_path):
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me\n")
    result = invoke("pretrain", "--out", folder, *[x for s in [*TINY, "run.steps=1"] for x in ("--set", s)])
    assert result.exit_code == 1, result.output
    error_line(result.output, f"--out {folder}", "it holds notes.txt")
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


# a run directory is new, empty or a run of ours: a run of ours is taken (resumed), as before
def test_a_run_of_ours_is_no_foreign_folder(tiny_run):
    from arcsolver.inputs import is_our_run, refuse_foreign_dir

    assert is_our_run(tiny_run)
    refuse_foreign_dir("--out", tiny_run, ["config.json", "README.md"])


# import-reference's --out is new or empty (a run is imported afresh): refused before the download
def test_import_reference_refuses_a_users_folder_before_downloading(users_folder, monkeypatch):
    hub = pytest.importorskip("huggingface_hub", reason="the hub extra is not installed")
    asked = []
    monkeypatch.setattr(hub, "hf_hub_download", lambda *a, **k: asked.append(a))
    before = contents(users_folder)
    result = invoke("import-reference", "hf:arcprize/trm/arc_v1_public/step_7", "--out", users_folder)
    assert result.exit_code == 1, result.output
    error_line(result.output, users_folder, "not empty", "config.json, README.md", "--out")
    assert asked == [] and contents(users_folder) == before


# kaggle bundle's --out is new or empty: a folder of the user's is refused naming what it would overwrite
def test_kaggle_bundle_names_the_files_it_would_overwrite(tiny_run, tmp_path):
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    result = invoke("kaggle", "bundle", "--checkpoint", tiny_run, "--out", folder)
    assert result.exit_code == 1, result.output
    error_line(result.output, f"--out {folder}", "manifest.json")
    assert contents(folder) == {folder.joinpath("manifest.json").relative_to(folder): b"{}"}


# data export overwrites nothing of the user's: a file of its name already there is refused by name
def test_data_export_refuses_to_overwrite_a_users_file(tmp_path):
    source = tmp_path / "x_challenges.json"
    source.write_text(json.dumps(TASKS))
    out = tmp_path / "data"
    out.mkdir()
    (out / "x_challenges.json").write_text("my own edits\n")
    result = invoke("data", "export", source, "--out", out)
    assert result.exit_code == 1, result.output
    error_line(result.output, f"--out {out}", "x_challenges.json", "overwrite")
    assert (out / "x_challenges.json").read_text() == "my own edits\n"
    (out / "x_challenges.json").unlink()
    (out / "notes.txt").write_text("keep me\n")  # written beside: nothing of the user's is replaced
    assert invoke("data", "export", source, "--out", out).exit_code == 0
    assert json.loads((out / "x_challenges.json").read_text()) == TASKS and (out / "notes.txt").exists()


# report overwrites nothing of the user's: its default curves.png goes over a run's own only
def test_report_refuses_to_overwrite_curves_png_outside_a_run(tiny_run, tmp_path):
    pytest.importorskip("matplotlib")
    folder = tmp_path / "metrics-only"
    folder.mkdir()
    shutil.copy(tiny_run / "metrics.jsonl", folder)
    (folder / "curves.png").write_bytes(b"my own picture")
    result = invoke("report", folder)
    assert result.exit_code == 1, result.output
    error_line(result.output, f"RUN_DIR {folder}", "curves.png")
    assert (folder / "curves.png").read_bytes() == b"my own picture"
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "curves.png").write_bytes(b"an old drawing")
    assert invoke("report", run).exit_code == 0  # a run's own curves are redrawn
    assert (run / "curves.png").read_bytes().startswith(b"\x89PNG")


# the output guard treats a run's lock files as part of the run: a live run's lock is never replaced
@pytest.mark.parametrize("command", ["compare", "report", "solve"])
def test_no_output_replaces_a_live_runs_lock(tiny_run, tmp_path, command):
    from arcsolver.locks import Busy, run_lock

    run, other = tmp_path / "run", tmp_path / "other"
    for copy in (run, other):
        shutil.copytree(tiny_run, copy)
    lock = run / ".lock"
    (tmp_path / "c.json").write_text(json.dumps(TASKS))
    args = {
        "compare": ["compare", run, other, "--png", lock],
        "report": ["report", run, "--out", lock],
        "solve": ["solve", tmp_path / "c.json", "--checkpoint", run, "--out", lock, "--set", "adapt.steps=0"],
    }[command]
    with run_lock(run):  # the run is live
        result = invoke(*args)
        assert result.exit_code == 1, result.output
        error_line(result.output, f"{'--png' if command == 'compare' else '--out'} {lock}", "lock file")
        with pytest.raises(Busy):
            run_lock(run).acquire()  # still guarded
    assert not lock.read_bytes().startswith(b"\x89PNG")


# a run directory is new, empty or a run of ours: --resume proves it by its checkpoints, and replaces nothing
def test_resume_into_a_folder_of_the_users_replaces_nothing(users_folder):
    before = contents(users_folder)
    result = invoke("pretrain", "--out", users_folder, "--resume")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert {name: data for name, data in contents(users_folder).items() if name.name != ".lock"} == before
