"""`arcsolver pretrain`: TRM's deep-supervision training loop, read top to bottom.

Each optimiser step is one supervision step of every sample in the batch: samples that halted
at the previous step are replaced by fresh ones from the stream, the others carry their y and z
on. Then: loss, backward, gradient average over processes, Adam(-atan2) on the network,
sign-SGD on the puzzle-embedding rows of the batch, EMA update, logging, checkpoints and the
held-out evaluation.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError

from arcsolver.atomic import atomic_write_json, atomic_write_text, reported_writes, write_problem
import arcsolver.console
from arcsolver.console import Heartbeat, duration, one_line
from arcsolver.data.loaders import load_tasks
from arcsolver.data.task import Task
from arcsolver.errors import ArcsolverError, CheckpointError, ConfigError
from arcsolver.engine.device import limit_gpu_memory, resolve_device, resolve_dtype, seed_everything
from arcsolver.engine.memory import choose_micro_batch
from arcsolver.engine.step import Stepper, to_device
from arcsolver.model.trm import TRM, Carry
from arcsolver.engine.inference import heldout_scores, predict, queries_for, vote_queries
from arcsolver.engine import checkpoint as ckpt
from arcsolver.config import PretrainConfig
from arcsolver.data.stream import Puzzle, SizedStream, TrainStream, build_puzzles, trainable_pairs
from arcsolver.engine.distributed import (
    Dist,
    any_process,
    barrier,
    init_distributed,
    mean_over_processes,
    sum_over_processes,
    shutdown,
)
from arcsolver.engine.optim import EMA, build_optimizer, warmup_factor


def select_tasks(cfg: PretrainConfig) -> tuple[list[Task], list[Task]]:
    """(train tasks, held-out tasks) per the recipe; a task in both is only held out."""
    fits = cfg.data.max_side or cfg.model.canvas

    def load(names: list[str]) -> list[Task]:
        out = []
        for name in names:
            tasks = [t for t in load_tasks(name) if t.max_side() <= fits]
            out.extend(tasks[: cfg.data.max_tasks])
        return out

    heldout = load(cfg.data.heldout_sets)
    heldout_ids = {t.id for t in heldout}
    # Never train on a held-out task's test pairs, even if another set repeats the task.
    train = [t for t in load(cfg.data.train_sets) if t.id not in heldout_ids]
    if not train and not heldout:
        raise ConfigError(f"no task fits a {fits}x{fits} canvas in {cfg.data.train_sets + cfg.data.heldout_sets}")
    return train, heldout


def schedule(cfg: PretrainConfig, stream: TrainStream, total_steps: int) -> str:
    """The run's length in the recipe's unit and in steps, for the first lines of a run."""
    per_epoch = f"{stream.examples_per_epoch} examples per epoch ({cfg.data.sampling} sampling)"
    if cfg.run.epochs is not None:
        return f"{cfg.run.epochs} epochs of {per_epoch} = {total_steps} steps of {cfg.optim.global_batch_size}"
    return f"{total_steps} steps of {cfg.optim.global_batch_size}, {per_epoch}"


def task_counts(train: list[Task], heldout: list[Task]) -> str:
    """The tasks of a run in the README's words: trained on in full, or held out (demonstrations
    trained on, test inputs held out for evaluation)."""
    parts = []
    if train:
        parts.append(f"{len(train)} tasks trained on in full")
    if heldout:
        parts.append(f"{len(heldout)} tasks: demonstrations trained on, test inputs held out")
    return " + ".join(parts)


# --- resuming ------------------------------------------------------------------------------

# What a resumed run may change: how long it runs, how often it logs, checkpoints and evaluates,
# and how it uses the hardware. Every other setting shapes the data, the model or the
# optimisation, and must be what the checkpoint was trained with.
MAY_CHANGE = {"run.steps", "run.epochs", "run.time_limit_s", "run.log_every", "run.checkpoint_every",
              "run.keep_checkpoints", "run.threads", "run.compile", "run.gpu_memory_gb", "optim.micro_batch_size"}
MAY_CHANGE_SECTIONS = ("eval.",)
DERIVED = {"model.n_puzzle_ids"}  # follows from the data settings, which are compared


def flat_settings(settings: dict, prefix: str = "") -> dict:
    """A nested settings dict as section.key -> value."""
    out = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            out.update(flat_settings(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def settings_differences(now: PretrainConfig, saved: PretrainConfig) -> list[str]:
    """`key: <checkpoint's> -> <now>` for every setting that may not change on resume and did."""
    a, b = flat_settings(saved.model_dump(mode="json")), flat_settings(now.model_dump(mode="json"))
    fixed = [k for k in a if k not in MAY_CHANGE | DERIVED and not k.startswith(MAY_CHANGE_SECTIONS)]
    return [f"{k}: {json.dumps(a[k])} -> {json.dumps(b.get(k))}" for k in fixed if a[k] != b.get(k)]


def saved_config(ckpt_dir: Path, state: dict) -> PretrainConfig:
    """The settings a checkpoint was trained with (state.json's config)."""
    from arcsolver.recipes import validate

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
        differences = settings_differences(cfg, saved)
        if differences:
            raise ConfigError(
                f"{run_dir}: cannot resume: {len(differences)} setting{'s' * (len(differences) > 1)} differ from its "
                f"checkpoint {path.name} ({'; '.join(differences)}); resume with the run's own settings (no --recipe, "
                "no --set of these), or start a new run with another --out")
        found.append((path, state))
    if not found:
        raise CheckpointError(f"{run_dir}: no usable checkpoint to resume from (every state.json is unreadable)")
    return found


def restore_newest(run_dir: Path, candidates: list[tuple[Path, dict]], model, ema, optimizer, carry_like,
                   d: Dist, device, say) -> tuple[int, dict[int, Carry]]:
    """Load the newest checkpoint every process can read whole into the live objects; return
    (its step, this process's carries by canvas side, empty to start afresh). The processes
    agree on which, or one would train from another step than the rest."""
    for path, state in candidates:
        try:
            snap, problem = ckpt.read_snapshot(path, state, model, ema, optimizer, d.rank, d.world_size, carry_like), None
        except CheckpointError as e:
            snap, problem = None, str(e)
        if any_process(problem is not None, d, device):
            say(f"{problem or f'{path}: another process could not read its part'}; trying the checkpoint before it")
            continue
        return snap.step, apply_snapshot(snap, model, ema, optimizer, device)
    raise CheckpointError(f"{run_dir}: no usable checkpoint to resume from (every one is unreadable, see above)")


def apply_snapshot(snap: ckpt.Snapshot, model, ema, optimizer, device) -> dict[int, Carry]:
    """Put a checked checkpoint into the live objects; return the carries by canvas side (empty:
    start afresh)."""
    model.load_state_dict(snap.model)
    if snap.ema is not None:
        ema.load_state_dict(snap.ema)
    optimizer.load_state_dict(snap.optimizer)
    if snap.carry is None:
        return {}
    tensors = dict(snap.carry)
    torch.set_rng_state(tensors.pop("torch_rng"))
    cuda_rng = tensors.pop("cuda_rng", None)
    if cuda_rng is not None and device.type == "cuda":
        torch.cuda.set_rng_state(cuda_rng)
    return {side: Carry(**{k: v.to(device) for k, v in fields.items()}) for side, fields in ckpt.split_carries(tensors).items()}


def fresh_carry_like(model: TRM, local_batch: int, device) -> Callable[[int], dict[str, torch.Tensor]]:
    """side -> the tensors of a fresh carry of this run on that canvas (what a checkpoint's must match)."""

    def like(side: int) -> dict[str, torch.Tensor]:
        cells = torch.zeros(local_batch, side, side, dtype=torch.long, device=device)
        batch = {"inputs": cells, "labels": cells, "puzzle_ids": torch.zeros(local_batch, dtype=torch.long, device=device)}
        return ckpt.carry_tensors(model.initial_carry(batch))

    return like


def training_stream(cfg: PretrainConfig, puzzles: list[Puzzle], pairs: dict) -> TrainStream | SizedStream:
    """The recipe's stream: grid-sized canvases (cfg.canvas_sides()) or the one fixed canvas."""
    sides = cfg.canvas_sides()
    if sides is None:
        return TrainStream(puzzles, pairs, cfg.model.canvas, cfg.run.seed, cfg.data.translate, sampling=cfg.data.sampling)
    return SizedStream(puzzles, pairs, sides, cfg.run.seed, cfg.data.translate, sampling=cfg.data.sampling)


def compiled(model: TRM, cfg: PretrainConfig):
    """The compiled network, allowed one graph per canvas side (and the evaluation's)."""
    sides = cfg.canvas_sides() or (cfg.model.canvas,)
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 2 * len(sides) + 4)
    return torch.compile(model)


def trim_metrics(path: Path, step: int) -> None:
    """Drop the records past step, which a run killed after its last checkpoint had logged and
    the resumed run logs again; rewritten atomically, and only where there is something to drop."""
    if not path.exists():
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines.pop()  # half a record: the kill came mid-write

    def past(line: str) -> bool:
        try:
            record = json.loads(line)
        except ValueError:
            return False
        return isinstance(record, dict) and isinstance(record.get("step"), (int, float)) and record["step"] > step

    kept = [line for line in lines if not past(line)]
    if len(kept) != len(text.splitlines()):
        atomic_write_text(path, "".join(kept))


# --- stopping ------------------------------------------------------------------------------


class Interrupted(BaseException):
    """A stop signal during a phase that writes nothing (the final evaluation): end it at once."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopRequests:
    """SIGINT (Ctrl-C) and SIGTERM while training. The first asks the loop to stop after the
    current step and write a checkpoint; later ones are noted only, so that a second Ctrl-C
    cannot cut the checkpoint short. With immediate set, a signal raises Interrupted instead.
    Handlers can only be installed from the main thread; elsewhere signals keep their defaults."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum: int | None = None
        self.immediate = False
        self._previous: dict = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum
        if self.immediate:
            raise Interrupted(signum)

    @property
    def requested(self) -> bool:
        return self.signum is not None


def resume_hint(run_dir: Path) -> str:
    return f"arcsolver pretrain --out {shlex.quote(str(run_dir))} --resume"


# --- progress ------------------------------------------------------------------------------

class Logger:
    """Rank 0 only: a rich progress bar (plain lines off a terminal) and metrics.jsonl."""

    def __init__(self, run_dir: Path, total: int, start: int, enabled: bool, console=None):
        from rich import get_console

        self.enabled = enabled
        self.run_dir = run_dir
        self.path = run_dir / "metrics.jsonl"
        self.console = console or get_console()
        self.progress = None
        self.total, self.step, self.start, self.status = total, start, start, ""
        self.started = time.monotonic()
        self.heartbeat = Heartbeat(self.console if enabled else None)
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("[bold]pretrain"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"), console=self.console, transient=False,
            )
            self.task = self.progress.add_task("steps", total=total, completed=start, status="")
            self.progress.start()

    def log(self, record: dict) -> None:
        if not self.enabled:
            return
        with reported_writes(self.path, "the records and checkpoints already there are intact; free space, then "
                                        f"resume with `{resume_hint(self.run_dir)}`"):
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def advance(self, step: int, status: str | None = None, total: int | None = None) -> None:
        self.step, self.total = step, total or self.total
        self.status = self.status if status is None else status
        if self.progress is not None:
            fields = {} if status is None else {"status": status}
            self.progress.update(self.task, completed=step, total=total, **fields)

    def tick(self, step: int) -> None:
        """A step is done: off a terminal, a plain line every HEARTBEAT_S seconds."""
        self.step = step

        def line() -> str:
            elapsed = time.monotonic() - self.started
            left = (self.total - step) * elapsed / max(step - self.start, 1)
            status = f": {self.status}" if self.status else ""  # none before the first logged step
            return f"pretrain step {step}/{self.total}{status}; {duration(elapsed)} elapsed, about {duration(left)} left"

        self.heartbeat(line)

    def finish(self, step: int, total: int) -> None:
        """The bar's last state: where the run ended, out of total."""
        self.advance(step, total=total)

    def print(self, text: str) -> None:
        if self.enabled:
            self.console.print(one_line(text), highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def paced_chunks(items: list, most: int, first: int = 32):
    """Consecutive slices of items, at most `most` long, sized so that each is done in a few
    seconds: progress can then be told between them at least every HEARTBEAT_S. They start at
    `first` items and double while a slice takes under a sixth of HEARTBEAT_S (on a GPU, up to
    `most` within a few slices), and halve when one takes over a third (a slow CPU)."""
    size, start = min(first, most), 0
    while start < len(items):
        began = time.monotonic()
        yield items[start : start + size]
        start += size
        took = time.monotonic() - began
        if took < arcsolver.console.HEARTBEAT_S / 6:
            size = min(size * 2, most)
        elif took > arcsolver.console.HEARTBEAT_S / 3:
            size = max(size // 2, 1)


def evaluate_heldout(model: TRM, ema: EMA | None, puzzles: list[Puzzle], heldout: list[Task], cfg: PretrainConfig,
                     dtype, d: Dist, device: torch.device, max_versions: int | None = None,
                     on_progress: Callable[[int, int], None] | None = None) -> dict:
    """pass@1/pass@2 on the held-out test inputs, over their augmented versions, voted.

    Every process scores its own share of the tasks; the sums are combined. The versions voted
    per test input are the fewer of max_versions and eval.max_versions (None: no limit).
    on_progress(done, total) hears of this process's queries after every batch.
    """
    limits = [v for v in (max_versions, cfg.eval.max_versions) if v is not None]
    versions: dict[str, list] = {}
    for pid, puzzle in enumerate(puzzles, start=1):
        versions.setdefault(puzzle.task.id, []).append((pid, puzzle.augmentation))
    mine = heldout[d.rank :: d.world_size]
    tasks = {t.id: t for t in mine}
    queries = [q for t in mine for q in queries_for(t, versions[t.id], min(limits, default=None))]
    was_training = model.training
    model.eval()
    preds = []
    try:
        with ema.applied(model) if ema is not None else contextlib.nullcontext():
            for chunk in paced_chunks(queries, cfg.eval.batch_size):
                preds += predict(model, tasks, chunk, cfg.canvas_sides() or cfg.model.canvas, cfg.eval.batch_size, dtype)[0]
                if on_progress is not None:
                    on_progress(len(preds), len(queries))
    finally:
        model.train(was_training)
    scores = heldout_scores(tasks, vote_queries(queries, preds))
    n = scores["tasks"]
    sums = sum_over_processes([scores["pass@1"] * n, scores["pass@2"] * n, n], d, device)
    return {"pass@1": sums[0] / max(sums[2], 1), "pass@2": sums[1] / max(sums[2], 1), "tasks": int(sums[2])}


# --- checkpoints ---------------------------------------------------------------------------


def save_checkpoint(run_dir, step, model, ema, optimizer, carries, cfg, d: Dist, keep: int, device) -> Path:
    """Every process stages its part, then the main process publishes the checkpoint. A write
    that fails in any process (a full disk) is one error line in all of them, with the staged
    part removed and the checkpoints already published intact."""
    barrier(d)
    staging, problem = None, None
    try:
        staging = ckpt.staging_dir(run_dir, step)
        ckpt.write_rank_part(staging, d.rank, carries)
        if d.is_main:
            state = {"step": step, "world_size": d.world_size, "config": cfg.model_dump(mode="json")}
            ckpt.write_main_part(staging, model, ema, optimizer, state)
    except (OSError, SafetensorError) as e:
        problem = write_problem(e)
    if not any_process(problem is not None, d, device) and d.is_main:
        try:
            ckpt.publish(staging, step, keep)
        except OSError as e:
            problem = write_problem(e)
    if any_process(problem is not None, d, device):
        if d.is_main and staging is not None:
            shutil.rmtree(staging, ignore_errors=True)  # give back the space a partial checkpoint took
        where = Path(run_dir) / ckpt.CHECKPOINTS
        raise ArcsolverError(
            f"{where}: cannot write the checkpoint of step {step} ({problem or 'failed in another process'}); "
            f"the checkpoints already there are intact: free space, then `{resume_hint(Path(run_dir))}`")
    return Path(run_dir) / ckpt.CHECKPOINTS / f"{ckpt.PREFIX}{step:07d}"


def write_run_files(run_dir: Path, cfg: PretrainConfig, puzzles: list[Puzzle], step: int) -> None:
    """config.json, puzzles.txt and metrics.jsonl trimmed to step: the main process, once every
    check of a (resumed) run has passed."""
    with reported_writes(run_dir, "the files already there are intact"):
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / "config.json", cfg.model_dump(mode="json"))
        # Which task version each puzzle-embedding row belongs to: the solve stage needs it.
        atomic_write_text(run_dir / "puzzles.txt", "\n".join(p.name for p in puzzles) + "\n")
        trim_metrics(run_dir / "metrics.jsonl", step)


# --- the run -------------------------------------------------------------------------------


def pretrain(cfg: PretrainConfig, run_dir: Path, resume: bool = False, console=None) -> dict:
    """Train a TRM per the recipe into run_dir; returns the final held-out scores and step.

    With resume, the newest checkpoint every process can read is continued; settings other than
    the run's length, logging, evaluation and hardware use must be the checkpoint's. SIGINT or
    SIGTERM ends the run after the current step with a checkpoint; the result then holds the
    signal's number under "signal".
    """
    from rich import get_console

    run_dir = Path(run_dir)
    device = resolve_device(cfg.run.device)
    d = init_distributed(device.type)
    if device.type == "cuda":
        device = torch.device("cuda", d.local_rank)
    say = (lambda text: (console or get_console()).print(one_line(text), highlight=False, soft_wrap=True)) \
        if d.is_main else (lambda text: None)
    candidates = readable_checkpoints(run_dir, cfg, say) if resume else []
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    dtype = resolve_dtype(cfg.run.dtype, device)
    limit_gpu_memory(cfg.run.gpu_memory_gb, device)
    if cfg.optim.global_batch_size % d.world_size:
        raise ConfigError(f"optim.global_batch_size {cfg.optim.global_batch_size} is not divisible by {d.world_size} processes")
    seed_everything(cfg.run.seed)  # the same initial weights in every process

    train_tasks, heldout = select_tasks(cfg)
    puzzles = build_puzzles(train_tasks + heldout, cfg.data.n_augmentations, cfg.run.seed, cfg.data.fixed_colours)
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"n_puzzle_ids": len(puzzles) + 1})})
    stream = training_stream(cfg, puzzles, trainable_pairs(train_tasks, heldout))
    total_steps = cfg.total_steps(stream.examples_per_epoch)

    model = TRM(cfg.model).to(device)
    model.train()
    torch.manual_seed(cfg.run.seed + d.rank)  # but each process its own exploration draws
    optimizer = build_optimizer(model, cfg.optim.optimizer, cfg.optim.lr, cfg.optim.betas, cfg.optim.weight_decay)
    ema = EMA(model, cfg.optim.ema_rate) if cfg.optim.ema_rate else None
    step, carries = 0, {}
    if resume:
        local = cfg.optim.global_batch_size // d.world_size
        step, carries = restore_newest(run_dir, candidates, model, ema, optimizer, fresh_carry_like(model, local, device),
                                       d, device, say)
    forward = compiled(model, cfg) if cfg.run.compile else model

    # Every check has passed: only now is the run directory written.
    if d.is_main:
        write_run_files(run_dir, cfg, puzzles, step)
    barrier(d)
    logger = Logger(run_dir, total_steps, step, d.is_main, console)
    logger.print(
        f"{task_counts(train_tasks, heldout)}; {len(puzzles)} puzzles, "
        f"{len(stream)} examples; {schedule(cfg, stream, total_steps)}; {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; "
        f"{device} {str(dtype).removeprefix('torch.')}, {d.world_size} process(es)"
        + (f"; resumed at step {step}" if step else "")
    )

    local_batch = cfg.optim.global_batch_size // d.world_size
    micro = choose_micro_batch(cfg.optim.micro_batch_size, model, local_batch, dtype, device, cfg.run.gpu_memory_gb,
                               logger.print)
    stepper = Stepper(model, forward, optimizer, ema, cfg.optim, d, dtype, micro, on_message=logger.print)

    started, window_start, window_steps, first_step = time.monotonic(), time.monotonic(), 0, step
    window_cells = 0
    scores: dict = {}
    stops = StopRequests()
    try:
        with stops:
            while step < total_steps:
                # Every process stops at the same step, or one would wait alone at the next collective.
                time_up = bool(cfg.run.time_limit_s) and time.monotonic() - started > cfg.run.time_limit_s
                if any_process(time_up or stops.requested, d, device):
                    signum = agreed_signal(stops, d, device)
                    if signum is not None:
                        return stop_on_signal(run_dir, step, model, ema, optimizer, carries, cfg, d, device, logger, signum,
                                              total_steps)
                    logger.print(f"time limit of {cfg.run.time_limit_s:.0f}s reached at step {step}")
                    total_steps = step
                    break
                # Each canvas side has its own carry: a sample's y and z only meet its own canvas.
                side = stream.side_of(step)
                batch = to_device(stream.batch(step, cfg.optim.global_batch_size, d.rank, d.world_size), device)
                carry = carries.get(side) or model.initial_carry(batch)
                scale = warmup_factor(step, cfg.optim.warmup_steps)
                carries[side], loss, metrics, grad_norm = stepper.step(carry, batch, scale)
                step += 1
                window_steps += 1
                window_cells += side * side

                if step % cfg.run.log_every == 0 or step == total_steps:
                    values = {k: float(v) for k, v in metrics.items()} | {"loss": float(loss.detach())}
                    values = mean_over_processes(values, d, device)
                    elapsed = time.monotonic() - window_start
                    samples_per_s = window_steps * cfg.optim.global_batch_size / max(elapsed, 1e-9)
                    record = {"step": step, **values, "lr": cfg.optim.lr * scale, "samples_per_s": samples_per_s,
                              "tokens_per_s": window_cells * cfg.optim.global_batch_size / max(elapsed, 1e-9), "time_s": time.monotonic() - started}
                    if grad_norm is not None:
                        record["grad_norm"] = grad_norm
                    if device.type == "cuda":
                        record["gpu_peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
                    logger.log(record)
                    # Under a time limit the run ends at the step the clock allows: show that as the total.
                    total = None
                    if cfg.run.time_limit_s:
                        rate = (step - first_step) / max(time.monotonic() - started, 1e-9)
                        total = min(total_steps, step + round(rate * max(cfg.run.time_limit_s - (time.monotonic() - started), 0)))
                    logger.advance(step, total=total, status=f"loss {values['loss']:.3f} exact {values['exact_accuracy']:.3f} "
                                   f"halt@{values.get('mean_halt_steps', 0):.1f} {samples_per_s:.0f} samples/s")
                    window_start, window_steps, window_cells = time.monotonic(), 0, 0
                logger.tick(step)

                if step % cfg.run.checkpoint_every == 0 and step < total_steps:
                    save_checkpoint(run_dir, step, model, ema, optimizer, carries, cfg, d, cfg.run.keep_checkpoints, device)
                if cfg.eval.every and step % cfg.eval.every == 0 and step < total_steps and heldout:
                    scores = evaluate_heldout(model, ema, puzzles, heldout, cfg, dtype, d, device, cfg.eval.periodic_max_versions,
                                              eval_progress(logger, f"step {step}: held-out evaluation", d))
                    logger.log({"step": step, **{f"heldout_{k}": v for k, v in scores.items()}})
                    logger.print(f"step {step}: held-out pass@1 {scores['pass@1']:.3f} pass@2 {scores['pass@2']:.3f} ({scores['tasks']} tasks)")

            logger.finish(step, total_steps)
            saved = save_checkpoint(run_dir, step, model, ema, optimizer, carries, cfg, d, cfg.run.keep_checkpoints, device)
            logger.close()
            signum = agreed_signal(stops, d, device)
            if signum is not None:  # the signal came while the checkpoint was written
                return stopped(run_dir, step, saved, logger, signum, d)
            if heldout:
                # Nothing is written until its end: a signal ends the evaluation at once.
                stops.immediate = True
                logger.print(f"held-out evaluation of {len(heldout)} tasks")
                scores = evaluate_heldout(model, ema, puzzles, heldout, cfg, dtype, d, device,
                                          on_progress=eval_progress(logger, "held-out evaluation", d))
                stops.immediate = False
                logger.log({"step": step, **{f"heldout_{k}": v for k, v in scores.items()}})
            barrier(d)
    except Interrupted as e:
        logger.print(f"stopped by {signal.Signals(e.signum).name} during the final held-out evaluation; the checkpoint of "
                     f"step {step} is complete: `{resume_hint(run_dir)}` evaluates it")
        return {"step": step, "signal": e.signum}
    finally:
        logger.close()
        shutdown(d)
    return {"step": step, **scores}


def eval_progress(logger: Logger, what: str, d: Dist) -> Callable[[int, int], None]:
    """An on_progress for evaluate_heldout: plain lines off a terminal, as the steps have."""
    started = time.monotonic()
    whose = " of this process" if d.enabled else ""  # the main process tells its own share

    def on_progress(done: int, total: int) -> None:
        logger.heartbeat(lambda: f"{what}: {done}/{total} queries{whose}, {duration(time.monotonic() - started)}")

    return on_progress


def agreed_signal(stops: StopRequests, d: Dist, device) -> int | None:
    """The signal that stops the run, the same in every process (SIGINT if any process got a
    Ctrl-C, else SIGTERM if any got that), or None when none did. Every process must call it."""
    got = sum_over_processes([float(stops.signum == signal.SIGINT), float(stops.signum == signal.SIGTERM)], d, device)
    return signal.SIGINT if got[0] else signal.SIGTERM if got[1] else None


def stop_on_signal(run_dir, step, model, ema, optimizer, carries, cfg, d, device, logger, signum, total_steps) -> dict:
    """The run was asked to stop: checkpoint the current step and say how to go on."""
    logger.finish(step, total_steps)
    saved = save_checkpoint(run_dir, step, model, ema, optimizer, carries, cfg, d, cfg.run.keep_checkpoints, device)
    logger.close()
    return stopped(run_dir, step, saved, logger, signum, d)


def stopped(run_dir: Path, step: int, saved: Path, logger: Logger, signum: int, d: Dist) -> dict:
    """Say where the run stopped and the command that continues it; the result pretrain returns."""
    launch = " under the same torchrun launch" if d.enabled else ""
    logger.print(f"stopped by {signal.Signals(signum).name} at step {step}; checkpoint {saved} written; "
                 f"continue with: {resume_hint(run_dir)}{launch}")
    return {"step": step, "signal": signum}
