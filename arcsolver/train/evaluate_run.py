"""`arcsolver evaluate-run`: the held-out evaluation of a finished run, over one or several of its
kept checkpoints. Several vote as an ensemble: the candidates of every checkpoint go into one
vote per test input; each checkpoint's own scores are reported beside the ensemble's."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import torch

from arcsolver.config import PretrainConfig
from arcsolver.data.stream import build_puzzles
from arcsolver.engine import checkpoint as ckpt
from arcsolver.engine.device import resolve_device, resolve_dtype
from arcsolver.errors import ArcsolverError, CheckpointError
from arcsolver.evaluation.inference import vote_queries
from arcsolver.evaluation.scoring import heldout_scores
from arcsolver.inputs import distinct
from arcsolver.model.trm import TRM
from arcsolver.train.heldout import depth_of, heldout_predictions
from arcsolver.train.tasks import select_tasks

RECORD = "evaluations.jsonl"  # in the run directory: one line per evaluate-run


def pick_checkpoints(run_dir: Path, which: str) -> list[Path]:
    """The run's kept checkpoints that `which` names: last:N (the newest N), all, or step numbers
    separated by commas (1000,2000); each once, by its resolved directory (a step named twice, or
    a checkpoint linked to another, votes once)."""
    kept = ckpt.checkpoint_dirs(run_dir)
    if not kept:
        raise ArcsolverError(f"{run_dir}: no checkpoint in this run directory; give the directory of a pretraining run")
    if which == "all":
        return distinct(kept)
    if match := re.fullmatch(r"last:(\d+)", which.strip()):
        n = int(match[1])
        if n < 1:
            raise ArcsolverError(f"--checkpoints {which}: give last:N with N of 1 or more")
        return distinct(kept[-n:])
    by_step = {int(p.name.removeprefix(ckpt.PREFIX)): p for p in kept}
    try:
        steps = [int(s) for s in which.split(",")]
    except ValueError:
        raise ArcsolverError(f"--checkpoints {which}: give last:N, all, or steps such as 1000,2000") from None
    missing = [s for s in steps if s not in by_step]
    if missing:
        raise ArcsolverError(
            f"--checkpoints {which}: the run keeps no checkpoint of step {missing[0]}; it keeps steps {sorted(by_step)}"
        )
    return distinct(by_step[s] for s in steps)


def evaluation_model(cfg: PretrainConfig, ckpt_dir: Path, n_puzzles: int, device: torch.device) -> TRM:
    """The checkpoint's model with its whole puzzle table and, where it keeps them, its EMA
    weights: what pretraining's own evaluation scores."""
    model = TRM(cfg.model, n_puzzle_ids=n_puzzles + 1)
    weights = ckpt.load_tensors(ckpt_dir / "model.safetensors")
    ema_path = ckpt_dir / "ema.safetensors"
    try:
        model.load_state_dict(weights)
        if ema_path.exists():
            model.load_state_dict(ckpt.load_tensors(ema_path), strict=False)
    except RuntimeError as e:
        raise CheckpointError(
            f"{ckpt_dir}: weights do not match the run's config.json ({str(e).splitlines()[0]})"
        ) from None
    return model.to(device).eval()


def check_record(path: Path) -> None:
    """Refuse, before any work, a record that could not be appended to: one that is a link, a
    directory, a pipe or a device, or a folder that cannot be written."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        if not os.access(path.parent, os.W_OK):
            raise ArcsolverError(f"{path.parent}: not writable; make the run directory writable") from None
        return
    if not stat.S_ISREG(info.st_mode):
        kind = "a link" if stat.S_ISLNK(info.st_mode) else "not a regular file"
        raise ArcsolverError(f"{path}: {kind}; remove it (the scores are appended to a file of that name)")
    if not os.access(path, os.W_OK):
        raise ArcsolverError(f"{path}: not writable; make it writable or move it away")


def append_record(path: Path, record: dict) -> None:
    """One line appended to a regular file, never through a link, never blocking on a pipe: a
    crash loses the line whole or not at all."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ArcsolverError(f"{path}: not a regular file; remove it (the scores are printed above)")
            os.write(fd, (json.dumps(record) + "\n").encode("utf-8"))
        finally:
            os.close(fd)
    except OSError as e:
        raise ArcsolverError(f"{path}: cannot write ({e.strerror or e}); the scores are printed above") from None


def evaluate_run(run_dir: Path, cfg: PretrainConfig, checkpoints: list[Path], say) -> dict:
    """Held-out scores of each checkpoint alone and of all of them voting together (the record
    appended to the run's evaluations.jsonl, which it returns)."""
    check_record(run_dir / RECORD)
    device = resolve_device(cfg.run.device)
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    dtype = resolve_dtype(cfg.run.dtype, device)
    train, heldout = select_tasks(cfg)
    if not heldout:
        raise ArcsolverError(f"{run_dir}: the run holds no task out (data.heldout_sets is empty): nothing to score")
    puzzles = build_puzzles(train + heldout, cfg.data.n_augmentations, cfg.run.seed, cfg.data.fixed_colours)
    tasks = {t.id: t for t in heldout}
    all_queries: list = []
    all_preds: list = []
    alone = {}
    for path in checkpoints:
        model = evaluation_model(cfg, path, len(puzzles), device)
        queries, preds, _ = heldout_predictions(model, cfg, puzzles, heldout, None, dtype)
        alone[path.name] = heldout_scores(tasks, vote_queries(queries, preds))
        say(f"{path.name}: pass@2 {alone[path.name]['pass@2']:.3f} ({len(queries)} queries)")
        all_queries += queries
        all_preds += preds
        depth = depth_of(model, cfg)
        del model
    record = {
        "checkpoints": [p.name for p in checkpoints],
        **depth,
        "max_versions": cfg.eval.max_versions,
        "ensemble": heldout_scores(tasks, vote_queries(all_queries, all_preds)),
        "alone": alone,
    }
    append_record(run_dir / RECORD, record)
    return record
