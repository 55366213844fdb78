"""The Kaggle notebook, run end to end on the CPU against a fake /kaggle/input tree."""

import json
import os
import sys
from pathlib import Path

import pytest

from arcsolver.data.loaders import export_challenges, load_tasks, read_challenges
from arcsolver.data.task import TaskSet
from arcsolver.solve.submission import check_submission

KAGGLE = Path(__file__).resolve().parent.parent / "kaggle"
NOTEBOOK = KAGGLE / "arcsolver-submit.ipynb"
QUICK = "data.n_augmentations=2 adapt.steps=3 adapt.log_every=1 infer.max_versions=2 infer.batch_size=16 " \
        "optim.global_batch_size=8 run.threads=1"


def kernel_spec_dir(root: Path) -> Path:
    """A Jupyter data dir whose python3 kernel is this interpreter (not whatever python3 a system spec names)."""
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}))
    return root


def outputs(nb) -> str:
    return "".join(o.get("text", "") for cell in nb.cells for o in cell.get("outputs", []))


def test_kernel_metadata_runs_offline_on_a_gpu_with_the_bundle_and_the_competition():
    meta = json.loads((KAGGLE / "kernel-metadata.json").read_text())
    assert meta["enable_internet"] is False and meta["enable_gpu"] is True
    assert meta["kernel_type"] == "notebook" and meta["language"] == "python"
    assert meta["code_file"] == NOTEBOOK.name
    assert meta["competition_sources"] == ["arc-prize-2025"]
    assert [s.split("/")[1] for s in meta["dataset_sources"]] == ["arcsolver-bundle"]


def test_notebook_installs_the_bundle_and_writes_a_valid_submission(tiny_bundle, tmp_path, monkeypatch):
    pytest.importorskip("ipykernel")
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")

    kaggle_input, working = tmp_path / "kaggle" / "input", tmp_path / "kaggle" / "working"
    working.mkdir(parents=True)
    (kaggle_input / "arcsolver-bundle").parent.mkdir(parents=True)
    (kaggle_input / "arcsolver-bundle").symlink_to(tiny_bundle, target_is_directory=True)
    small = load_tasks("arc1/evaluation").filter(lambda t: t.max_side() <= 5)
    tasks = TaskSet(small.tasks[:3])
    challenges = export_challenges(tasks, kaggle_input / "arc-prize-2025", "arc-agi_test")[0]
    out, site = working / "submission.json", tmp_path / "site-packages"

    monkeypatch.setenv("JUPYTER_PATH", str(kernel_spec_dir(tmp_path / "jupyter")))
    monkeypatch.setenv("ARCSOLVER_CHALLENGES", str(challenges))
    monkeypatch.setenv("ARCSOLVER_OUT", str(out))
    monkeypatch.setenv("ARCSOLVER_BUNDLE", str(kaggle_input / "arcsolver-bundle"))
    monkeypatch.setenv("ARCSOLVER_SET", QUICK)
    monkeypatch.setenv("ARCSOLVER_PIP_TARGET", str(site))  # never the development environment
    monkeypatch.setenv("OMP_NUM_THREADS", "1")

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(working)}}).execute()

    log = outputs(nb)
    assert f"arcsolver 0.1.0 from {site / 'arcsolver'}" in log  # the solve ran the bundled code
    assert "3 tasks, 3 from the model, 0 fallbacks" in log
    assert f"{out}: valid: 3 tasks" in log
    assert (site / "numpy").is_dir() and not (site / "torch").exists()
    solved, _ = read_challenges(challenges)
    assert check_submission(json.loads(out.read_text()), solved, str(out)) == []
    assert not os.path.exists(tiny_bundle / "submission.json")
