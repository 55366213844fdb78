"""Recipes: TOML files of settings, validated by pydantic models, overridable with key=value.

A recipe is found by path, or by name among the recipes shipped with the package, beside this
file (`arcsolver/recipes/<stage>/<name>.toml`, which `pretrain/` and `submit/` at the top of the
repository point to).
"""

from __future__ import annotations

import difflib
import json
import reprlib
import sys
import types
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from arcsolver.config import PretrainConfig, SolveConfig
from arcsolver.errors import ConfigError
from arcsolver.reader import read_bytes, read_json

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

RECIPES_DIR = Path(__file__).parent
C = TypeVar("C", bound=BaseModel)

# What a resumed run may change: how long it runs, how often it logs, checkpoints and evaluates,
# and how it uses the hardware. Every other setting shapes the data, the model or the
# optimisation, and must be what the checkpoint was trained with.
RESUME_MAY_CHANGE = {
    "run.steps",
    "run.epochs",
    "run.time_limit_s",
    "run.flops",
    "run.target_heldout_loss",
    "run.target_every",
    "run.target_queries",
    "run.log_every",
    "run.trackers",
    "run.checkpoint_every",
    "run.keep_checkpoints",
    "run.threads",
    "run.compile",
    "run.gpu_memory_gb",
    "optim.micro_batch_size",
}
RESUME_MAY_CHANGE_SECTIONS = ("eval.",)


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


def stage_model(stage: str) -> type[BaseModel]:
    """The settings model of a recipe stage: pretrain -> PretrainConfig, submit -> SolveConfig."""
    if stage == "pretrain":
        return PretrainConfig
    if stage == "submit":
        return SolveConfig
    raise ConfigError(f"{stage}: no such recipe stage; choose pretrain or submit")


def _section(annotation) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def setting_fields(model: type[BaseModel], prefix: str = "") -> dict[str, FieldInfo]:
    """Every setting of a settings model, as `section.key` -> its pydantic field, in model order."""
    fields = {}
    for name, info in model.model_fields.items():
        section = _section(info.annotation)
        if section is not None:
            fields.update(setting_fields(section, f"{prefix}{name}."))
        else:
            fields[f"{prefix}{name}"] = info
    return fields


def closest_setting(key: str, keys) -> str:
    """' (did you mean X?)' for the valid key most like key, or '' when none is near."""
    near = difflib.get_close_matches(key, list(keys), n=1, cutoff=0.6)
    if not near:  # a misspelt section with a right key: compare the key alone
        leaf = key.rpartition(".")[2]
        near = [k for k in keys if k.rpartition(".")[2] == leaf][:1]
    return f" (did you mean {near[0]}?)" if near else ""


def _not_a_setting(key: str, keys) -> str:
    inside = [k for k in keys if k.startswith(key + ".")]
    if inside:
        return f"{key} is a section; set one of its keys, e.g. {inside[0]}"
    return f"{key} is not a setting{closest_setting(key, keys)}"


def _split_override(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set optim.lr=3e-4")
    return key.strip(), value.strip()


def apply_overrides(settings: dict, overrides: list[str], model: type[BaseModel] | None = None) -> dict:
    """Apply `section.key=value` overrides to a nested settings dict (in place; returned).

    Given the settings model, a key it does not have is an error naming the --set and the
    closest valid key.
    """
    keys = setting_fields(model) if model is not None else None
    for item in overrides:
        key, value = _split_override(item)
        if keys is not None and key not in keys:
            raise ConfigError(
                f"--set {item!r}: {_not_a_setting(key, keys)}; `arcsolver settings pretrain|submit` lists them"
            )
        *parents, leaf = key.split(".")
        node = settings
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part} is not a section")
        try:
            node[leaf] = _parse_value(value)
        except (ValueError, RecursionError):  # an integer of thousands of digits, lists nested thousands deep
            raise ConfigError(
                f"--set {key}={reprlib.repr(value)}: not a value a setting can hold; "
                "give a number, a word or a short list"
            ) from None
    return settings


def read_recipe(path: Path) -> dict:
    """A recipe file's settings as written (section -> key -> value), not yet validated. A file
    that is not a regular UTF-8 file within the input size limit is one ConfigError naming it."""
    data = read_bytes(path, ConfigError)
    try:
        return tomllib.loads(data.decode("utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); save the recipe as UTF-8 TOML") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read; a recipe has sections of settings") from None


def load_recipe(model: type[C], stage: str, name_or_path: str, overrides: list[str] = ()) -> C:
    """Read a recipe, apply overrides and validate it; errors name the file (or the --set) and the field."""
    path = recipe_path(stage, name_or_path)
    settings = read_recipe(path)
    apply_overrides(settings, list(overrides), model)
    return validate(model, settings, str(path), list(overrides))


def _origin(where: str, overrides: list[str]) -> str | None:
    """The --set that gave the setting at `where` (or a part of it), if one did; the last one wins."""
    for item in reversed(overrides):
        key = item.partition("=")[0].strip()
        if where == key or where.startswith(key + "."):
            return item
    return None


def _within(where: str, overrides: list[str]) -> list[str]:
    """The --set items inside the section at `where` (every one for the top level)."""
    return [item for item in overrides if not where or item.partition("=")[0].strip().startswith(where + ".")]


def validate(model: type[C], settings: dict, source: str, overrides: list[str] = ()) -> C:
    """Validate settings against a model; the error names the --set a bad value came from, else
    source, with the field and, for an unknown key, the closest valid one."""
    try:
        return model.model_validate(settings)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        item = _origin(where, list(overrides))
        if item is not None:
            source = f"--set {item!r}"
        elif related := _within(where, list(overrides)):  # a check across settings, some of them set
            source = f"{source} with {' '.join(f'--set {r}' for r in related)}"
        hint = closest_setting(where, setting_fields(model)) if first["type"] == "extra_forbidden" else ""
        got = f" (got {reprlib.repr(first['input'])})" if item is not None else ""
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise ConfigError(f"{source}: {where or '(top level)'}: {_message(first)}{got}{hint}{more}") from None


_BOUND_WORDS = {"greater_than": "greater than", "greater_than_equal": "greater than or equal to"}
_BOUND_WORDS |= {"less_than": "less than", "less_than_equal": "less than or equal to"}


def _message(error) -> str:
    """pydantic's message, with a float bound in a reader's digits (3.40282e+38, not 39 of them)."""
    bound = next(iter((error.get("ctx") or {}).values()), None)
    if error["type"] in _BOUND_WORDS and isinstance(bound, float):
        return f"Input should be {_BOUND_WORDS[error['type']]} {bound:.6g}"
    return error["msg"]


def type_name(annotation) -> str:
    """A field's type as a reader writes it: int | None, "auto" | "cpu", list[str]."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return type_name(args[0]) + "".join(_bounds(a) for a in args[1:] if isinstance(a, FieldInfo))
    if origin is Literal:
        return " | ".join(_shown(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        return f"{getattr(origin, '__name__', origin)}[{', '.join(type_name(a) for a in args)}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))


def _bound(value) -> str:
    """A bound as a reader writes it: 3.40282e+38, not its 17 digits."""
    return f"{value:.6g}" if isinstance(value, float) and abs(value) >= 1e16 else str(value)


def _bounds(info: FieldInfo) -> str:
    """' >= 1, < 2' from a field's constraints."""
    parts = [f"{sign} {_bound(getattr(c, attr))}" for c in info.metadata for attr, sign in _BOUNDS if hasattr(c, attr)]
    return f" ({', '.join(parts)})" if parts else ""


def _shown(value) -> str:
    """A setting's value in --set syntax (TOML); (none) for None, which a recipe leaves out."""
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return f"[{', '.join(_shown(v) for v in value)}]"
    return str(value)


def setting_rows(config: BaseModel) -> list[tuple[str, str, str, str]]:
    """(section.key, value, type, meaning) for every setting of a validated config."""
    rows = []
    for key, info in setting_fields(type(config)).items():
        value = config
        for part in key.split("."):
            value = getattr(value, part)
        rows.append((key, _shown(value), type_name(info.annotation) + _bounds(info), info.description or ""))
    return rows


def setting_values(config: BaseModel) -> dict[str, Any]:
    """Every setting of a validated config as section.key -> its value as saved (JSON types)."""
    values: dict[str, Any] = {}
    dumped = config.model_dump(mode="json")
    for key in setting_fields(type(config)):
        value = dumped
        for part in key.split("."):
            value = value[part]
        values[key] = value
    return values


def resume_differences(now: BaseModel, saved: BaseModel) -> list[str]:
    """`key: <checkpoint's> -> <now>` for every setting that a resumed run may not change and did."""
    a, b = setting_values(saved), setting_values(now)
    fixed = [k for k in a if k not in RESUME_MAY_CHANGE and not k.startswith(RESUME_MAY_CHANGE_SECTIONS)]
    return [f"{k}: {json.dumps(a[k])} -> {json.dumps(b.get(k))}" for k in fixed if a[k] != b.get(k)]


def resumed_settings(path: Path, overrides: list[str]) -> PretrainConfig:
    """A run's own settings (its config.json) with --set overrides, validated; errors name the --set."""
    settings = read_json(path)
    if not isinstance(settings, dict):
        raise ConfigError(f"{path}: not an object of settings; resume with --recipe naming the run's recipe")
    apply_overrides(settings, list(overrides), PretrainConfig)
    return validate(PretrainConfig, settings, str(path), list(overrides))
