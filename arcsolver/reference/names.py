"""The row names of the TRM reference's ARC data sets (its identifiers.json): read and checked,
each in arcsolver's names, and rebuilt from the same source tasks without its code.

The reference's dataset builder gives every task version one puzzle-embedding row. Its draws
are what fix which versions exist and in which order, so they are followed exactly:

- one numpy `RandomState` seeded with 42 serves every draw, in this order;
- the subsets are read in turn (ARC-AGI-1: training, evaluation, concept; ARC-AGI-2: training2,
  evaluation2, concept), each as its challenges file lists its tasks, and shuffled;
- each task, in the shuffled order, keeps itself and then draws up to 5 × 1000 candidate
  versions (a dihedral transform 0..7, then a permutation of colours 1..9 with black fixed),
  keeping a candidate whose grids (every pair, the test outputs included) differ from those of
  every version kept so far, until it has 1000 more;
- the rows are the names in that order, each name once, after row 0, `<blank>`.

A version is named `<task id>|||t<d>|||<ten digits>` (digit i is the image of colour i), the
task itself `<task id>`. A test pair without a known output counts as the 1×1 black grid, as
the builder fills it where a subset has no solutions file.

A name read from identifiers.json (read_identifiers) is arcsolver's name of the same task version
(version_name): both codes number the 8 transforms alike and apply the colours first.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import StringConstraints, TypeAdapter, ValidationError

from arcsolver.data.augment import Augmentation, augmented_id
from arcsolver.data.task import Grid, Task
from arcsolver.errors import ConfigError, DataError
from arcsolver.reader import read_json

SEED = 42
N_AUGMENTATIONS = 1000
DRAWS_PER_VERSION = 5  # the builder gives up on a task after this many draws per version it wants
BLANK = "<blank>"
SEPARATOR = "|||"
_UNKNOWN_OUTPUT = np.zeros((1, 1), dtype=np.uint8)

# The data sets of the reference's README: bundled ARC sets (the Kaggle files, as the
# reference's kaggle/combined holds them), then ConceptARC, which the user supplies.
CONCEPT = "concept"
DATASETS: dict[str, tuple[str, ...]] = {
    "arc1concept": ("kaggle2024/training", "kaggle2024/evaluation", CONCEPT),
    "arc2concept": ("kaggle2025/training", "kaggle2025/evaluation", CONCEPT),
}


def _grid_digest(grid: Grid) -> bytes:
    return hashlib.blake2b(bytes(grid.shape) + np.ascontiguousarray(grid, dtype=np.uint8).tobytes()).digest()


def version_key(pairs: Iterable[tuple[Grid, Grid]]) -> bytes:
    """Equal for two versions exactly when they hold the same pairs (in any order): the builder's
    test of a duplicate."""
    digests = sorted(_grid_digest(a) + _grid_digest(b) for a, b in pairs)
    return hashlib.blake2b(b"".join(digests)).digest()


def _pairs(task: Task) -> list[tuple[Grid, Grid]]:
    every = [*task.train, *task.test]
    return [(p.input, _UNKNOWN_OUTPUT if p.output is None else p.output) for p in every]


def task_versions(task: Task, rng: np.random.RandomState, n_augmentations: int) -> list[str]:
    """The names of a task's versions, the task itself first, drawing from rng as the builder does."""
    pairs = _pairs(task)
    names, seen = [task.id], {version_key(pairs)}
    for _ in range(DRAWS_PER_VERSION * n_augmentations):
        if len(names) > n_augmentations:
            break
        dihedral = int(rng.randint(0, 8))
        colours = (0, *(int(c) for c in rng.permutation(np.arange(1, 10))))
        augmentation = Augmentation(dihedral, colours)
        key = version_key((augmentation.apply_grid(a), augmentation.apply_grid(b)) for a, b in pairs)
        if key not in seen:
            seen.add(key)
            names.append(f"{task.id}{SEPARATOR}t{dihedral}{SEPARATOR}{''.join(map(str, colours))}")
    return names


def reference_identifiers(
    subsets: Sequence[Sequence[Task]], seed: int = SEED, n_augmentations: int = N_AUGMENTATIONS
) -> list[str]:
    """identifiers.json of the reference's builder over these subsets (each in its file's order)."""
    rng = np.random.RandomState(seed)
    rows = {BLANK: None}
    for subset in subsets:
        order = list(range(len(subset)))
        rng.shuffle(order)  # a list's shuffle draws depend on its length alone: the builder's draws
        for task in (subset[i] for i in order):
            rows.update(dict.fromkeys(n for n in task_versions(task, rng, n_augmentations) if n not in rows))
    return list(rows)


def read_concept(path: Path) -> list[Task]:
    """ConceptARC's tasks: a clone of its repository (corpus/<concept>/<task>.json, task id the
    file's name, tasks in the order of their paths, read as one tree: see loaders.task_files) or
    a challenges file of them (with solutions)."""
    from arcsolver.data.loaders import first_of, load_tasks, read_directory

    path = Path(path)
    if path.is_file():
        return list(load_tasks(str(path)))
    corpus = path / "corpus"
    if not corpus.is_dir():
        raise DataError(
            f"{path}: no corpus/<concept>/ directories; give a clone of ConceptARC "
            "(git clone https://github.com/victorvikram/ConceptARC) or a challenges file of its tasks"
        )
    tasks, problems = read_directory(corpus)  # one tree: a task id in two concepts is refused
    if problems:
        raise DataError(first_of(problems))
    return list(tasks)


def dataset_subsets(name: str, concept: Path | None) -> list[list[Task]]:
    """The source tasks of one of the reference's ARC data sets, subset by subset."""
    from arcsolver.data.loaders import load_tasks

    if name not in DATASETS:
        raise DataError(f"unknown reference data set {name!r}; choose one of: {', '.join(DATASETS)}")
    if concept is None:
        raise DataError(
            f"{name}: its rows include ConceptARC's tasks; give --concept PATH, a clone of "
            "https://github.com/victorvikram/ConceptARC"
        )
    return [read_concept(concept) if s == CONCEPT else list(load_tasks(s)) for s in DATASETS[name]]


# A row's name: a task id of the reference's builder with its augmentation; never a character
# that would end a line of puzzles.txt, drive a terminal or name another directory.
RowName = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f-\x9f/\\\u2028\u2029]+$")
]
_ROW_NAMES = TypeAdapter(list[RowName])


def read_identifiers(path: Path, rows: int) -> list[str]:
    """The task-version name of each puzzle-table row (row 0 blank), from the identifiers.json the
    reference's dataset builder wrote beside the data set the checkpoint was trained on."""
    if not os.path.lexists(path):
        raise ConfigError(f"{path}: no such file (give the identifiers.json of the reference's data set)")
    return check_identifiers(read_json(path, ConfigError), rows, str(path))


def check_identifiers(names: object, rows: int, source: str) -> list[str]:
    """names, checked to be a list of rows names for the checkpoint's puzzle table: a task
    version's name each (ConfigError naming source and the first that is not), row 0 blank."""
    path = source
    try:
        names = _ROW_NAMES.validate_python(names, strict=True)
    except ValidationError as e:
        first = e.errors()[0]
        if not first["loc"]:
            raise ConfigError(f"{path}: expected a JSON list of names, one per puzzle-table row") from None
        raise ConfigError(
            f"{path}: row {first['loc'][0]} ({first['input']!r:.80}) is not a task version's name (no control "
            "characters or path separators, 1 to 256 characters); give the identifiers.json of the reference's data set"
        ) from None
    assert isinstance(names, list)
    if len(names) != rows:
        raise ConfigError(
            f"{path}: {len(names)} names for the checkpoint's puzzle table of {rows} rows; give the identifiers.json "
            "of the data set this checkpoint was trained on"
        )
    if names and names[0] != BLANK:
        raise ConfigError(f"{path}: row 0 is {names[0]!r}, expected {BLANK!r} (the reference's blank row)")
    return names


def version_name(reference_name: str) -> str:
    """arcsolver's name of a task version (augmented_id) from the reference's: "<task id>" for the
    task as given, "<task id>|||t<d>|||<ten digits>" for dihedral transform d after the colour
    mapping whose digit i is the image of colour i. Both codes number the 8 transforms alike and
    apply the colours first, so the transform and digits carry over unchanged."""
    parts = reference_name.split(SEPARATOR)
    if len(parts) == 1:
        return augmented_id(reference_name, Augmentation.identity())
    if len(parts) != 3:
        raise ValueError(f"{len(parts) - 1} separators {SEPARATOR!r}, not 2")
    task_id, transform, colours = parts
    return augmented_id(task_id, Augmentation.parse(f"{transform}.c{colours}"))


def version_names(names: list[str], path: Path) -> list[str]:
    """version_name of every row's name but the blank row's; ConfigError naming the first that is
    not an ARC task version."""
    out = []
    for row, name in enumerate(names[1:], start=1):
        try:
            out.append(version_name(name))
        except ValueError as e:
            raise ConfigError(
                f"{path}: row {row} ({name!r}) is not an ARC task version of the reference's builder ({e})"
            ) from None
    return out
