"""Tests for arcsolver/solve/shards.py: the shard workers' files merged into the submission, in
process (the worker processes themselves are tested in test_resilience.py)."""

import json

from arcsolver.solve.shards import file_stamps, merge_shards, merge_targets, shard_path
from arcsolver.solve.submission import write_submission
from arcsolver.solve.writer import side_path


def entry(a: int, b: int) -> list[dict]:
    """One test input's attempts, two one-cell grids."""
    return [{"attempt_1": [[a]], "attempt_2": [[b]]}]


# The fallbacks of four tasks, in the challenges' order.
BASE = {tid: entry(0, 0) for tid in ("a", "b", "c", "d")}


def write_json(path, obj) -> None:
    path.write_text(json.dumps(obj))


def test_merge_targets_name_each_shard_file_and_its_side_files(tmp_path):
    out = tmp_path / "submission.json"
    assert merge_targets(out, 2, write_all=False) == {
        out: [tmp_path / "submission.shard0.json", tmp_path / "submission.shard1.json"]
    }
    targets = merge_targets(out, 2, write_all=True)
    assert targets[tmp_path / "submission.votes.json"] == [
        tmp_path / "submission.shard0.votes.json",
        tmp_path / "submission.shard1.votes.json",
    ]
    assert targets[tmp_path / "submission.likelihood.json"] == [
        tmp_path / "submission.shard0.likelihood.json",
        tmp_path / "submission.shard1.likelihood.json",
    ]
    assert targets[tmp_path / "submission.sources.json"] == [
        tmp_path / "submission.shard0.sources.json",
        tmp_path / "submission.shard1.sources.json",
    ]
    assert len(targets) == 4
    ensemble = merge_targets(out, 2, write_all=False, checkpoints=2)
    assert ensemble[tmp_path / "submission.ckpt-1.json"] == [
        tmp_path / "submission.shard0.ckpt-1.json",
        tmp_path / "submission.shard1.ckpt-1.json",
    ]
    assert len(ensemble) == 3


def test_disjoint_shards_merge_into_one_file_that_keeps_the_base(tmp_path):
    out = tmp_path / "submission.json"
    write_json(shard_path(out, 0), {"a": entry(1, 2), "stranger": entry(9, 9)})  # not a task of the challenges
    write_json(shard_path(out, 1), {"c": entry(3, 4)})
    problems = merge_shards(merge_targets(out, 2, write_all=False), BASE)
    assert problems == {out: []}
    merged = json.loads(out.read_text())
    assert merged == {"a": entry(1, 2), "b": entry(0, 0), "c": entry(3, 4), "d": entry(0, 0)}
    assert list(merged) == list(BASE)


def test_a_missing_or_half_written_shard_loses_none_of_the_others_answers(tmp_path):
    out = tmp_path / "submission.json"
    write_json(shard_path(out, 0), {"a": entry(1, 2)})
    shard_path(out, 1).write_text(json.dumps({"b": entry(5, 6)})[:20])  # cut off mid-write
    # Shard 2 has written nothing yet; shard 3's file is JSON but not a task map.
    write_json(shard_path(out, 3), [entry(7, 7)])
    problems = merge_shards(merge_targets(out, 4, write_all=False), BASE)[out]
    assert len(problems) == 2
    assert str(shard_path(out, 1)) in problems[0] and "not readable" in problems[0]
    assert str(shard_path(out, 2)) in problems[1] and "not readable" in problems[1]
    assert json.loads(out.read_text()) == {**BASE, "a": entry(1, 2)}


def test_side_files_merge_like_the_main_one(tmp_path):
    out = tmp_path / "submission.json"
    votes, likely = entry(7, 8), entry(8, 7)
    write_json(shard_path(out, 0), {"a": votes})
    write_json(side_path(shard_path(out, 0), "votes"), {"a": votes})
    write_json(side_path(shard_path(out, 0), "likelihood"), {"a": likely})
    write_json(side_path(shard_path(out, 1), "likelihood"), {"d": likely})
    problems = merge_shards(merge_targets(out, 2, write_all=True), BASE)  # shard 1 has no main or votes file yet
    assert [len(p) for p in problems.values()] == [1, 1, 0, 2]  # no shard wrote a sources record yet
    for name, answers in (
        ("submission.json", {"a": votes}),
        ("submission.votes.json", {"a": votes}),
        ("submission.likelihood.json", {"a": likely, "d": likely}),
    ):
        merged = json.loads((tmp_path / name).read_text())
        assert list(merged) == list(BASE) and merged == {**BASE, **answers}, name


def test_file_stamps_change_with_every_atomic_rewrite_and_skip_missing_files(tmp_path):
    written, missing = tmp_path / "shard0.json", tmp_path / "shard1.json"
    assert file_stamps([written, missing]) == {}
    write_submission(written, {"a": entry(1, 2)})
    first = file_stamps([written, missing])
    assert list(first) == [written] and file_stamps([written, missing]) == first
    write_submission(written, {"a": entry(1, 2)})  # the same bytes again: still a new file
    assert file_stamps([written, missing]) != first
