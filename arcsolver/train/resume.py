"""A run's state on disk, so that it can be continued: the checkpoints it writes, the newest one
that `--resume` can read with the same settings (and the training FLOPs it had reached), and the run
files beside them."""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError

from arcsolver.atomic import (
    atomic_write_json,
    atomic_write_text,
    owner_tag,
    remove_stale_staging,
    reported_writes,
    write_problem,
)
from arcsolver.config import PretrainConfig
from arcsolver.data.stream import Puzzle
from arcsolver.engine import checkpoint as ckpt
from arcsolver.engine.card import pretrain_card, write_card
from arcsolver.engine.carry import carries_from_tensors, fresh_carry_like
from arcsolver.engine.distributed import any_process, barrier, from_main
from arcsolver.engine.flops import cumulative_flops
from arcsolver.engine.snapshot import Snapshot, read_snapshot
from arcsolver.errors import ArcsolverError, CheckpointError, ConfigError, Diverged
from arcsolver.model.trm import Carry
from arcsolver.reader import parse_json, read_bytes
from arcsolver.recipes import resume_differences, validate
from arcsolver.train.run import Run


def resume_hint(run_dir: Path) -> str:
    """The command that continues the run in run_dir from its newest checkpoint."""
    return f"arcsolver pretrain --out {shlex.quote(str(run_dir))} --resume"


# --- reading back --------------------------------------------------------------------------


def saved_config(ckpt_dir: Path, state: dict) -> PretrainConfig:
    """The settings a checkpoint was trained with (state.json's config)."""
    try:
        return validate(PretrainConfig, state["config"], str(ckpt_dir / "state.json"))
    except ConfigError as e:
        raise CheckpointError(f"{e} (its config is not a pretraining recipe)") from None


def readable_checkpoints(run_dir: Path, cfg: PretrainConfig, say) -> list[tuple[Path, dict]]:
    """The run's checkpoints whose state.json reads, newest first, each checked to hold the
    settings of cfg (ConfigError listing every difference otherwise). An unreadable one is
    reported through say and passed over."""
    dirs = ckpt.checkpoint_dirs(run_dir)
    if not dirs:
        raise CheckpointError(f"{run_dir}: --resume given but there is no checkpoint to resume from")
    found = []
    for path in reversed(dirs):
        try:
            state = ckpt.read_training_state(path)
            saved = saved_config(path, state)
        except CheckpointError as e:
            say(f"{e}; trying the checkpoint before it")
            continue
        differences = resume_differences(cfg, saved)
        if differences:
            raise ConfigError(
                f"{run_dir}: cannot resume: {len(differences)} setting{'s' * (len(differences) > 1)} differ from its "
                f"checkpoint {path.name} ({'; '.join(differences)}); resume with the run's own settings (no --recipe, "
                "no --set of these), or start a new run with another --out"
            )
        found.append((path, state))
    if not found:
        raise CheckpointError(f"{run_dir}: no usable checkpoint to resume from (every state.json is unreadable)")
    return found


def restore_newest(run: Run, candidates: list[tuple[Path, dict]], say) -> tuple[int, dict[int, Carry]]:
    """Load the newest checkpoint every process can read whole into the run's live objects; return
    (its step, this process's carries by canvas side, empty to start afresh). The processes
    agree on which, or one would train from another step than the rest."""
    d = run.d
    carry_like = fresh_carry_like(run.model, run.cfg.optim.global_batch_size // d.world_size, run.device)
    for path, state in candidates:
        try:
            snap, problem = (
                read_snapshot(path, state, run.model, run.ema, run.optimizer, d.rank, d.world_size, carry_like),
                None,
            )
        except CheckpointError as e:
            snap, problem = None, str(e)
        if any_process(problem is not None, d, run.device):
            say(f"{problem or f'{path}: another process could not read its part'}; trying the checkpoint before it")
            continue
        return snap.step, apply_snapshot(snap, run)
    raise CheckpointError(f"{run.dir}: no usable checkpoint to resume from (every one is unreadable, see above)")


def apply_snapshot(snap: Snapshot, run: Run) -> dict[int, Carry]:
    """Put a checked checkpoint into the run's live objects; return the carries by canvas side
    (empty: start afresh)."""
    run.model.load_state_dict(snap.model)
    if snap.ema is not None:
        run.ema.load_state_dict(snap.ema)
    run.optimizer.load_state_dict(snap.optimizer)
    if snap.carry is None:
        return {}
    tensors = dict(snap.carry)
    torch.set_rng_state(tensors.pop("torch_rng"))
    cuda_rng = tensors.pop("cuda_rng", None)
    if cuda_rng is not None and run.device.type == "cuda":
        torch.cuda.set_rng_state(cuda_rng)
    return carries_from_tensors(tensors, run.device)


# --- writing -------------------------------------------------------------------------------


def resumed_flops(candidates: list, step: int, per_sample: dict[int, int], side_of, batch: int) -> int:
    """The training FLOPs of a run's first `step` steps: the resumed checkpoint's count, or, for
    a checkpoint written before FLOPs were counted, the steps' sides replayed (batch k's side is
    a function of the seed and k)."""
    for _, state in candidates:
        count = state.get("flops")
        if state["step"] == step and isinstance(count, int) and not isinstance(count, bool) and count >= 0:
            return count
    return cumulative_flops(per_sample, side_of, step, batch)


def save_checkpoint(
    run: Run, step: int, carries: dict[int, Carry], flops: int = 0, say: Callable[[str], None] = lambda text: None
) -> Path:
    """Every process stages its part, then the main process publishes the checkpoint, its
    state.json holding the step and the run's training FLOPs up to it. A write
    that fails in any process (a full disk) is one error line in all of them, with the staged
    part removed and the checkpoints already published intact. Weights that are no longer
    finite are never written: the run stops with the last good checkpoint the newest. The
    staging folders of killed runs are removed first, each said with say."""
    d = run.d
    check_finite(run, step)
    barrier(d)
    owner = from_main(owner_tag(), d, run.device)  # every process writes into the main process's folder
    staging, problem = None, None
    try:
        if d.is_main:
            (run.dir / ckpt.CHECKPOINTS).mkdir(parents=True, exist_ok=True)
            remove_stale_staging(run.dir / ckpt.CHECKPOINTS, ckpt.STAGING, say)
        staging = ckpt.staging_dir(run.dir, step, owner)
        ckpt.write_rank_part(staging, d.rank, carries)
        if d.is_main:
            state = {
                "step": step,
                "flops": flops,
                "world_size": d.world_size,
                "config": run.cfg.model_dump(mode="json"),
            }
            ckpt.write_main_part(staging, run.model, run.ema, run.optimizer, state)
    except (OSError, SafetensorError) as e:
        problem = write_problem(e)
    if not any_process(problem is not None, d, run.device) and d.is_main:
        try:
            ckpt.publish(staging, step, run.cfg.run.keep_checkpoints)
        except OSError as e:
            problem = write_problem(e)
    if any_process(problem is not None, d, run.device):
        if d.is_main and staging is not None:
            shutil.rmtree(staging, ignore_errors=True)  # give back the space a partial checkpoint took
        raise ArcsolverError(
            f"{run.dir / ckpt.CHECKPOINTS}: cannot write the checkpoint of step {step} "
            f"({problem or 'failed in another process'}); the checkpoints already there are intact: free space, "
            f"then `{resume_hint(run.dir)}`"
        )
    return run.dir / ckpt.CHECKPOINTS / f"{ckpt.PREFIX}{step:07d}"


def check_finite(run: Run, step: int) -> None:
    """Diverged if the network's or the EMA's weights hold an inf or a NaN (every process holds
    the same weights, so all of them raise alike)."""
    bad = ckpt.non_finite(run.model.state_dict()) + (ckpt.non_finite(run.ema.state_dict()) if run.ema else [])
    if bad:
        raise diverged(run, step, f"non-finite weights ({', '.join(bad[:3])}{' and more' * (len(bad) > 3)})")


def diverged(run: Run, step: int, what: str) -> Diverged:
    """The one-line error of a run whose training diverged at step."""
    kept = ckpt.latest_checkpoint(run.dir)
    return Diverged(
        f"{run.dir}: training diverged at step {step}: {what}; "
        + (f"the last good checkpoint, {kept.name}, is kept" if kept else "no checkpoint was written")
        + ": lower optim.lr (or set optim.grad_clip) and start again"
    )


def write_run_files(run_dir: Path, cfg: PretrainConfig, puzzles: list[Puzzle], step: int) -> None:
    """config.json, puzzles.txt and metrics.jsonl trimmed to step: the main process, once every
    check of a (resumed) run has passed."""
    with reported_writes(run_dir, "the files already there are intact"):
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / "config.json", cfg.model_dump(mode="json"))
        # For people reading the run: the task version of each puzzle-embedding row; nothing reads it back.
        atomic_write_text(run_dir / "puzzles.txt", "\n".join(p.name for p in puzzles) + "\n")
        trim_metrics(run_dir / "metrics.jsonl", step)
        write_card(run_dir, pretrain_card(run_dir, cfg))


def trim_metrics(path: Path, step: int) -> None:
    """Drop the records past step, which a run killed after its last checkpoint had logged and
    the resumed run logs again; rewritten atomically, and only where there is something to drop."""
    if not path.exists():
        return
    text = read_bytes(path).decode("utf-8", errors="replace")
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()  # half a record: the kill came mid-write

    def past(line: str) -> bool:
        try:
            record = parse_json(line)
        except ValueError:
            return False
        return isinstance(record, dict) and isinstance(record.get("step"), (int, float)) and record["step"] > step

    kept = [line for line in lines if not past(line)]
    if len(kept) != len(text.splitlines()):
        atomic_write_text(path, "".join(kept))
