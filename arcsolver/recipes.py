"""Recipes: TOML files of settings, validated by pydantic models, overridable with key=value.

A recipe is found by path, or by name among the recipes shipped with the package
(`arcsolver/recipes/<stage>/<name>.toml`, which `pretrain/` and `submit/` at the top of the
repository point to).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from arcsolver.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

RECIPES_DIR = Path(__file__).parent / "recipes"
C = TypeVar("C", bound=BaseModel)


def recipe_path(stage: str, name_or_path: str) -> Path:
    """Resolve a recipe given as a path or as a name shipped with the package."""
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.exists():
        return path
    shipped = RECIPES_DIR / stage / f"{path.stem if path.suffix == '.toml' else name_or_path}.toml"
    if shipped.exists():
        return shipped
    names = sorted(p.stem for p in (RECIPES_DIR / stage).glob("*.toml"))
    raise ConfigError(f"{name_or_path}: no such recipe file; shipped {stage} recipes: {', '.join(names)}")


def _parse_value(text: str):
    """A --set value in TOML syntax (numbers, booleans, lists, quoted strings), else a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(settings: dict, overrides: list[str]) -> dict:
    """Apply `section.key=value` overrides to a nested settings dict (in place; returned)."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set train.lr=3e-4")
        *parents, leaf = key.strip().split(".")
        node = settings
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part} is not a section")
        node[leaf] = _parse_value(value.strip())
    return settings


def load_recipe(model: type[C], stage: str, name_or_path: str, overrides: list[str] = ()) -> C:
    """Read a recipe, apply overrides and validate it; errors name the file and the field."""
    path = recipe_path(stage, name_or_path)
    try:
        settings = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    apply_overrides(settings, list(overrides))
    return validate(model, settings, str(path))


def validate(model: type[C], settings: dict, source: str) -> C:
    try:
        return model.model_validate(settings)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise ConfigError(f"{source}: {where}: {first['msg']}{more}") from None
