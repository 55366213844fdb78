"""The shard worker's entry point (arcsolver/solve/worker.py): its command line, read back."""

import sys
import time

import pytest

from arcsolver.errors import ArcsolverError
from arcsolver.solve import worker


def test_the_command_reads_back_with_paths_after_the_options(tmp_path, monkeypatch):
    odd = tmp_path / "-c.json"  # a path that looks like an option
    cmd = worker.worker_command(1, 2, odd, tmp_path / "s.json", ["-run", "b"], "kaggle", ["adapt.steps=5"], 60.0)
    assert cmd[:2] == [sys.executable, "-c"] and "'arcsolver.solve.worker'" in cmd[2] and cmd[3] == "1/2"
    assert cmd[-5:] == ["--", str(odd), str(tmp_path / "s.json"), "-run", "b"]
    seen = {}
    monkeypatch.setattr(worker, "exit_with_parent", lambda: None)
    monkeypatch.setattr(
        worker, "load_recipe", lambda model, stage, recipe, overrides: seen.update(recipe=recipe, overrides=overrides)
    )

    def solve(challenges, out, checkpoint, cfg, console, shard, started):
        seen.update(challenges=challenges, out=out, checkpoint=checkpoint, shard=shard)
        assert started <= time.monotonic()  # the budget counts from the worker's start
        raise ArcsolverError("stop here")

    monkeypatch.setattr(worker, "solve", solve)
    assert worker.main(cmd[3:]) == 1
    assert seen == {
        "recipe": "kaggle",
        "overrides": ["adapt.steps=5", "run.time_budget_s=60.0"],
        "challenges": odd,
        "out": tmp_path / "s.json",
        "checkpoint": ["-run", "b"],
        "shard": (1, 2),
    }


@pytest.mark.parametrize("shard", ["x", "1/0", "3/2", "1/2/3", "-1/2"])
def test_a_bad_shard_is_one_line_naming_it_and_the_form(shard, capsys):
    assert worker.main(["--recipe=cpu-small", "--", shard, "c.json", "s.json", "run"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"shard {shard}" in lines[0] and "K/N" in lines[0], lines
