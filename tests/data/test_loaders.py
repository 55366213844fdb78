import json

import pytest
from helpers.data import concept_corpus, nested_write, write

from arcsolver.data.loaders import (
    BUNDLED,
    export_challenges,
    load_tasks,
    read_bundled,
    read_challenges,
    read_directory,
)
from arcsolver.errors import DataError

GOOD = {"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[3, 4]]}]}


@pytest.mark.parametrize(
    "name, n_tasks",
    [("arc1/training", 400), ("arc1/evaluation", 400), ("arc2/training", 1000), ("arc2/evaluation", 120)],
)
def test_bundled_sets_load_with_their_sizes_and_solutions(name, n_tasks):
    tasks, problems = read_bundled(name)
    assert problems == []
    assert len(tasks) == n_tasks
    assert all(t.has_solutions for t in tasks)


def test_kaggle_copies_are_bundled_too():
    assert {"kaggle2024/evaluation", "kaggle2025/evaluation"} <= set(BUNDLED)
    tasks, problems = read_bundled("kaggle2025/evaluation")
    assert len(tasks) == 120 and problems == []


def test_unknown_bundled_name_is_a_data_error():
    with pytest.raises(DataError, match="unknown bundled set"):
        read_bundled("arc3/training")


def test_challenges_file_finds_solutions_beside_it(tmp_path):
    write(tmp_path / "x_challenges.json", {"t1": GOOD})
    write(tmp_path / "x_solutions.json", {"t1": [[[4, 3]]]})
    tasks, problems = read_challenges(tmp_path / "x_challenges.json")
    assert problems == []
    assert tasks["t1"].test[0].output.tolist() == [[4, 3]]


def test_challenges_without_solutions_have_unknown_outputs(tmp_path):
    tasks = load_tasks(str(write(tmp_path / "c.json", {"t1": GOOD})))
    assert tasks["t1"].test[0].output is None and not tasks["t1"].has_solutions


def test_solutions_must_line_up_with_test_inputs(tmp_path):
    write(tmp_path / "x_challenges.json", {"t1": GOOD, "t2": GOOD})
    write(tmp_path / "x_solutions.json", {"t1": [[[1]], [[2]]], "t3": [[[1]]]})
    tasks, problems = read_challenges(tmp_path / "x_challenges.json")
    text = "\n".join(map(str, problems))
    assert len(tasks) == 0
    assert "task t1: the solutions give 2 outputs for 1 test inputs" in text
    assert "task t2: has no entry in" in text
    assert "task t3: has solutions but is not in the challenges" in text


def test_lenient_read_keeps_good_tasks_and_names_every_bad_one(tmp_path):
    bad = {
        "ragged": {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]]}]},
        "colour": {"train": [{"input": [[1]], "output": [[10]]}], "test": [{"input": [[1]]}]},
        "huge": {"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[0] * 31] * 31}]},
        "empty": {"train": [], "test": [{"input": [[1]]}]},
        "notest": {"train": [{"input": [[1]], "output": [[1]]}]},
        "noout": {"train": [{"input": [[1]]}], "test": [{"input": [[1]]}]},
    }
    path = write(tmp_path / "c.json", {"good": GOOD, **bad})
    tasks, problems = read_challenges(path)
    assert tasks.ids() == ["good"]
    assert sorted(p.task_id for p in problems) == sorted(bad)
    by_id = {p.task_id: str(p) for p in problems}
    assert "train pair 0 input: ragged grid" in by_id["ragged"]
    assert "train pair 0 output: colour 10" in by_id["colour"]
    assert "test pair 0 input: grid is 31x31" in by_id["huge"]
    assert "'train' list is empty" in by_id["empty"]
    assert "has no 'test' list" in by_id["notest"]
    assert "has no 'output' grid" in by_id["noout"]
    assert all(str(path) in s and "\n" not in s for s in by_id.values())
    with pytest.raises(DataError, match="and 5 more problems"):
        load_tasks(str(path))


@pytest.mark.parametrize(
    "content, message",
    [("{not json", "invalid JSON at line 1"), ("[1, 2]", "expected an object mapping task ids")],
)
def test_whole_file_problems_are_one_line(tmp_path, content, message):
    path = tmp_path / "c.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_tasks(str(path))


def test_missing_file_and_unknown_source(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_tasks(str(tmp_path / "missing.json"))
    with pytest.raises(DataError, match="neither a file, a directory nor a bundled set"):
        load_tasks("arc9/nothing")


def test_directory_of_task_files(tmp_path):
    write(tmp_path / "aaa.json", GOOD)
    (tmp_path / "bbb.json").write_text("{oops")
    tasks, problems = read_directory(tmp_path)
    assert tasks.ids() == ["aaa"]
    assert len(problems) == 1 and problems[0].task_id == "bbb" and "invalid JSON" in str(problems[0])
    with pytest.raises(DataError, match="no .json task files"):
        read_directory(tmp_path / "nowhere")


def test_export_round_trips(tmp_path):
    tasks = read_bundled("arc1/evaluation")[0].filter(lambda t: t.max_side() <= 5)
    files = export_challenges(tasks, tmp_path, "small")
    assert [f.name for f in files] == ["small_challenges.json", "small_solutions.json"]
    again = load_tasks(str(files[0]))
    assert again.ids() == tasks.ids()
    for a, b in zip(again, tasks):
        assert a.content_hash() == b.content_hash()


@pytest.mark.parametrize("cell", [10**30, 2**63, -(2**63) - 1])
def test_huge_integers_are_a_problem_of_their_task_only(tmp_path, cell):
    bad = {"train": [{"input": [[1]], "output": [[1, cell]]}], "test": [{"input": [[1]]}]}
    path = write(tmp_path / "c.json", {"good": GOOD, "big": bad})
    tasks, problems = read_challenges(path)
    assert tasks.ids() == ["good"] and len(problems) == 1
    assert f"{path}: task big: train pair 0 output: cell (0,1) is a " in str(problems[0])
    assert "colours are integers 0..9" in str(problems[0])


def test_huge_integers_in_solutions_are_a_problem_of_their_task(tmp_path):
    write(tmp_path / "x_challenges.json", {"t1": GOOD, "t2": GOOD})
    write(tmp_path / "x_solutions.json", {"t1": [[[10**30]]], "t2": [[[4, 3]]]})
    tasks, problems = read_challenges(tmp_path / "x_challenges.json")
    assert tasks.ids() == ["t2"]
    assert len(problems) == 1 and "task t1: solution 0: cell (0,0) is a 100-bit integer" in str(problems[0])


@pytest.mark.parametrize(
    "content, message",
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"t": [' + "7" * 5000 + "]}", "invalid JSON: Exceeds the limit"),
        ("\xff\xfe{}", r"not UTF-8 text \(byte 0 is 0xff\); save it as UTF-8 JSON"),
    ],
)
def test_unreadable_json_is_one_data_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "c.json"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(DataError, match=message) as e:
        load_tasks(str(path))
    assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)


def test_a_byte_order_mark_is_allowed(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("\ufeff" + json.dumps({"t1": GOOD}), encoding="utf-8")
    assert load_tasks(str(path)).ids() == ["t1"]


def test_a_nested_directory_reads_every_task_at_any_depth(tmp_path):
    source = list(read_bundled("arc1/training")[0])[:3]
    corpus = concept_corpus(tmp_path / "corpus", source)
    nested_write(corpus / "Deeper" / "still" / "zzz.json", GOOD)
    tasks = load_tasks(str(corpus))
    assert sorted(tasks.ids()) == sorted([t.id for t in source] + ["zzz"])
    assert all(t.has_solutions for t in tasks if t.id != "zzz")


def test_two_files_of_one_task_id_are_refused_naming_both(tmp_path):
    nested_write(tmp_path / "A" / "same.json", GOOD)
    nested_write(tmp_path / "B" / "same.json", GOOD)
    with pytest.raises(DataError) as caught:
        load_tasks(str(tmp_path))
    line = str(caught.value)
    assert "\n" not in line
    assert str(tmp_path / "A" / "same.json") in line and str(tmp_path / "B" / "same.json") in line
    assert "rename one" in line


# --- one walker for every tree of task files (loaders.task_files): loops, depth, duplicates and
# unreadable folders, alike for data check, export, a run's train_sets and --concept ------------


def corpus_with(root, *files):
    """A ConceptARC clone at root holding GOOD under each of files (paths inside corpus/)."""
    for name in files:
        nested_write(root / "corpus" / name, GOOD)
    return root


def test_a_link_back_up_the_tree_reads_each_task_once(tmp_path):
    from arcsolver.reference.names import read_concept

    clone = corpus_with(tmp_path / "clone", "A/a1.json", "A/a2.json", "B/b1.json")
    (clone / "corpus" / "L").symlink_to(".")  # corpus/L -> corpus: a loop
    (clone / "corpus" / "B" / "up").symlink_to("../..")  # corpus/B/up -> clone: a loop a level higher
    assert [t.id for t in read_concept(clone)] == ["a1", "a2", "b1"]
    tasks, problems = read_directory(clone / "corpus")
    assert tasks.ids() == ["a1", "a2", "b1"] and problems == []


def test_a_task_id_in_two_concepts_is_refused_naming_both(tmp_path):
    from arcsolver.reference.names import read_concept

    clone = corpus_with(tmp_path / "clone", "A/same.json", "B/same.json", "B/other.json")
    with pytest.raises(DataError) as caught:
        read_concept(clone)
    line = str(caught.value)
    assert str(clone / "corpus" / "A" / "same.json") in line and str(clone / "corpus" / "B" / "same.json") in line


def test_a_task_1400_folders_deep_is_read(tmp_path):
    from typer.testing import CliRunner

    from arcsolver.cli import app
    from arcsolver.reference.names import read_concept

    deep = tmp_path / "clone" / "corpus" / "C"
    chain = []
    for _ in range(1400):  # mkdir one at a time: os.makedirs itself recurses
        deep = deep / "d"
        chain.append(deep)
    (tmp_path / "clone" / "corpus" / "C").mkdir(parents=True)
    for folder in chain:
        folder.mkdir()
    write(deep / "deep.json", GOOD)
    try:
        assert [t.id for t in read_concept(tmp_path / "clone")] == ["deep"]
        result = CliRunner().invoke(app, ["data", "check", str(tmp_path / "clone")])
        assert result.exit_code == 0 and "1 valid tasks" in result.output, result.output
    finally:  # shutil.rmtree recurses too: undo the chain from its end
        (deep / "deep.json").unlink()
        for folder in reversed(chain):
            folder.rmdir()


@pytest.fixture
def unreadable(monkeypatch):
    """make(folder): folder cannot be listed, by its mode, or as root (whom modes do not stop) by
    os.scandir refusing it as the kernel would."""
    import errno
    import os

    made = []

    def make(folder):
        if os.geteuid() != 0:
            folder.chmod(0)
            made.append(folder)
            return
        real = os.scandir

        def scandir(path="."):
            if os.fspath(path) == os.fspath(folder):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
            return real(path)

        monkeypatch.setattr(os, "scandir", scandir)

    yield make
    for folder in made:
        folder.chmod(0o755)


def test_an_unreadable_folder_is_named_by_every_reader_of_a_tree(tmp_path, unreadable):
    from helpers import error_line, tiny_config
    from typer.testing import CliRunner

    from arcsolver.cli import app
    from arcsolver.reference.names import read_concept
    from arcsolver.train.tasks import select_tasks

    clone = corpus_with(tmp_path / "clone", "A/a1.json", "A/a2.json", "B/b1.json")
    corpus, hidden = clone / "corpus", clone / "corpus" / "B"
    unreadable(hidden)
    result = CliRunner().invoke(app, ["data", "check", str(corpus)])
    assert result.exit_code == 1, result.output
    assert f"problem: {hidden}: cannot read this folder" in result.output
    assert "2 valid tasks" in result.output and "1 problems" in result.output
    result = CliRunner().invoke(app, ["data", "export", str(corpus), "--out", str(tmp_path / "export")])
    error_line(result.output, hidden, "cannot read this folder", "make it readable")
    assert not (tmp_path / "export").exists()
    with pytest.raises(DataError, match="cannot read this folder") as caught:
        select_tasks(tiny_config(f"data.train_sets=['{corpus}']", "data.heldout_sets=[]"))
    assert str(caught.value).startswith(f"{hidden}: ")
    with pytest.raises(DataError, match="cannot read this folder") as caught:
        read_concept(clone)
    assert str(caught.value).startswith(f"{hidden}: ")
