"""The Kaggle bundle's slim checkpoint: its puzzle table cut to what a solve can read, and a
solve from it equal to one from the full checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
from helpers.reference import SETS, convert, reference_state, solve_file
from typer.testing import CliRunner

from arcsolver.cli import app
from arcsolver.engine.checkpoint import find_checkpoint, load_tensors
from arcsolver.engine.pretrained import MEAN_FILE, load_model, trained_versions
from arcsolver.errors import CheckpointError
from arcsolver.kaggle.slim import copy_checkpoint

UNSEEN = {
    "new1": {"train": [{"input": [[1, 2], [0, 3]], "output": [[2, 1], [3, 0]]}] * 2, "test": [{"input": [[1, 2]]}]},
    "new2": {"train": [{"input": [[4]], "output": [[4, 4]]}], "test": [{"input": [[5]]}, {"input": [[0]]}]},
}


def solve(tmp_path, checkpoint, name, tasks, *sets):
    (tmp_path / "challenges.json").write_text(json.dumps(tasks))
    result = solve_file(tmp_path, checkpoint, *sets)
    assert result.exit_code == 0, result.output
    return {suffix: (tmp_path / f"sub{suffix}.json").read_text() for suffix in ("", ".votes", ".likelihood")}, (
        tmp_path / "sub.json"
    ).rename(tmp_path / f"{name}.json")


def test_a_slim_checkpoint_solves_unseen_tasks_as_the_full_one(tiny_run, tmp_path):
    full = find_checkpoint(tiny_run)
    slim = copy_checkpoint(full, tmp_path / "slim")
    table = load_tensors(tmp_path / "slim" / "model.safetensors")["puzzle_emb.weight"]
    assert slim.rows == len(table) == 2 and slim.full_rows > 2
    after = sum(p.stat().st_size for p in (tmp_path / "slim").iterdir())
    assert after < slim.full_bytes
    full_model, _, _ = load_model(full, torch.device("cpu"))
    slim_model, _, _ = load_model(tmp_path / "slim", torch.device("cpu"))
    for (name, a), (_, b) in zip(full_model.state_dict().items(), slim_model.state_dict().items()):
        assert torch.equal(a, b), name  # the mean row too, bit for bit
    adapted = ["adapt.steps=2", "run.seed=3"]
    assert (
        solve(tmp_path, full, "full", UNSEEN, *adapted)[0]
        == solve(tmp_path, tmp_path / "slim", "s", UNSEEN, *adapted)[0]
    )


def test_kept_rows_answer_their_tasks_and_the_rest_start_at_the_full_mean(tmp_path):
    (tmp_path / "reference").mkdir()
    torch.save(reference_state(), tmp_path / "reference" / "step_7")
    names = ["<blank>", "t1", "t1|||t1|||0213456789", "other", "t1|||t5|||0123456789"]
    (tmp_path / "ids.json").write_text(json.dumps(names))
    assert (
        convert(tmp_path / "reference", "--out", tmp_path / "run", "--identifiers", tmp_path / "ids.json").exit_code
        == 0
    )
    full = find_checkpoint(tmp_path / "run")
    slim = copy_checkpoint(full, tmp_path / "slim", ["t1"])
    assert slim.rows == 4 and slim.full_rows == 5 and (tmp_path / "slim" / MEAN_FILE).is_file()
    assert (tmp_path / "slim" / "puzzles.txt").read_text().splitlines() == [
        "t1_t0.c0123456789",
        "t1_t1.c0213456789",
        "t1_t5.c0123456789",
    ]
    for (aug_a, row_a), (aug_b, row_b) in zip(
        trained_versions(full, ["t1"])["t1"], trained_versions(tmp_path / "slim", ["t1"])["t1"]
    ):
        assert aug_a == aug_b and torch.equal(row_a, row_b)
    mean = load_model(full, torch.device("cpu"))[0].puzzle_emb.weight
    assert torch.equal(mean, load_model(tmp_path / "slim", torch.device("cpu"))[0].puzzle_emb.weight)

    tasks = {**UNSEEN, "t1": {"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[1, 2]]}]}}
    sets = [*SETS, "adapt.steps=0"]
    ours = [s for s in sets if not s.startswith("model.")]
    assert solve(tmp_path, full, "full", tasks, *ours)[0] == solve(tmp_path, tmp_path / "slim", "s", tasks, *ours)[0]

    every = copy_checkpoint(full, tmp_path / "every", ["all"])
    assert every.rows == 5
    with pytest.raises(CheckpointError, match=r"--keep-rows: no task of t2, zzz has a trained row in .*puzzles.txt"):
        copy_checkpoint(full, tmp_path / "mistyped", ["zzz", "t2"])  # a typo keeps nothing: refused, not silent
    result = CliRunner().invoke(app, ["kaggle", "bundle", "--help"], env={"COLUMNS": "200"})
    assert "--keep-rows" in result.output


def test_kept_rows_of_a_pretraining_run_come_from_the_runs_puzzle_names(tiny_run, tmp_path):
    full = find_checkpoint(tiny_run)
    assert not (full / "puzzles.txt").exists()  # a run's checkpoints share the run's list
    names = (tiny_run / "puzzles.txt").read_text().splitlines()
    task = names[0].rsplit("_t", 1)[0]
    rows = [row for row, name in enumerate(names, start=1) if name.rsplit("_t", 1)[0] == task]
    slim = copy_checkpoint(full, tmp_path / "slim", [task])
    assert slim.rows == 1 + len(rows)
    assert (tmp_path / "slim" / "puzzles.txt").read_text().splitlines() == [names[row - 1] for row in rows]
    table = load_tensors(full / "model.safetensors")["puzzle_emb.weight"]
    kept = load_tensors(tmp_path / "slim" / "model.safetensors")["puzzle_emb.weight"]
    assert torch.equal(kept[1:], table[rows])
