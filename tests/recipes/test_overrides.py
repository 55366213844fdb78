"""--set overrides (arcsolver/recipes/__init__.py): nested keys, values in TOML syntax converted to the
setting's type, and one-line errors for keys and values that are not settings."""

import re

import pytest

from arcsolver.config import PretrainConfig, SolveConfig
from arcsolver.errors import ConfigError
from arcsolver.recipes import apply_overrides, load_recipe


def pretrain(*overrides, recipe="cpu-small"):
    return load_recipe(PretrainConfig, "pretrain", recipe, list(overrides))


def test_nested_keys_land_in_their_sections_and_create_missing_ones():
    settings = {"optim": {"lr": 1e-3, "warmup_steps": 50}}
    got = apply_overrides(settings, ["optim.lr=3e-4", " run.seed = 4 ", "a.b.c=1"])
    assert got is settings
    assert settings == {"optim": {"lr": 3e-4, "warmup_steps": 50}, "run": {"seed": 4}, "a": {"b": {"c": 1}}}


@pytest.mark.parametrize(
    "text, value",
    [
        ("7", 7),
        ("1_000", 1000),
        ("3e-4", 3e-4),
        ("2.0", 2.0),
        ("true", True),
        ("false", False),
        ("[0, 5]", [0, 5]),
        ("['arc1/training', \"arc2/training\"]", ["arc1/training", "arc2/training"]),
        ("'cpu'", "cpu"),
        ('"a=b"', "a=b"),
        ("cpu", "cpu"),  # not TOML: the bare text
        ("x=y", "x=y"),  # only the first = splits key from value
        ("null", "null"),  # TOML has no null: a string, which an optional setting refuses
    ],
)
def test_a_value_is_read_as_toml_else_as_the_bare_text(text, value):
    got = apply_overrides({}, [f"run.x={text}"])["run"]["x"]
    assert got == value and type(got) is type(value)


def test_values_take_the_settings_types():
    cfg = pretrain(
        "run.seed=7",
        "optim.lr=1",
        "optim.betas=[0.8, 0.9]",
        "run.compile=true",
        "data.translate=false",
        "data.fixed_colours=[0, 5]",
        "data.train_sets=['arc1/training']",
        "run.device=cpu",
        'model.positions="rope1d"',
        "optim.micro_batch_size=16",
    )
    assert cfg.run.seed == 7
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.betas == (0.8, 0.9)
    assert cfg.run.compile is True and cfg.data.translate is False
    assert cfg.data.fixed_colours == [0, 5] and cfg.data.train_sets == ["arc1/training"]
    assert cfg.run.device == "cpu" and cfg.model.positions == "rope1d"
    assert cfg.optim.micro_batch_size == 16
    assert pretrain("optim.micro_batch_size=auto").optim.micro_batch_size == "auto"


def test_a_setting_the_recipe_leaves_out_can_be_set(tmp_path):
    assert pretrain().optim.grad_clip is None  # cpu-small.toml does not say
    assert pretrain("optim.grad_clip=1.0").optim.grad_clip == 1.0
    recipe = tmp_path / "short.toml"
    recipe.write_text("[run]\nsteps = 5\n")  # no [optim] section at all
    cfg = pretrain("optim.lr=3e-4", recipe=str(recipe))
    assert cfg.optim.lr == 3e-4 and cfg.run.steps == 5
    assert cfg.optim.warmup_steps == PretrainConfig().optim.warmup_steps  # the rest of the section: defaults


@pytest.mark.parametrize(
    "model, item, message",
    [
        (
            PretrainConfig,
            "optimm.lr=1",
            r"^--set 'optimm.lr=1': optimm.lr is not a setting \(did you mean optim.lr\?\)",
        ),
        (
            PretrainConfig,
            "optim.lrr=1",
            r"^--set 'optim.lrr=1': optim.lrr is not a setting \(did you mean optim.lr\?\)",
        ),
        (PretrainConfig, "optim.lr.x=1", r"^--set 'optim.lr.x=1': optim.lr.x is not a setting"),
        (SolveConfig, "eval.every=3", r"^--set 'eval.every=3': eval.every is not a setting"),  # a pretraining key
        (PretrainConfig, "optim=3", r"^--set 'optim=3': optim is a section; set one of its keys, e.g. optim\."),
        (PretrainConfig, "=3", r"^--set '=3': expected key=value"),
    ],
)
def test_an_unknown_key_or_section_is_one_line_naming_the_set(model, item, message):
    with pytest.raises(ConfigError, match=message) as e:
        apply_overrides({}, [item], model)
    assert "\n" not in str(e.value)


def test_a_key_under_something_that_is_not_a_section_is_refused():
    with pytest.raises(ConfigError, match=r"^--set 'optim.lr=1': optim is not a section$"):
        apply_overrides({"optim": 3}, ["optim.lr=1"], PretrainConfig)


@pytest.mark.parametrize(
    "item, message",
    [
        ("run.seed=1.5", r"run.seed: Input should be a valid integer"),
        ("optim.lr=", r"optim.lr: Input should be a valid number.* \(got ''\)"),
        ("run.compile=maybe", r"run.compile: Input should be a valid boolean.* \(got 'maybe'\)"),
        ("optim.ema_rate=null", r"optim.ema_rate: Input should be a valid number.* \(got 'null'\)"),
        ("run.device=tpu", r"run.device: Input should be 'auto', 'cpu' or 'cuda' \(got 'tpu'\)"),
        ("optim.betas=[0.9]", r"optim.betas.1: Field required"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_set(item, message):
    with pytest.raises(ConfigError, match=f"^--set {re.escape(repr(item))}: {message}") as e:
        pretrain(item)
    assert "\n" not in str(e.value)
