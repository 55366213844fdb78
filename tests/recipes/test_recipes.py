from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from arcsolver.config import PretrainConfig, SolveConfig
from arcsolver.errors import ConfigError
from arcsolver.recipes import (
    RECIPES_DIR,
    load_recipe,
    read_recipe,
    setting_fields,
    setting_rows,
    stage_model,
    type_name,
    validate,
)


def load(*overrides, model=PretrainConfig, stage="pretrain", recipe="cpu-small"):
    return load_recipe(model, stage, recipe, list(overrides))


@pytest.mark.parametrize(
    "item, message",
    [
        (
            "run.step=30",
            r"^--set 'run.step=30': run.step is not a setting \(did you mean run.steps\?\); "
            r"`arcsolver settings pretrain\|submit` lists them$",
        ),
        ("optm.lr=3e-4", r"^--set 'optm.lr=3e-4': optm.lr is not a setting \(did you mean optim.lr\?\)"),
        ("run=3", r"^--set 'run=3': run is a section; set one of its keys, e.g. run\."),
        ("zzzz=1", r"^--set 'zzzz=1': zzzz is not a setting; "),
        ("optim.lr", r"^--set 'optim.lr': expected key=value"),
    ],
)
def test_a_bad_key_names_its_set_and_the_closest_valid_key(item, message):
    with pytest.raises(ConfigError, match=message):
        load(item)


@pytest.mark.parametrize(
    "item, message",
    [
        ("run.steps=abc", r"^--set 'run.steps=abc': run.steps: Input should be a valid integer.* \(got 'abc'\)$"),
        ("optim.lr=-1", r"^--set 'optim.lr=-1': optim.lr: Input should be greater than 0 \(got -1\)$"),
        ("data.train_sets=[1]", r"^--set 'data.train_sets=\[1\]': data.train_sets.0: Input should be a valid string"),
    ],
)
def test_a_bad_value_names_its_set_not_the_recipe(item, message):
    with pytest.raises(ConfigError, match=message):
        load("run.seed=1", item)


def test_a_check_across_settings_names_the_recipe_and_the_sets_involved():
    with pytest.raises(ConfigError, match=r"cpu-small.toml with --set model.hidden_size=30: model: .*divisible"):
        load("run.seed=1", "model.hidden_size=30")


def test_a_typo_in_a_recipe_file_names_the_file_and_the_closest_key(tmp_path):
    recipe = tmp_path / "mine.toml"
    recipe.write_text("[adapt]\nstep = 5\n")
    with pytest.raises(
        ConfigError, match=r"mine.toml: adapt.step: Extra inputs are not permitted \(did you mean adapt.steps\?\)"
    ):
        load(model=SolveConfig, stage="submit", recipe=str(recipe))


def test_the_later_of_two_sets_of_one_key_wins_and_a_valid_set_applies():
    assert load("run.steps=5", "run.steps=7").run.steps == 7
    assert load("optim.lr=3e-4").optim.lr == 3e-4


def test_every_leaf_setting_is_listed_with_its_value_and_type():
    fields = setting_fields(SolveConfig)
    assert {"adapt.steps", "infer.ranking", "optim.lr", "run.workers", "data.n_augmentations"} <= set(fields)
    assert not any(key in ("adapt", "optim", "run") for key in fields)  # sections are not settings
    rows = {row[0]: row for row in setting_rows(load(model=SolveConfig, stage="submit", recipe="kaggle"))}
    assert len(rows) == len(fields)
    # The recipe's value, not the default 60.
    assert rows["run.safety_margin_s"][1:3] == ("600.0", "float (>= 0, <= 100000000)")
    assert rows["infer.ranking"][1:3] == ('"votes"', '"votes" | "likelihood"')
    assert rows["run.time_budget_s"][1:3] == ("(none)", "float | None (> 0, <= 100000000)")


def test_type_names_read_as_written():
    assert type_name(int | None) == "int | None"
    assert type_name(list[str]) == "list[str]"
    assert type_name(Annotated[int, Field(ge=1)] | Literal["auto"]) == 'int (>= 1) | "auto"'


def test_descriptions_are_the_meaning_where_a_field_has_one():
    class Inner(BaseModel):
        model_config = ConfigDict(extra="forbid")
        steps: int = Field(3, ge=1, description="optimiser steps")
        plain: bool = False

    class Outer(BaseModel):
        run: Inner = Inner()

    assert setting_rows(Outer()) == [
        ("run.steps", "3", "int (>= 1)", "optimiser steps"),
        ("run.plain", "false", "bool", ""),
    ]
    with pytest.raises(
        ConfigError, match=r"^src: run.stepz: Extra inputs are not permitted \(did you mean run.steps\?\)$"
    ):
        validate(Outer, {"run": {"stepz": 1}}, "src")


def test_stages():
    assert stage_model("pretrain") is PretrainConfig and stage_model("submit") is SolveConfig
    with pytest.raises(ConfigError, match="no such recipe stage; choose pretrain or submit"):
        stage_model("train")


def test_every_shipped_setting_says_what_it_means():
    for model in (PretrainConfig, SolveConfig):
        rows = setting_rows(model())
        assert rows and [row[0] for row in rows if not row[3]] == []


# Shipped recipes state only what they change, each key with a comment saying why.

SHIPPED = sorted(RECIPES_DIR.glob("*/*.toml"))


def restated_defaults(stage: str, settings: dict) -> list[str]:
    """The keys of a recipe whose value equals the default of the section they are in (the
    submit recipe's optim section has defaults of its own)."""
    model = stage_model(stage)
    config, defaults = validate(model, settings, "recipe"), model()
    return [
        f"{section}.{key}"
        for section, keys in settings.items()
        for key in keys
        if getattr(getattr(config, section), key) == getattr(getattr(defaults, section), key)
    ]


def uncommented_keys(text: str) -> list[str]:
    """The keys with no comment: none on their line, and none heading the block of lines they are in."""
    missing, headed, section = [], False, ""
    for line in (line.strip() for line in text.splitlines()):
        if line.startswith("#"):
            headed = True
        elif line.startswith("["):
            section, headed = line.strip("[]"), False
        elif "=" in line:
            if not headed and "#" not in line:
                missing.append(f"{section}.{line.partition('=')[0].strip()}")
        else:  # a blank line ends the block a comment heads
            headed = False
    return missing


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_shipped_recipe_sets_only_keys_that_change_a_default_each_with_a_comment(path):
    stage = path.parent.name
    assert restated_defaults(stage, read_recipe(path)) == []
    assert uncommented_keys(path.read_text()) == []
    load_recipe(stage_model(stage), stage, str(path))  # every key is read: an unknown one would not validate


def test_a_key_restating_its_sections_default_is_caught():
    settings = {"optim": {"global_batch_size": 768, "warmup_steps": 200, "lr": 3e-4}, "run": {"seed": 0}}
    assert restated_defaults("pretrain", settings) == ["optim.global_batch_size", "run.seed"]
    assert restated_defaults("submit", settings) == ["optim.warmup_steps", "run.seed"]  # adaptation's own defaults


def test_a_key_without_a_comment_is_caught():
    text = "# header\n\n[run]\n# why these two\nsteps = 5\nseed = 1\n\nthreads = 2\nlog_every = 3  # why\n"
    assert uncommented_keys(text) == ["run.threads"]


@pytest.mark.parametrize("text", ["[optim]\nlr_decay = 0.1\n", "[train]\nlr = 3e-4\n", "[model]\nhidden = 64\n"])
def test_a_key_nothing_reads_fails_to_load(tmp_path, text):
    recipe = tmp_path / "mine.toml"
    recipe.write_text(text)
    for stage in ("pretrain", "submit"):
        with pytest.raises(ConfigError, match="Extra inputs are not permitted"):
            load_recipe(stage_model(stage), stage, str(recipe))


def test_every_section_refuses_unknown_keys():
    for model in (PretrainConfig, SolveConfig):
        assert model.model_config["extra"] == "forbid"
        for name, info in model.model_fields.items():
            assert info.annotation.model_config["extra"] == "forbid", f"{model.__name__}.{name}"


def test_every_command_a_shipped_recipe_names_is_one_the_cli_takes():
    """A recipe's comments tell the user what to run (the kaggle recipe travels in the bundle):
    each `arcsolver ...` they name must parse, its command and every option known."""
    import re
    import shlex

    from typer.testing import CliRunner

    from arcsolver.cli import app

    named = [cmd for path in SHIPPED for cmd in re.findall(r"`arcsolver ([^`]+)`", path.read_text())]
    assert named  # the kaggle recipe names how to estimate its hours
    for cmd in named:
        result = CliRunner().invoke(app, [*shlex.split(cmd), "--help"])
        assert result.exit_code == 0, f"`arcsolver {cmd}`: {result.output}"
