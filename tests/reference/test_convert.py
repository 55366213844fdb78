"""`arcsolver import-reference`: a checkpoint saved by the TRM reference code, converted, gives the
reference's outputs and runs through solve and evaluate.

The reference model is built from a clone (found as tests/helpers/reference.py finds it; skipped with
the reason where there is none), given random weights and saved as its pretrain.py saves one:
`torch.save` of the compiled model's state dict, beside an all_config.yaml.
"""

from __future__ import annotations

import importlib.util
import json
import pickle

import numpy as np
import pytest
import torch
from helpers import error_line
from helpers.reference import N_ROWS, build_equal_mlp_t, random_batch, reference_path, small_config, solve_file
from typer.testing import CliRunner

from arcsolver.cli import app
from arcsolver.config import PretrainConfig, SolveConfig
from arcsolver.data.augment import split_augmented_id
from arcsolver.data.task import Pair, Task, as_grid
from arcsolver.engine.checkpoint import load_tensors, read_state
from arcsolver.engine.pretrained import load_model, trained_versions
from arcsolver.model.trm import TRM
from arcsolver.recipes import load_recipe
from arcsolver.reference.names import version_name
from arcsolver.reference.settings import ASSUMED, reference_settings
from arcsolver.reference.weights import reference_state_to_trm
from arcsolver.solve.adapt import add_puzzles

# The small model's settings that an ARC checkpoint's shapes cannot give, as --set items.
SMALL_SETS = ["model.n_heads=2", "model.n_latent_steps=2", "model.n_recursions=2", "model.n_supervision=3"]
SMALL_SETS += ["model.puzzle_emb_len=4", "model.canvas=8"]


def saved_reference(harness, directory, yaml: bool, mlp_t: bool = False):  # noqa: F811
    """A reference loss head with random weights (its task rows and halting head too), saved
    into directory as step_120 (the compiled model's keys), with all_config.yaml if yaml; with
    mlp_t, its TRM-MLP."""
    bench, ref = harness
    cfg = small_config(mixer="mlp") if mlp_t else small_config()
    if mlp_t:
        head, _ = build_equal_mlp_t(bench, ref, cfg, 4, seed=7, random_rows=True)
    else:
        head, _, _ = bench.build_equal(ref, cfg, N_ROWS, 4, "cpu", torch.float32, seed=7, random_rows=True)
    with torch.no_grad():  # the reference starts its halting head at zero weight: make it matter
        head.model.inner.q_head.weight.normal_(0, 0.3)
        head.model.inner.q_head.bias.normal_()
    directory.mkdir()
    torch.save({f"_orig_mod.{k}": v for k, v in head.state_dict().items()}, directory / "step_120")
    if yaml:
        yaml_lib = pytest.importorskip("yaml", reason="reading all_config.yaml needs PyYAML")
        arch = bench.reference_arch(cfg, 4, N_ROWS, torch.float32)
        for key in ("batch_size", "seq_len", "vocab_size", "num_puzzle_identifiers"):  # the data's, not saved
            del arch[key]
        arch |= {
            "mlp_t": mlp_t,
            "name": "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1",
            "loss": {"name": "losses@ACTLossHead"},
        }
        settings = {"arch": arch, "data_paths": ["data/arc1concept-aug-1000"], "global_batch_size": 768, "lr": 1e-4}
        (directory / "all_config.yaml").write_text(yaml_lib.safe_dump(settings))
    return head, cfg


def convert(*args):
    return CliRunner().invoke(app, ["import-reference", *map(str, args)], env={"COLUMNS": "300"})


def converted_model(run) -> TRM:
    """The converted run's TRM with its whole puzzle table (solve loads only its mean)."""
    ckpt = run / "checkpoints" / "step_0000120"
    cfg = PretrainConfig.model_validate(read_state(ckpt)["config"])
    weights = load_tensors(ckpt / "model.safetensors")
    model = TRM(cfg.model, len(weights["puzzle_emb.weight"]))
    model.load_state_dict(weights)
    return model


def check_equal(harness, head, model, cfg, inference_atol=1e-4):  # noqa: F811
    """One supervision step (y, z, logits, halting logits) and the whole N_sup inference agree
    (TRM-MLP's recursion amplifies float32 rounding more: see tests/reference/test_weights.py)."""
    bench, ref = harness
    b = random_batch(cfg, 4, seed=11)
    diffs = bench.compare_one_step(head, model, b, "cpu")
    print("max |difference| of one supervision step:", diffs)
    assert set(diffs) == {"logits", "halt_logit", "y", "z"}
    for name, diff in diffs.items():
        assert diff < 1e-4, f"{name} differs by {diff}"
    ours = bench.OurTrainer(model, 1e-3, 2, torch.float32, False).predict(b)
    theirs = bench.ReferenceTrainer(ref, head, 1e-3, 2, "cpu", False).predict(b).float()
    print("max |difference| of the inference logits:", (ours - theirs).abs().max().item())
    torch.testing.assert_close(ours, theirs, atol=inference_atol, rtol=1e-4)


def test_converted_checkpoint_with_its_settings_file_gives_the_reference_outputs(harness, tmp_path):  # noqa: F811
    head, cfg = saved_reference(harness, tmp_path / "reference", yaml=True)
    names = ["<blank>"] + [f"task{i}|||t{i % 8}|||0123456789" for i in range(1, N_ROWS)]
    (tmp_path / "identifiers.json").write_text(json.dumps(names))
    run = tmp_path / "run"
    result = convert(
        tmp_path / "reference", "--out", run, "--identifiers", tmp_path / "identifiers.json", "--set", "model.canvas=8"
    )
    assert result.exit_code == 0, result.output
    assert "all_config.yaml" in result.output and "assumed" not in result.output  # canvas set, the rest in the file
    rows = (run / "checkpoints" / "step_0000120" / "puzzles.txt").read_text().splitlines()
    assert rows[:2] == ["task1_t1.c0123456789", "task2_t2.c0123456789"] and len(rows) == N_ROWS - 1
    state = read_state(run / "checkpoints" / "step_0000120")
    assert state["step"] == 120 and state["config"]["model"]["n_latent_steps"] == cfg.n_latent_steps
    model = converted_model(run)
    assert model.puzzle_emb.n_rows == N_ROWS  # the whole table is kept
    check_equal(harness, head, model, cfg)


@pytest.mark.parametrize("yaml", [True, False])
def test_converted_mlp_t_checkpoint_gives_the_reference_outputs(harness, tmp_path, yaml):  # noqa: F811
    """The reference's TRM-MLP (arch.mlp_t) converts into mixer="mlp", from its settings file or,
    without one, from its weights (the mlp_t matrices)."""
    head, cfg = saved_reference(harness, tmp_path / "reference", yaml=yaml, mlp_t=True)
    run = tmp_path / "run"
    sets = ["model.canvas=8"] if yaml else SMALL_SETS
    result = convert(tmp_path / "reference", "--out", run, *[x for s in sets for x in ("--set", s)])
    assert result.exit_code == 0, result.output
    model = converted_model(run)
    assert model.config.mixer == "mlp" and not hasattr(model.blocks[0], "attn")
    check_equal(harness, head, model, cfg, inference_atol=5e-3)
    wrong_canvas = [x for s in [*SMALL_SETS[:-1], "model.canvas=6"] for x in ("--set", s)]
    line = convert(tmp_path / "reference", "--out", tmp_path / "r", *wrong_canvas).output.strip().splitlines()[-1]
    assert "mlp_t.gate_up" in line and "model.canvas" in line and not (tmp_path / "r").exists()


def test_without_settings_file_the_shapes_and_the_arc_recipe_are_used(harness, tmp_path):  # noqa: F811
    head, cfg = saved_reference(harness, tmp_path / "reference", yaml=False)
    weights = reference_state_to_trm(torch.load(tmp_path / "reference" / "step_120", weights_only=True))
    settings, assumed = reference_settings(weights, None, [], "step_120")
    assert set(assumed) == {ours for ours, _ in ASSUMED.values()}
    assert (settings.model.hidden_size, settings.model.n_layers) == (cfg.hidden_size, cfg.n_layers)
    assert settings.model.n_latent_steps == 4 and settings.model.canvas == 30  # the reference's ARC recipe

    run = tmp_path / "run"
    sets = [x for s in SMALL_SETS[1:] for x in ("--set", s)]  # n_heads left to the recipe's 8
    result = convert(tmp_path / "reference" / "step_120", "--out", run, *sets)
    assert result.exit_code == 0, result.output
    assert "assumed" in result.output and "model.n_heads=8" in result.output
    assert "model.n_latent_steps" not in result.output.split("assumed")[1].split(";")[0]  # it was set

    names = tmp_path / "identifiers.json"
    names.write_text(json.dumps(["<blank>", "a"]))
    line = error_line(convert(tmp_path / "reference", "--out", tmp_path / "r", "--identifiers", names).output, names)
    assert f"{N_ROWS} rows" in line and not (tmp_path / "r").exists()
    names.write_text(json.dumps(["<blank>", "a", "b|||t9|||0123456789", "c", "d", "e"]))
    line = error_line(convert(tmp_path / "reference", "--out", tmp_path / "r", "--identifiers", names).output, names)
    assert "row 2" in line and "t9" in line and not (tmp_path / "r").exists()

    run = tmp_path / "run2"
    result = convert(tmp_path / "reference", "--out", run, *[x for s in SMALL_SETS for x in ("--set", s)])
    assert result.exit_code == 0, result.output
    assert not (run / "checkpoints" / "step_0000120" / "puzzles.txt").exists()
    check_equal(harness, head, converted_model(run), cfg)


def test_tasks_the_reference_trained_on_get_their_versions_and_rows(harness, tmp_path):  # noqa: F811
    head, _ = saved_reference(harness, tmp_path / "reference", yaml=False)
    names = ["<blank>", "t1", "t1|||t1|||0213456789", "other", "t1|||t5|||0123456789", "other|||t2|||0123456789"]
    (tmp_path / "identifiers.json").write_text(json.dumps(names))
    run = tmp_path / "run"
    sets = [x for s in SMALL_SETS for x in ("--set", s)]
    assert (
        convert(tmp_path / "reference", "--out", run, "--identifiers", tmp_path / "identifiers.json", *sets).exit_code
        == 0
    )
    model, _, ckpt = load_model(run, torch.device("cpu"))
    assert model.puzzle_emb.n_rows == 2  # solve still loads the blank row and the mean alone
    trained = trained_versions(ckpt, ["t1", "new"])
    assert list(trained) == ["t1"] and [str(aug) for aug, _ in trained["t1"]] == [
        "t0.c0123456789",
        "t1.c0213456789",
        "t5.c0123456789",
    ]
    table = head.model.inner.puzzle_emb.weights
    grid = as_grid([[1, 2], [3, 0]])
    tasks = [Task(tid, (Pair(grid, grid),), (Pair(grid, grid),)) for tid in ("t1", "new")]
    cfg = load_recipe(SolveConfig, "submit", "cpu-small", ["data.n_augmentations=2"])
    mean = model.puzzle_emb.weight[1].clone()
    puzzles, first = add_puzzles(model, tasks, cfg, trained)
    assert [p.name for p in puzzles[:3]] == ["t1_t0.c0123456789", "t1_t1.c0213456789", "t1_t5.c0123456789"]
    rows = model.puzzle_emb.weight
    torch.testing.assert_close(rows[first : first + 3], table[[1, 2, 4]])  # the reference's rows of t1
    assert [p.task.id for p in puzzles[3:]] == ["new", "new"]
    torch.testing.assert_close(rows[first + 3 :], mean.expand(2, -1))  # an unseen task: the mean row
    assert trained_versions(tmp_path, ["t1"]) == {}  # a checkpoint that names no rows

    (tmp_path / "challenges.json").write_text(
        json.dumps({"t1": {"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[1, 2]]}]}})
    )
    result = solve_file(tmp_path, run, "adapt.steps=0")
    assert result.exit_code == 0, result.output
    assert "1 of 1 tasks answered with the 3 task versions" in result.output


def test_converted_checkpoint_solves_a_task_file_end_to_end(harness, tmp_path):  # noqa: F811
    saved_reference(harness, tmp_path / "reference", yaml=False)
    run = tmp_path / "run"
    assert convert(tmp_path / "reference", "--out", run, *[x for s in SMALL_SETS for x in ("--set", s)]).exit_code == 0
    grid, answer = [[1, 0, 2], [0, 3, 0]], [[2, 0, 1], [0, 3, 0]]
    task = {"train": [{"input": grid, "output": answer}] * 2, "test": [{"input": grid}]}
    (tmp_path / "challenges.json").write_text(json.dumps({"t1": task}))
    (tmp_path / "solutions.json").write_text(json.dumps({"t1": [answer]}))
    result = solve_file(tmp_path, run)
    assert result.exit_code == 0, result.output
    assert "1 of 1 tasks for the model" in result.output and "fallbacks only" not in result.output
    attempts = json.loads((tmp_path / "sub.json").read_text())["t1"][0]
    assert set(attempts) == {"attempt_1", "attempt_2"}
    scored = CliRunner().invoke(
        app, ["evaluate", str(tmp_path / "sub.json"), "--solutions", str(tmp_path / "solutions.json"), "--json"]
    )
    assert scored.exit_code == 0, scored.output


def test_what_cannot_be_mapped_is_one_line(tmp_path):
    reference = tmp_path / "step_5"
    state = {
        "_orig_mod.model.inner.embed_tokens.embedding_weight": torch.zeros(12, 8),
        "model.inner.mystery": torch.zeros(1),
    }
    torch.save(state, reference)
    result = convert(reference, "--out", tmp_path / "a")
    assert result.exit_code == 1
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error: ") and "inner.mystery" in line and "expected" in line
    assert not (tmp_path / "a").exists()

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    error_line(convert(reference, "--out", tmp_path / "taken").output, tmp_path / "taken", "not empty", "--out")

    code = tmp_path / "step_6"
    code.write_bytes(pickle.dumps(pickle.Pickler, protocol=2))  # a pickle that names code: weights_only refuses it
    error_line(convert(code, "--out", tmp_path / "b").output, code, "torch.save")
    error_line(convert(tmp_path / "nothing", "--out", tmp_path / "b").output, tmp_path / "nothing", "no such file")


def test_reference_version_names_are_the_same_augmentations_in_arcsolver(harness):  # noqa: F811
    """The reference's dataset builder maps a grid by its colour mapping, then its transform t<d>
    (dataset/common.py); the translated name's Augmentation maps every grid the same way."""
    spec = importlib.util.spec_from_file_location("reference_dataset_common", reference_path() / "dataset/common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    rng = np.random.default_rng(0)
    grid = rng.integers(0, 10, (3, 5)).astype(np.uint8)
    for d in range(8):
        mapping = np.concatenate([[0], rng.permutation(np.arange(1, 10))]).astype(np.uint8)
        name = f"007bbfc7|||t{d}|||{''.join(str(c) for c in mapping)}"
        task_id, augmentation = split_augmented_id(version_name(name))
        assert task_id == "007bbfc7"
        np.testing.assert_array_equal(augmentation.apply_grid(grid), common.dihedral_transform(mapping[grid], d))
    assert version_name("007bbfc7") == "007bbfc7_t0.c0123456789"
    with pytest.raises(ValueError, match="separators"):
        version_name("007bbfc7|||t1")
