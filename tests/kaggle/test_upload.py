"""`arcsolver kaggle upload`, against a fake kagglehub: refused without it or without credentials,
the bundle verified before anything is sent, its subfolders kept, the key never printed."""

import json
import re
import shlex
import shutil
import sys
import types
from pathlib import Path

import pytest
from helpers import error_line
from typer.testing import CliRunner

from arcsolver.cli import app
from arcsolver.kaggle.manifest import file_entries

DATASET = "me/arcsolver-bundle"
KEY = "s3cret-kaggle-key"


def fake_kagglehub(monkeypatch, version="0.3.13", credentials=None, refusal=None) -> list:
    """Install a fake kagglehub (its dataset_upload, credentials and errors); returns the uploads it was asked for."""
    calls = []
    hub, config, exceptions = (types.ModuleType(f"kagglehub{part}") for part in ("", ".config", ".exceptions"))

    class BackendError(Exception):
        pass

    class KaggleApiHTTPError(OSError):  # kagglehub's is a requests.HTTPError, an OSError
        pass

    def dataset_upload(handle, local_dataset_dir, version_notes="", ignore_patterns=None):
        calls.append((handle, local_dataset_dir, version_notes, ignore_patterns))
        if refusal:
            raise KaggleApiHTTPError(refusal)

    hub.__version__, hub.dataset_upload, hub.config, hub.exceptions = version, dataset_upload, config, exceptions
    config.get_kaggle_credentials = lambda: credentials
    exceptions.BackendError, exceptions.KaggleApiHTTPError = BackendError, KaggleApiHTTPError
    for module in (hub, config, exceptions):
        monkeypatch.setitem(sys.modules, module.__name__, module)
    return calls


def me():
    return types.SimpleNamespace(username="me", key=KEY, api_key=None)


def upload(bundle, *args):
    return CliRunner().invoke(
        app, ["kaggle", "upload", str(bundle), "--dataset", DATASET, *args], env={"COLUMNS": "300"}
    )


def test_upload_sends_the_verified_bundle_with_its_subfolders_and_never_prints_the_key(ensemble_bundle, monkeypatch):
    bundle, _ = ensemble_bundle
    calls = fake_kagglehub(monkeypatch, credentials=me())
    result = upload(bundle, "--notes", "step 3")
    assert result.exit_code == 0, result.output
    assert calls == [(DATASET, str(bundle), "step 3", ["dataset-metadata.json"])]
    files = sum(1 for p in bundle.rglob("*") if p.is_file())
    assert f"uploaded {bundle} to the Kaggle dataset {DATASET}: {files} files, " in result.output
    assert "as its tree; attach it to the notebook" in result.output and KEY not in result.output


def test_a_bundle_of_more_than_50_files_is_said_to_go_as_one_archive(ensemble_bundle, tmp_path, monkeypatch):
    bundle = tmp_path / "arcsolver-bundle"
    shutil.copytree(ensemble_bundle[0], bundle)
    for i in range(30):
        (bundle / "wheels" / f"extra{i}-1.0-py3-none-any.whl").write_bytes(b"x")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"] = [e.model_dump() for e in file_entries(bundle)]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    fake_kagglehub(monkeypatch, credentials=me())
    result = upload(bundle)
    assert result.exit_code == 0, result.output
    assert (
        "as one archive.zip (kagglehub packs a folder of more than 50 files; the notebook unpacks it)" in result.output
    )


def test_upload_refuses_without_credentials_or_a_kagglehub_that_keeps_folders_sending_nothing(
    ensemble_bundle, monkeypatch
):
    bundle, _ = ensemble_bundle
    calls = fake_kagglehub(monkeypatch, credentials=None)
    result = upload(bundle)
    assert result.exit_code == 1 and calls == []
    error_line(result.output, DATASET, "uploading needs Kaggle credentials", "KAGGLE_USERNAME and KAGGLE_KEY")
    calls = fake_kagglehub(monkeypatch, version="0.3.12", credentials=me())
    result = upload(bundle)
    assert result.exit_code == 1 and calls == []
    assert result.output.strip() == (
        "error: kagglehub 0.3.12 drops a bundle's subfolders (kept from 0.3.13 on): pip install 'kagglehub>=0.3.13'"
    )
    monkeypatch.setitem(sys.modules, "kagglehub", None)  # not installed
    result = upload(bundle)
    assert result.exit_code == 1 and "uploading a bundle needs kagglehub: pip install" in result.output


def test_a_changed_bundle_is_refused_before_anything_is_sent(ensemble_bundle, tmp_path, monkeypatch):
    bundle = tmp_path / "arcsolver-bundle"
    shutil.copytree(ensemble_bundle[0], bundle)
    (bundle / "recipe.toml").write_text("# edited\n")
    calls = fake_kagglehub(monkeypatch, credentials=me())
    result = upload(bundle)
    assert result.exit_code == 1 and calls == []
    error_line(result.output, bundle / "recipe.toml", "the manifest says")


def test_a_refusal_by_kaggle_is_one_line_with_the_key_masked(ensemble_bundle, monkeypatch):
    bundle, _ = ensemble_bundle
    fake_kagglehub(monkeypatch, credentials=me(), refusal=f"401 Client Error: Unauthorized (key {KEY})\nmore")
    result = upload(bundle)
    assert result.exit_code == 1 and KEY not in result.output
    error_line(result.output, DATASET, "Kaggle refused the upload (401 Client Error: Unauthorized (key ***))")


@pytest.mark.parametrize("dataset", ["arcsolver-bundle", "me/", "me/a b", "me/x/y"])
def test_a_dataset_not_owner_slash_slug_is_one_line(ensemble_bundle, dataset):
    result = CliRunner().invoke(app, ["kaggle", "upload", str(ensemble_bundle[0]), "--dataset", dataset])
    assert result.exit_code == 1
    error_line(result.output, f"--dataset {dataset!r}", "expected OWNER/SLUG")


def test_the_readmes_upload_command_is_one_this_fake_took(ensemble_bundle, monkeypatch):
    readme = (Path(__file__).resolve().parents[2] / "docs" / "kaggle.md").read_text(encoding="utf-8")
    (line,) = re.findall(r"^\s*(arcsolver kaggle upload .*)$", readme, flags=re.M)
    args = [a.replace("YOU/", "me/") for a in shlex.split(line)[1:]]
    assert args[2] == "arcsolver-bundle"  # the folder `kaggle bundle --out arcsolver-bundle` wrote
    args[2] = str(ensemble_bundle[0])
    calls = fake_kagglehub(monkeypatch, credentials=me())
    result = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert calls == [(DATASET, str(ensemble_bundle[0]), "", ["dataset-metadata.json"])]
