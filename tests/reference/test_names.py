"""The reference's identifiers.json rebuilt without its code equals what its dataset builder
writes from the same files (the builder is run from the reference clone, on a few tasks)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from helpers.reference import reference_path

from arcsolver.data.loaders import export_challenges, load_tasks
from arcsolver.data.task import Pair, Task, TaskSet, as_grid
from arcsolver.errors import DataError
from arcsolver.reference.names import DATASETS, dataset_subsets, read_concept, reference_identifiers


def reference_builder():
    path = reference_path()
    if path is None or not (path / "dataset" / "build_arc_dataset.py").is_file():
        pytest.skip("no clone of the TRM reference code (set TRM_REFERENCE to one)")
    pytest.importorskip("argdantic", reason="the reference's dataset builder needs argdantic")
    sys.path.insert(0, str(path))
    try:
        from dataset import build_arc_dataset
    finally:
        sys.path.remove(str(path))
    return build_arc_dataset


def subset_files(tmp_path):
    """Three subsets as the reference's kaggle/combined holds them: a few ARC-AGI-1 training and
    evaluation tasks, and a 'concept' subset with an all-black task (every version a duplicate:
    the builder gives up on it), a task that is also in training (its names are kept once), and
    a task without solutions file entries (the concept file has none: dummy outputs)."""
    training = list(load_tasks("kaggle2024/training"))[:4]
    evaluation = list(load_tasks("kaggle2024/evaluation"))[:3]
    black = as_grid([[0, 0], [0, 0]])
    concept = [Task("Black1", (Pair(black, black),), (Pair(black, black),)), training[1], evaluation[0]]
    export_challenges(TaskSet(training, "training"), tmp_path, "arc-agi_training")
    export_challenges(TaskSet(evaluation, "evaluation"), tmp_path, "arc-agi_evaluation")
    concept_tests = [Task(t.id, t.train, tuple(Pair(p.input) for p in t.test)) for t in concept]
    export_challenges(TaskSet(concept_tests, "concept"), tmp_path, "arc-agi_concept")
    return training, evaluation, concept_tests


@pytest.mark.parametrize("n_augmentations", [0, 6])
def test_rebuilt_identifiers_equal_the_reference_builders(tmp_path, n_augmentations):
    builder = reference_builder()
    subsets = subset_files(tmp_path)
    config = builder.DataProcessConfig(
        input_file_prefix=str(tmp_path / "arc-agi"),
        output_dir=str(tmp_path / "built"),
        subsets=["training", "evaluation", "concept"],
        test_set_name="evaluation",
        num_aug=n_augmentations,
    )
    state = np.random.get_state()
    try:
        builder.convert_dataset(config)
    finally:
        np.random.set_state(state)
    theirs = json.loads((tmp_path / "built" / "identifiers.json").read_text())
    ours = reference_identifiers(subsets, n_augmentations=n_augmentations)
    assert ours == theirs
    if n_augmentations:
        assert "Black1" in ours and not any(n.startswith("Black1|||") for n in ours)  # nothing new to draw
        # blank, the black task alone, 7 tasks of 7 versions, and the 2 tasks met again in the concept
        # subset: their own names once, their fresh draws' names anew
        assert len(ours) == 1 + 1 + 7 * (1 + n_augmentations) + 2 * n_augmentations


def test_a_different_seed_or_order_gives_other_rows(tmp_path):
    training, evaluation, concept = subset_files(tmp_path)
    base = reference_identifiers([training, evaluation, concept], n_augmentations=2)
    assert reference_identifiers([training, evaluation, concept], seed=1, n_augmentations=2) != base
    assert reference_identifiers([evaluation, training, concept], n_augmentations=2) != base


def test_concept_from_a_clone_or_a_challenges_file(tmp_path):
    clone = tmp_path / "ConceptARC"
    for concept, task in [("Copy", "Copy10"), ("Copy", "Copy2"), ("AboveBelow", "AboveBelow1")]:
        (clone / "corpus" / concept).mkdir(parents=True, exist_ok=True)
        grid = [[1, 0], [0, 2]]
        (clone / "corpus" / concept / f"{task}.json").write_text(
            json.dumps({"train": [{"input": grid, "output": grid}], "test": [{"input": grid, "output": grid}]})
        )
    assert [t.id for t in read_concept(clone)] == ["AboveBelow1", "Copy10", "Copy2"]
    assert all(p.output is not None for t in read_concept(clone) for p in t.test)
    with pytest.raises(DataError, match="ConceptARC"):
        read_concept(tmp_path)
    with pytest.raises(DataError, match="--concept"):
        dataset_subsets("arc1concept", None)
    with pytest.raises(DataError, match="arc1concept, arc2concept"):
        dataset_subsets("arc3", clone)
    subsets = dataset_subsets("arc1concept", clone)
    assert [len(s) for s in subsets] == [400, 400, 3] and set(DATASETS) == {"arc1concept", "arc2concept"}
