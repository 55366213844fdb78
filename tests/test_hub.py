"""import-reference hf:OWNER/REPO/PATH through huggingface_hub's cache (a repository laid out on
disk as the Hub's cache holds one, read offline), and its one-line errors."""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

import pytest
import torch
from helpers import error_line
from helpers.hub import COMMIT, REPO, hub_cache, run_offline
from helpers.reference import convert, reference_state
from typer.testing import CliRunner

import arcsolver.hub
from arcsolver.cli import app
from arcsolver.hub import HubPath, parse_hub


def test_a_hub_checkpoint_is_read_from_the_cache_with_its_settings(tmp_path):
    cache = hub_cache(tmp_path)
    done = run_offline(cache, f"hf:{REPO}/arc_v1_public/step_7", "--out", tmp_path / "run", "--set", "model.canvas=6")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "settings from" in done.stdout and f"{COMMIT}/arc_v1_public/all_config.yaml" in done.stdout
    assert "assumed" not in done.stdout  # every setting came from the downloaded all_config.yaml
    assert (tmp_path / "run" / "checkpoints" / "step_0000007" / "model.safetensors").is_file()

    missing = run_offline(cache, f"hf:{REPO}/arc_v2_public/step_9", "--out", tmp_path / "run2")
    assert missing.returncode == 1
    error_line(missing.stderr, f"hf:{REPO}/arc_v2_public/step_9", "not in the Hub cache", "local path")
    assert "Traceback" not in missing.stderr and not (tmp_path / "run2").exists()


def test_hub_paths_are_parsed_or_refused():
    assert parse_hub(f"hf:{REPO}/arc_v1_public/step_518071", need_path=True) == HubPath(
        REPO, "arc_v1_public/step_518071"
    )
    assert parse_hub("hf:me/runs", need_path=False) == HubPath("me/runs")
    for bad in ("hf:arcprize", "hf:arcprize/repo", "hf:a/b/../c", "hf://x"):
        with pytest.raises(arcsolver.hub.ArcsolverError, match="not a Hub path"):
            parse_hub(bad, need_path=True)


def test_without_huggingface_hub_a_hub_path_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as where it is not installed
    result = convert(f"hf:{REPO}/arc_v1_public/step_7", "--out", tmp_path / "run")
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("error: ")
    assert "pip install 'arcsolver[hub]'" in result.output and not (tmp_path / "run").exists()


def test_a_failed_download_is_one_line(tmp_path, monkeypatch):
    hub = pytest.importorskip("huggingface_hub", reason="the hub extra is not installed")
    asked = []

    def full_disk(repo_id, filename, **kwargs):
        asked.append((repo_id, filename))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(hub, "hf_hub_download", full_disk)
    result = convert(f"hf:{REPO}/arc_v1_public/step_7", "--out", tmp_path / "run")
    error_line(result.output, f"hf:{REPO}/arc_v1_public/step_7", "No space left on device", "resume")
    assert asked == [(REPO, "arc_v1_public/step_7")]


# every network error is one line naming the endpoint: a connection dropped during a download too
def test_a_dropped_connection_is_one_line_naming_the_endpoint(tmp_path, monkeypatch):
    hub = pytest.importorskip("huggingface_hub", reason="the hub extra is not installed")
    client = pytest.importorskip("httpx2", reason="huggingface_hub's HTTP client here is another")

    def dropped(repo_id, filename, **kwargs):
        raise client.ReadError("Connection reset by peer")  # not an OSError

    monkeypatch.setattr(hub, "hf_hub_download", dropped)
    monkeypatch.setattr(hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    result = convert(f"hf:{REPO}/arc_v1_public/step_7", "--out", tmp_path / "run")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    error_line(result.output, f"hf:{REPO}/arc_v1_public/step_7", "http://127.0.0.1:9", "Connection reset by peer")


def test_the_settings_file_is_fetched_beside_the_checkpoint_when_there_is_one(tmp_path, monkeypatch):
    hub = pytest.importorskip("huggingface_hub", reason="the hub extra is not installed")
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = hub_cache(tmp_path) / f"models--{REPO.replace('/', '--')}" / "snapshots" / COMMIT
    (cache / "arc_v1_public" / "all_config.yaml").unlink()
    asked = []

    def from_disk(repo_id, filename, **kwargs):
        asked.append(filename)
        if not (cache / filename).is_file():
            raise LocalEntryNotFoundError(f"{filename} is not cached")
        return str(cache / filename)

    monkeypatch.setattr(hub, "hf_hub_download", from_disk)
    result = convert(f"hf:{REPO}/arc_v1_public/step_7", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert asked == ["arc_v1_public/step_7", "arc_v1_public/all_config.yaml"]
    assert "settings from the weights' shapes" in result.output  # no all_config.yaml in the repository


def front_matter(card: str) -> dict:
    yaml = pytest.importorskip("yaml", reason="reading the card's front matter needs PyYAML")
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_pretrain_writes_a_model_card_with_its_held_out_scores(tiny_run):
    card = (tiny_run / "README.md").read_text()
    meta = front_matter(card)
    assert meta["license"] == "apache-2.0" and meta["library_name"] == "arcsolver"
    assert meta["datasets"] == ["arc1/evaluation", "arc1/training"] and "pass@2" in meta["metrics"]
    records = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in records if "heldout_pass@2" in r][-1]
    metrics = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert metrics["pass@2"] == final["heldout_pass@2"] and metrics["pass@1"] == final["heldout_pass@1"]
    assert "## Training" in card
    assert f"hidden {json.loads((tiny_run / 'config.json').read_text())['model']['hidden_size']}" in card
    assert "## Held-out scores" in card and f"| {final['step']} |" in card and "## How it was made" in card


def test_import_reference_writes_a_model_card(tmp_path):
    (tmp_path / "reference").mkdir()
    torch.save(reference_state(), tmp_path / "reference" / "step_7")
    assert convert(tmp_path / "reference", "--out", tmp_path / "run").exit_code == 0
    card = (tmp_path / "run" / "README.md").read_text()
    meta = front_matter(card)
    assert meta["license"] == "mit" and meta["datasets"] == [] and "model-index" not in meta
    assert "converted from" in card and "step 7" in card and "not named" in card


def test_push_refuses_without_a_token(tiny_run, monkeypatch):
    hub = pytest.importorskip("huggingface_hub", reason="the hub extra is not installed")
    monkeypatch.setattr(hub, "get_token", lambda: None)
    result = CliRunner().invoke(app, ["push", str(tiny_run), "--to", "hf:me/tiny"], env={"COLUMNS": "300"})
    assert result.exit_code == 1
    error_line(result.output, "hf:me/tiny", "token", "hf auth login", "HF_TOKEN")


def test_push_uploads_the_weights_config_card_and_puzzles_in_one_commit(tiny_run, monkeypatch):
    hub = pytest.importorskip("huggingface_hub", reason="the hub extra is not installed")
    calls = []

    class FakeApi:
        def __init__(self, token):
            calls.append(("token", token))

        def create_repo(self, repo_id, repo_type, exist_ok):
            calls.append(("repo", repo_id, repo_type, exist_ok))

        def create_commit(self, repo_id, operations, commit_message):
            calls.append(("commit", repo_id, {op.path_in_repo: Path(op.path_or_fileobj) for op in operations}))

    monkeypatch.setattr(hub, "get_token", lambda: "hf_secret")
    monkeypatch.setattr(hub, "HfApi", FakeApi)
    result = CliRunner().invoke(app, ["push", str(tiny_run), "--to", "hf:me/tiny"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert calls[:2] == [("token", "hf_secret"), ("repo", "me/tiny", "model", True)]
    step = sorted((tiny_run / "checkpoints").iterdir())[-1]
    assert calls[2][2] == {
        "config.json": tiny_run / "config.json",
        "README.md": tiny_run / "README.md",
        "puzzles.txt": tiny_run / "puzzles.txt",
        f"checkpoints/{step.name}/model.safetensors": step / "model.safetensors",
        f"checkpoints/{step.name}/ema.safetensors": step / "ema.safetensors",
        f"checkpoints/{step.name}/state.json": step / "state.json",
    }
    assert "hf_secret" not in result.output and "pushed 6 files" in result.output
