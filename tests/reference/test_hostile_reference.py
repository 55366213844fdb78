"""import-reference on hostile checkpoints, settings and identifiers: each ends in one line
naming the file and what is wrong, and leaves nothing behind."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import error_line
from helpers.reference import HIDDEN, ROWS, SETS, convert, reference_state
from safetensors import SafetensorError

ROOT = Path(__file__).resolve().parents[2]


def saved(tmp_path, state=None, yaml_text: str | None = None) -> Path:
    directory = tmp_path / "reference"
    directory.mkdir(exist_ok=True)
    torch.save(reference_state() if state is None else state, directory / "step_7")
    if yaml_text is not None:
        (directory / "all_config.yaml").write_text(yaml_text)
    return directory / "step_7"


def refused(tmp_path, checkpoint, path, *fragments, extra=()):
    result = convert(checkpoint, "--out", tmp_path / "run", *extra)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    line = error_line(result.output, path, *fragments)
    assert not (tmp_path / "run").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    return line


def test_a_sound_small_checkpoint_converts(tmp_path):
    result = convert(saved(tmp_path), "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "checkpoints" / "step_0000007" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    "edit, fragments",
    [
        (lambda s: s.update({"embed_tokens.embedding_weight": torch.zeros(12)}), ("embed_tokens.weight", "1 dim")),
        (lambda s: s.update({"puzzle_emb.weights": torch.zeros(ROWS)}), ("puzzle_emb.weight", "1 dim")),
        (lambda s: s.update({"puzzle_emb.weights": torch.zeros(0, HIDDEN)}), ("puzzle_emb.weight", "empty")),
        (lambda s: s.pop("L_level.layers.0.mlp.down_proj.weight"), ("blocks.0.mlp.down.weight", "incomplete")),
        (lambda s: s.update({"H_init": torch.zeros(HIDDEN, 1)}), ("y_init", "2 dim")),
        (lambda s: s.update({"lm_head.weight": torch.full((12, HIDDEN), float("nan"))}), ("lm_head", "NaN")),
        (lambda s: s.update({"lm_head.weight": torch.zeros(12, HIDDEN).to_sparse()}), ("lm_head", "sparse")),
        (lambda s: s.update({"lm_head.weight": torch.zeros(12, HIDDEN, dtype=torch.int64)}), ("lm_head", "int64")),
    ],
    ids=["1d-embedding", "1d-table", "0-row-table", "no-down-projection", "2d-init", "nan", "sparse", "integers"],
)
def test_a_malformed_state_dict_is_one_line(tmp_path, edit, fragments):
    state = {k.removeprefix("_orig_mod.model.inner."): v for k, v in reference_state().items()}
    edit(state)
    checkpoint = saved(tmp_path, {f"model.inner.{k}": v for k, v in state.items()})
    refused(tmp_path, checkpoint, checkpoint, *fragments)


LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)


@pytest.mark.parametrize(
    "text, fragments",
    [
        (LAUGHS + "arch: {hidden_size: 16}\n", ("alias",)),
        ("arch:\n  hidden_size: 16\n  x: " + "[" * 200 + "]" * 200 + "\n", ("levels deep",)),
        ("arch: {hidden_size: 16, L_cycles: four}\n", ("arch.L_cycles", "'four'")),
        ("arch: {hidden_size: 16, L_cycles: '4'}\n", ("arch.L_cycles", "'4'")),
        ("arch: {hidden_size: 16, expansion: .inf}\n", ("arch.expansion", "finite")),
        ("arch: {hidden_size: 16, rope_theta: .nan}\n", ("arch.rope_theta", "finite")),
        ("arch: {hidden_size: 16, H_cycles: -3}\n", ("arch.H_cycles", "-3")),
        ("arch: {hidden_size: 16, num_heads: true}\n", ("arch.num_heads",)),
        ("arch: {hidden_size: 1e400}\n", ("arch.hidden_size",)),
        ("arch: [1, 2]\n", ("no arch: block",)),
        ("arch: {hidden_size: 16\n", ("YAML",)),
    ],
    ids=["billion-laughs", "deep", "string", "quoted", "inf", "nan", "negative", "bool", "huge", "list", "broken"],
)
def test_a_hostile_settings_file_is_one_line(tmp_path, text, fragments):
    checkpoint = saved(tmp_path, yaml_text=text)
    refused(tmp_path, checkpoint, checkpoint.parent / "all_config.yaml", *fragments)


def test_a_settings_file_that_is_not_a_regular_file_is_one_line(tmp_path):
    checkpoint = saved(tmp_path)
    os.mkfifo(checkpoint.parent / "all_config.yaml")
    refused(tmp_path, checkpoint, checkpoint.parent / "all_config.yaml", "not a regular file")


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("a\nb", "row 2"),
        ("a\x1b[31mb", "row 2"),
        ("../../etc", "row 2"),
        ("a\\b", "row 2"),
        ("", "row 2"),
        (3, "row 2"),
    ],
    ids=["newline", "escape", "slash", "backslash", "empty", "number"],
)
def test_identifiers_that_are_not_names_are_refused(tmp_path, name, fragment):
    names = tmp_path / "identifiers.json"
    names.write_text(json.dumps(["<blank>", "t1", name, "t3", "t4"]))
    refused(tmp_path, saved(tmp_path), names, fragment, "identifiers.json", extra=("--identifiers", names))


def test_identifiers_nested_too_deep_or_not_a_file_are_one_line(tmp_path):
    names = tmp_path / "identifiers.json"
    names.write_text("[" * 100_000 + "]" * 100_000)
    refused(tmp_path, saved(tmp_path), names, "nested", extra=("--identifiers", names))
    names.unlink()
    os.mkfifo(names)
    refused(tmp_path, saved(tmp_path), names, "not a regular file", extra=("--identifiers", names))


@pytest.mark.parametrize("what", ["weights", "state"])
def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, what):
    import arcsolver.engine.checkpoint as checkpoint

    def full_safetensors(*args, **kwargs):  # what safetensors raises when the device is full
        raise SafetensorError('Error while serializing: I/O error: No space left on device (os error 28) at path "x"')

    real_write_text = Path.write_text

    def full_write_text(self, *args, **kwargs):
        if self.name == "state.json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real_write_text(self, *args, **kwargs)

    if what == "weights":
        monkeypatch.setattr(checkpoint, "save_file", full_safetensors)
    else:
        monkeypatch.setattr(Path, "write_text", full_write_text)
    refused(tmp_path, saved(tmp_path), tmp_path / "run", "No space left on device", "nothing was left")


SLOW_IMPORT = """
import sys, time
import arcsolver.engine.checkpoint as checkpoint
real = checkpoint.save_file
def slow(*args, **kwargs):
    real(*args, **kwargs)
    print("staged", flush=True)
    time.sleep(60)
checkpoint.save_file = slow
from arcsolver.cli import app
sys.argv = ["arcsolver", *sys.argv[1:]]
app()
"""


def test_sigterm_during_import_leaves_no_temporary_files(tmp_path):
    checkpoint = saved(tmp_path)
    args = [
        "import-reference",
        str(checkpoint),
        "--out",
        str(tmp_path / "run"),
        *[x for s in SETS for x in ("--set", s)],
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="300")
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_IMPORT, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "staged"  # the weights are written into the staging directory
    assert [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 143, output
    error_line(output, tmp_path / "run", "SIGTERM", "nothing was left")
    assert "Traceback" not in output
    # The output's lock file (.run.lock, empty once released) stays by design; nothing else may.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".run.lock") == ["reference"]


# --- what a killed process leaves: the staged run of a killed import (atomic.staged_folder) -----

KILLED_IMPORT = """
import os, sys, time
def hang(*args, **kwargs):  # the run is staged whole; killed before its rename into place
    print("staged", flush=True)
    time.sleep(120)
os.rename = os.replace = hang
from arcsolver.cli import app
sys.argv = ["arcsolver", *sys.argv[1:]]
app()
"""


def test_the_next_import_removes_the_staged_run_of_a_killed_one_saying_so(tmp_path):
    checkpoint, out = saved(tmp_path), tmp_path / "run"
    args = ["import-reference", str(checkpoint), "--out", str(out), *[x for s in SETS for x in ("--set", s)]]
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="300")
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_IMPORT, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout.readline().strip() == "staged", proc.stdout.read()
    finally:
        proc.kill()  # SIGKILL: nothing of ours runs
        proc.communicate(timeout=60)
    [left] = [p for p in tmp_path.iterdir() if p.name.startswith(".run.arcsolver-")]
    assert (left / "checkpoints" / "step_0000007" / "model.safetensors").exists() and not out.exists()
    result = convert(checkpoint, "--out", out)
    assert result.exit_code == 0, result.output
    assert f"removed {left}: the unfinished work of process {proc.pid} on " in result.output
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".run.lock") == ["reference", "run"]


# --- every input checked before long work: the checkpoint, the settings and --out before the rows
# of --identifiers arc1concept are rebuilt (876,405 rows: minutes) --------------------------------


@pytest.mark.parametrize("fault", ["missing checkpoint", "bad setting", "occupied out"])
def test_a_bad_input_is_refused_in_seconds_before_the_rows_are_rebuilt(tmp_path, monkeypatch, fault):
    import time

    from arcsolver.reference import names

    def rebuild(*args, **kwargs):
        pytest.fail("the rows were rebuilt before every input was checked")

    monkeypatch.setattr(names, "reference_identifiers", rebuild)
    concept = tmp_path / "ConceptARC" / "corpus" / "Copy"
    concept.mkdir(parents=True)
    grid = [[1, 0], [0, 2]]
    (concept / "Copy1.json").write_text(
        json.dumps({"train": [{"input": grid, "output": grid}], "test": [{"input": grid}]})
    )
    checkpoint = tmp_path / "no_such_step_7" if fault == "missing checkpoint" else saved(tmp_path)
    out = tmp_path / "run"
    if fault == "occupied out":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    sets = [*SETS, "model.n_heads=3"] if fault == "bad setting" else SETS
    started = time.monotonic()
    result = convert(
        checkpoint, "--out", out, "--identifiers", "arc1concept", "--concept", tmp_path / "ConceptARC", sets=sets
    )
    seconds = time.monotonic() - started
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    named = {"missing checkpoint": checkpoint, "bad setting": checkpoint, "occupied out": out}[fault]
    assert result.output.strip().splitlines()[-1].startswith("error: "), result.output
    assert str(named) in result.output.strip().splitlines()[-1], result.output
    assert seconds < 20, f"refused after {seconds:.0f}s"
