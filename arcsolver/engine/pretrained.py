"""A checkpoint's model for answering tasks: its EMA weights, and of its puzzle table only the
mean of the trained rows (new tasks start there), read in chunks so that a table of a million
rows never sits in memory. Solving and the Kaggle bundle's check load checkpoints this way;
resuming a pretraining run reads the whole training state (checkpoint.py)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from arcsolver.config import PretrainConfig
from arcsolver.data.augment import Augmentation, split_augmented_id
from arcsolver.engine import checkpoint as ckpt
from arcsolver.errors import CheckpointError
from arcsolver.model.trm import TRM
from arcsolver.reader import read_text, weights_file
from arcsolver.recipes import validate

# The pretrained puzzle table's key, and how many of its rows are read at a time to average it
# (64Ki rows of 512 floats: 128 MiB, where the whole table can reach 2 GB).
TABLE_KEY = "puzzle_emb.weight"
TABLE_CHUNK_ROWS = 65536
# In a checkpoint directory: the task version of each puzzle-table row, line k being row k + 1.
# `arcsolver import-reference` writes it; solve then answers those versions with their rows.
VERSIONS_FILE = "puzzles.txt"
# In a slim checkpoint that keeps some trained rows (`kaggle bundle --keep-rows`): the mean of the
# whole table it was cut from, which new tasks start at.
MEAN_FILE = "puzzle_mean.safetensors"


def load_model(checkpoint: str | Path, device: torch.device) -> tuple[TRM, PretrainConfig, Path]:
    """The pretrained TRM of a checkpoint (or a run's newest), with its EMA weights in place.

    New tasks only ever use the mean of the trained puzzle rows (`PuzzleEmbedding.grow` starts
    their rows there), so the table is loaded as two rows: the blank row and that mean.
    """
    cfg, ckpt_dir = checkpoint_config(checkpoint)
    ema_path = ckpt_dir / "ema.safetensors"
    # The config's claims are checked against the files' headers before anything is allocated:
    # a state.json claiming a huge model must not cost its memory.
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in TRM(cfg.model, n_puzzle_ids=2).state_dict().items()}
    for path in (ckpt_dir / "model.safetensors", *([ema_path] if ema_path.exists() else [])):
        check_shapes(path, header_shapes(path), expected, ckpt_dir / "state.json")
    weights = read_weights(ckpt_dir / "model.safetensors")
    if (ckpt_dir / MEAN_FILE).exists():
        weights[TABLE_KEY] = torch.cat([weights[TABLE_KEY][:1], read_table_mean(ckpt_dir / MEAN_FILE, cfg.model)])
    model = TRM(cfg.model, n_puzzle_ids=2)  # the blank row and the mean of the trained rows
    ema = read_weights(ema_path) if ema_path.exists() else None
    if ema is not None:
        check_ema_keys(model, ema, ema_path)
    for path, tensors in ((ckpt_dir / "model.safetensors", weights), (ema_path, ema or {})):
        if bad := ckpt.non_finite(tensors):
            raise CheckpointError(
                f"{path}: {len(bad)} tensors hold inf or NaN ({names_of(bad)}): the model diverged in training; "
                "solve with an earlier checkpoint of the run"
            )
    try:
        model.load_state_dict(weights)
        if ema is not None:
            # Evaluation weights: the EMA is what pretraining scored, and what we adapt from. It
            # averages the parameters only, so the buffers (the puzzle table) come from the weights.
            model.load_state_dict(ema, strict=False)
    except RuntimeError as e:
        raise CheckpointError(f"{ckpt_dir}: weights do not match its config ({str(e).splitlines()[0]})") from None
    return model.to(device), cfg, ckpt_dir


def checkpoint_config(checkpoint: str | Path) -> tuple[PretrainConfig, Path]:
    """The settings a checkpoint (or a run's newest) was trained with, validated, and its directory;
    no weights are read."""
    ckpt_dir = ckpt.find_checkpoint(checkpoint)
    state = ckpt.read_state(ckpt_dir)
    if not isinstance(state.get("config"), dict):
        raise CheckpointError(f"{ckpt_dir / 'state.json'}: corrupt (config is not an object of settings)")
    return validate(PretrainConfig, state["config"], str(ckpt_dir / "state.json")), ckpt_dir


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors on the CPU, its puzzle table reduced by `table_mean_rows`."""
    try:
        with safe_open(weights_file(path, CheckpointError), framework="pt") as f:
            return {k: table_mean_rows(f.get_slice(k)) if k == TABLE_KEY else f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing from the checkpoint") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None


def read_table_mean(path: Path, model_cfg) -> torch.Tensor:
    """The [1, width] mean row a slim checkpoint keeps of the table it was cut from."""
    try:
        with safe_open(str(path), framework="pt") as f:
            mean = f.get_tensor(TABLE_KEY) if TABLE_KEY in f.keys() else None
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    width = model_cfg.hidden_size
    if mean is None or tuple(mean.shape) != (1, width):
        raise CheckpointError(f"{path}: expected the table's mean row, {TABLE_KEY} of shape [1, {width}]")
    return mean


def header_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor of a safetensors file, read from its header alone."""
    try:
        with safe_open(weights_file(path, CheckpointError), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing from the checkpoint") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None


def check_shapes(path: Path, shapes: dict, expected: dict, state_path: Path) -> None:
    """Each tensor the model has and the file holds is of the model's shape (the puzzle table in
    its width only: its rows are the trained tasks'); CheckpointError naming the first that is not."""
    for key, shape in expected.items():
        found = shapes.get(key)
        if found is None or (found[1:] == shape[1:] if key == TABLE_KEY else found == shape):
            continue
        raise CheckpointError(
            f"{path}: {key} is {list(found)}, where the config of {state_path} makes it {list(shape)}: "
            "the files are not of one checkpoint"
        )


def table_mean_rows(table) -> torch.Tensor:
    """[row 0, mean of rows 1..] of a puzzle table (a safetensors slice), read TABLE_CHUNK_ROWS
    rows at a time so that the whole table is never in memory. A table of the blank row alone,
    or not a table at all, is returned as it is."""
    shape = table.get_shape()
    if len(shape) != 2 or shape[0] < 2:
        return table[:]
    n_rows, dim = shape
    total = torch.zeros(dim, dtype=torch.float64)  # float64: a million float32 rows sum without loss
    for start in range(1, n_rows, TABLE_CHUNK_ROWS):
        total += table[start : start + TABLE_CHUNK_ROWS].to(torch.float64).sum(0)
    blank = table[0:1]
    return torch.cat([blank, (total / (n_rows - 1)).to(blank.dtype)[None]])


def check_ema_keys(model: TRM, ema: dict[str, torch.Tensor], path: Path) -> None:
    """An EMA file holds every parameter of the model and nothing the model lacks (buffers are
    optional: the EMA does not average them)."""
    missing = sorted({name for name, _ in model.named_parameters()} - set(ema))
    unexpected = sorted(set(ema) - set(model.state_dict()))
    problems = [f"{what} {names_of(keys)}" for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
    if problems:
        raise CheckpointError(
            f"{path}: not the EMA of this checkpoint's model ({'; '.join(problems)}); "
            "delete it to solve with model.safetensors alone"
        )


def names_of(keys: list[str], shown: int = 3) -> str:
    more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
    return ", ".join(keys[:shown]) + more


def trained_versions(ckpt_dir: Path, task_ids: list[str]) -> dict[str, list[tuple[Augmentation, torch.Tensor]]]:
    """Per task id among task_ids, the versions the checkpoint's puzzle table holds a trained row
    for (as its puzzles.txt names them, in its order) and each one's row; empty where the
    checkpoint names no rows. Only those rows are read from the table."""
    path = Path(ckpt_dir) / VERSIONS_FILE
    if not path.exists():
        return {}
    wanted = set(task_ids)
    found: dict[str, list[tuple[Augmentation, int]]] = {}
    lines = read_text(path, CheckpointError).splitlines()
    for row, name in enumerate(lines, start=1):
        try:
            task_id, augmentation = split_augmented_id(name)
        except ValueError:
            raise CheckpointError(
                f"{path}: line {row} ({name[:80]!r}) is not a task version '<task id>_t<d>.c<ten digits>'"
            ) from None
        if task_id in wanted:
            found.setdefault(task_id, []).append((augmentation, row))
    if not found:
        return {}
    weights = Path(ckpt_dir) / "model.safetensors"
    try:
        with safe_open(weights_file(weights, CheckpointError), framework="pt") as f:
            table = f.get_slice(TABLE_KEY)
            if table.get_shape()[0] != len(lines) + 1:
                raise CheckpointError(
                    f"{path}: names {len(lines)} rows, the puzzle table of {weights} has {table.get_shape()[0] - 1}"
                )
            return {tid: [(aug, table[row : row + 1][0]) for aug, row in rows] for tid, rows in found.items()}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({e})") from None
