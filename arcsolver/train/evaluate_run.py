"""`arcsolver evaluate-run`: the held-out evaluation of a finished run, over one or several of its
kept checkpoints. Several vote as an ensemble: the candidates of every checkpoint go into one
vote per test input; each checkpoint's own scores are reported beside the ensemble's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from arcsolver.config import PretrainConfig
from arcsolver.data.stream import build_puzzles
from arcsolver.engine import checkpoint as ckpt
from arcsolver.engine.device import resolve_device, resolve_dtype
from arcsolver.errors import ArcsolverError, CheckpointError
from arcsolver.evaluation.inference import vote_queries
from arcsolver.evaluation.scoring import heldout_scores
from arcsolver.model.trm import TRM
from arcsolver.train.heldout import depth_of, heldout_predictions
from arcsolver.train.tasks import select_tasks

RECORD = "evaluations.jsonl"  # in the run directory: one line per evaluate-run


def pick_checkpoints(run_dir: Path, which: str) -> list[Path]:
    """The run's kept checkpoints that `which` names: last:N (the newest N), all, or step numbers
    separated by commas (1000,2000)."""
    kept = ckpt.checkpoint_dirs(run_dir)
    if not kept:
        raise ArcsolverError(f"{run_dir}: no checkpoint in this run directory; give the directory of a pretraining run")
    if which == "all":
        return kept
    if match := re.fullmatch(r"last:(\d+)", which.strip()):
        n = int(match[1])
        if n < 1:
            raise ArcsolverError(f"--checkpoints {which}: give last:N with N of 1 or more")
        return kept[-n:]
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
    return [by_step[s] for s in steps]


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


def evaluate_run(run_dir: Path, cfg: PretrainConfig, checkpoints: list[Path], say) -> dict:
    """Held-out scores of each checkpoint alone and of all of them voting together (the record
    appended to the run's evaluations.jsonl, which it returns)."""
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
    try:
        with open(run_dir / RECORD, "a", encoding="utf-8") as f:  # one line: a crash loses it whole or not at all
            f.write(json.dumps(record) + "\n")
    except OSError as e:
        raise ArcsolverError(
            f"{run_dir / RECORD}: cannot write ({e.strerror or e}); the scores are printed above"
        ) from None
    return record
