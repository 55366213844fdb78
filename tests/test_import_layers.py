"""The package's layers point one way: each module imports only from the layers below its own
(and from its own package), so training and solving share what they need without importing each
other."""

from __future__ import annotations

import ast
from pathlib import Path

import arcsolver

# Lowest first. Packages on one level are siblings: neither may import the other.
LAYERS = [
    {"errors"},
    {"environment", "locks"},
    {"reader"},
    {"atomic", "console", "inputs", "trackers"},
    {"data"},
    {"model"},
    {"config"},
    {"recipes"},
    {"engine", "evaluation"},
    {"train", "solve", "reference"},
    {"report", "kaggle", "hub"},
    {"cli"},
    {"__main__"},
]
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}
ROOT = Path(arcsolver.__file__).parent


def unit_of(path: Path) -> str:
    """The layer unit of a module file: its package under arcsolver/, or its own name."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return parts[0]


def imported_units(path: Path) -> set[str]:
    units = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "arcsolver" and len(parts) > 1 and parts[1] in LEVEL:
                units.add(parts[1])
    return units


def test_every_module_has_a_layer():
    files = [p for p in ROOT.rglob("*.py") if p.name != "__init__.py" or p.parent != ROOT]
    assert {unit_of(p) for p in files} <= set(LEVEL)


def test_imports_point_down():
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.parent == ROOT and path.name == "__init__.py":
            continue
        unit = unit_of(path)
        for other in imported_units(path) - {unit}:
            if LEVEL[other] >= LEVEL[unit]:
                wrong.append(f"{path.relative_to(ROOT.parent)} imports arcsolver.{other}")
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_an_upward_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from arcsolver.solve.adapt import adapt\nimport arcsolver.train.loop\n")
    assert imported_units(module) == {"solve", "train"}
