"""arcsolver beside the TRM reference code, on one device: speed and learning curves.

    git clone https://github.com/SamsungSAILMontreal/TinyRecursiveModels
    pip install einops
    python benchmarks/reference.py --reference TinyRecursiveModels [--device cpu|cuda] [--size small|paper]

Both networks are built with the same settings and the same initial weights (the reference's
random initialisation, copied into arcsolver's TRM by arcsolver.reference.weights), then driven on
the same batches of augmented ARC-AGI-1 training examples:

- Equality: one supervision step of each on one batch; the largest difference of the logits,
  halting logits and next y and z.
- Training throughput: the reference on its 30x30 canvas; arcsolver on the same 30x30 canvas
  (rope1d, the same computation) and on grid-sized canvases (rope2d), each side timed on its own
  with full batches and weighed by the mix's share of examples per side. Examples/s and ratios,
  from interleaved windows.
- Inference throughput: all N_sup supervision steps, no gradients, reported the same way.
- Learning curves: the reference, arcsolver at 30x30 and arcsolver sized, from the same weights
  on the same stream, for --curve-steps steps, for two seeds. Loss and exact accuracy at equal
  steps and at equal wall time, and whether the reference and arcsolver agree within the spread
  between seeds. arcsolver draws its halting-exploration minimum per step as the reference does
  (--halt-exploration per_sample gives its earlier once-per-sample draw, to compare the two).
- The real loop: `arcsolver pretrain` itself, sized and at 30x30, time-limited; its steady
  samples/s from metrics.jsonl (the records after the first, whose window holds start-up).

The reference's training script needs CUDA and its adam-atan2 kernel; here its model and loss
head are driven directly, with arcsolver's AdamAtan2 (whose step equals that kernel's; tests/
engine/test_optim.py) on its weights and its own sign-SGD on its puzzle embeddings. Its warm-up counts
steps as arcsolver's does. Each side uses its own default for compilation: compiled on CUDA (the
reference's pretrain.py compiles unless DISABLE_COMPILE is set; arcsolver's GPU recipes set
run.compile), eager on a CPU (the reference cannot train on one; arcsolver's CPU recipe runs
eager). --compile/--no-compile overrides both.

Every ratio comes from interleaved windows (benchmarks/interleave.py): the reference, arcsolver at
30x30 and arcsolver sized take turns, --windows times, and a ratio is the median of the rounds'
ratios with their range. A slow drift of the machine moves both sides of a round alike and leaves
its ratio; when the rounds disagree (fewer than half within 10% of their median ratio), a load came
and went while measuring: the line says so instead of giving a figure. Each side's own drift is
printed beside it. The last line reads
`training speed-up vs reference: X.XX× (median of N interleaved windows, range A-B×) (DEVICE,
DTYPE, SIZE)`: arcsolver's sized training step against the reference's, same model and batch.
The real loop's samples/s, measured on its own, is printed and never divided by anything.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from arcsolver.config import MAX_BATCH, MAX_SECONDS, MAX_STEPS, MAX_VERSIONS
from arcsolver.data.encoding import CANVAS
from arcsolver.data.stream import SizedStream
from arcsolver.engine.device import resolve_dtype
from arcsolver.model.trm import TRM, TRMConfig
from arcsolver.train.plan import steady_samples_per_s

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arguments import Parser, whole  # noqa: E402  (benchmarks/arguments.py, beside this script)
from beside_reference import (  # noqa: E402  (benchmarks/beside_reference.py: the two trainers driven alike)
    OurTrainer,
    ReferenceTrainer,
    arc1_stream,
    build_equal,
    compare_one_step,
    import_reference,
    on_device,
    sync,
    table_rows,
)
from interleave import interleave  # noqa: E402  (benchmarks/interleave.py, beside this script)

# The two sizes. paper: the paper's ARC network, on a GPU. small: a
# network that trains a few hundred steps of 30x30 batches on two CPU cores within minutes; its
# shape keeps the paper's where it can (2 layers, N_sup=16) and cuts the costly things (width,
# heads, T and n).
SIZES = {
    "paper": dict(
        model=dict(hidden_size=512, n_heads=8, n_layers=2, n_latent_steps=4, n_recursions=3, n_supervision=16),
        # The paper's global batch of 768 needs ~170 GB of activations at 30x30: the reference split
        # it over GPUs. One GPU takes a third of it per step (arcsolver's auto micro-batch on an H100).
        batch=256,
        lr=1e-4,
        throughput_steps=8,
        curve_steps=300,
        loop_seconds=120,
    ),
    "small": dict(
        model=dict(hidden_size=64, n_heads=2, n_layers=2, n_latent_steps=2, n_recursions=2, n_supervision=16),
        batch=8,
        lr=1e-3,
        throughput_steps=3,
        curve_steps=200,
        loop_seconds=60,
    ),
}


# --- throughput ------------------------------------------------------------------------


def window(run, batches: list[dict], device) -> Callable[[], float]:
    """One timed window of run over batches: returns the examples done (interleave times it)."""

    def run_window() -> float:
        for b in batches:
            run(b)
        sync(device)
        return sum(len(b["inputs"]) for b in batches)

    return run_window


def mix_window(run, by_side: dict[int, list[dict]], shares: dict[int, float], device) -> Callable[[], float]:
    """One window over every canvas side's batches, its rate that of the mix: each side timed on
    its own and weighed by its share of the examples. Returns the examples the window's time would
    have done at the mix's rate, so that interleave's rate is the mix's."""

    def run_window() -> float:
        started, per_example = time.perf_counter(), 0.0
        for side, batches in by_side.items():
            begun = time.perf_counter()
            for b in batches:
                run(b)
            sync(device)
            per_example += shares[side] * (time.perf_counter() - begun) / sum(len(b["inputs"]) for b in batches)
        return (time.perf_counter() - started) / per_example

    return run_window


def throughput(args, ref, cfg: TRMConfig, stream: SizedStream, device, dtype) -> dict:
    """Training and inference examples/s: reference 30x30, arcsolver 30x30, arcsolver sized
    (each side on its own, weighed by its share of the mix's examples), in --windows interleaved
    windows (reference, 30x30, sized, reference, ...): each ratio is the median of its windows'."""
    n = args.throughput_steps
    shares = dict(zip((int(s) for s in stream.sides), stream.probabilities))
    by_side = {
        side: [sub.batch(k, args.batch) for k in range(n)] for side, sub in stream.streams.items() if side in shares
    }
    # The reference and arcsolver at 30x30 see every side's batches padded, in the mix's proportions
    # (a 30x30 step costs the same whatever the grids, so which examples does not matter).
    mixed = [b for side in by_side for b in by_side[side][: max(1, round(n * shares[side]))]][:n]
    out: dict[str, dict] = {}
    for mode in ("training", "inference"):
        head, fixed, sized = build_equal(ref, cfg, table_rows(stream), args.batch, device, dtype, seed=0)
        ref_t = ReferenceTrainer(ref, head, args.lr, 1, device, args.compile)
        fixed_t = OurTrainer(fixed, args.lr, 1, dtype, args.compile)
        sized_t = OurTrainer(sized, args.lr, 1, dtype, args.compile)
        call = (lambda t: t.step) if mode == "training" else (lambda t: t.predict)
        mixed_30 = [on_device(b, device, CANVAS) for b in mixed]
        sized_batches = {side: [on_device(b, device) for b in bs] for side, bs in by_side.items()}
        # One untimed warm-up of each (compilation, allocator), then the windows in turn.
        for t, b in (
            (ref_t, mixed_30[0]),
            (fixed_t, mixed_30[0]),
            *((sized_t, bs[0]) for bs in sized_batches.values()),
        ):
            call(t)(b)
        sync(device)
        result = interleave(
            {
                "reference 30x30": window(call(ref_t), mixed_30, device),
                "arcsolver 30x30": window(call(fixed_t), mixed_30, device),
                "arcsolver sized": mix_window(call(sized_t), sized_batches, shares, device),
            },
            args.windows,
        )
        ratios = {name: result.ratio(name, "reference 30x30") for name in ("arcsolver 30x30", "arcsolver sized")}
        out[mode] = {
            "reference_30x30": result.median_rate("reference 30x30"),
            "arcsolver_30x30": result.median_rate("arcsolver 30x30"),
            "arcsolver_sized": result.median_rate("arcsolver sized"),
            "window_rates": result.rates,
            "ratios": {
                name: {"median": r.median, "ratios": r.ratios, "quiet": r.quiet, "drifts": r.drifts}
                for name, r in ratios.items()
            },
        }
        print(
            f"{mode} examples/s, median of {args.windows} interleaved windows: "
            + " | ".join(f"{name} {result.median_rate(name):.2f}" for name in result.rates),
            flush=True,
        )
        for name, r in ratios.items():
            print(f"  {mode}, {name} vs reference 30x30: {r.text()} ({r.drift_text()})", flush=True)
        out[mode]["speed_up"] = ratios["arcsolver sized"]
    return out


# --- learning curves -------------------------------------------------------------------


def curves(args, ref, cfg: TRMConfig, device, dtype) -> dict:
    """Per seed: loss, exact accuracy and wall time at every step of the reference, arcsolver at
    30x30 and arcsolver sized, from the same weights on the same stream."""
    warmup = max(1, args.curve_steps // 10)
    results: dict[int, dict] = {}
    for seed in range(args.seeds):
        stream = arc1_stream(seed, args.augmentations)
        batches = [stream.batch(k, args.batch) for k in range(args.curve_steps)]
        head, fixed, sized = build_equal(ref, cfg, table_rows(stream), args.batch, device, dtype, seed=seed)
        runs = {
            "reference": (ReferenceTrainer(ref, head, args.lr, warmup, device, args.compile), CANVAS),
            "arcsolver_30x30": (OurTrainer(fixed, args.lr, warmup, dtype, args.compile), CANVAS),
            "arcsolver_sized": (OurTrainer(sized, args.lr, warmup, dtype, args.compile), None),
        }
        results[seed] = {}
        for name, (trainer, side) in runs.items():
            torch.manual_seed(1000 + seed)  # the halting exploration draws
            losses, exact, times = [], [], []
            elapsed = 0.0
            for b in batches:
                tensors = on_device(b, device, side)
                sync(device)
                start = time.perf_counter()
                loss, acc = trainer.step(tensors)
                sync(device)
                elapsed += time.perf_counter() - start
                losses.append(loss.item())
                exact.append(acc.item())
                times.append(elapsed)
            results[seed][name] = {"loss": losses, "exact": exact, "time": times}
            print(
                f"seed {seed} {name}: {len(batches)} steps in {elapsed:.0f} s, "
                f"loss {np.mean(losses[:10]):.3f} -> {np.mean(losses[-len(losses) // 5 :]):.3f}",
                flush=True,
            )
    return results


def smooth(values: list[float], window: int) -> np.ndarray:
    """The mean over the last `window` steps at each step (fewer at the start)."""
    v = np.asarray(values, dtype=np.float64)
    c = np.concatenate([[0.0], np.cumsum(v)])
    i = np.arange(1, len(v) + 1)
    return (c[i] - c[np.maximum(i - window, 0)]) / np.minimum(i, window)


def at_time(curve: dict, t: float, window: int) -> tuple[float, int] | None:
    """(smoothed loss, steps done) of a curve at wall time t, or None once it has ended."""
    times = np.asarray(curve["time"])
    if t > times[-1] * 1.0001:
        return None
    k = max(int(np.searchsorted(times, t, side="right")) - 1, 0)
    return float(smooth(curve["loss"], window)[k]), k + 1


def report_curves(results: dict, window: int) -> dict:
    """Print the curves at equal steps and equal time, and whether the reference and arcsolver
    at 30x30 agree within the spread between seeds (smoothed loss, after the first window)."""
    names = ["reference", "arcsolver_30x30", "arcsolver_sized"]
    steps = len(results[0]["reference"]["loss"])
    marks = sorted({min(steps, max(window, steps * q // 4)) for q in (1, 2, 3, 4)})
    print(f"\nlearning curves (loss and exact accuracy, mean over the last {window} steps)")
    print("seed  run              " + "".join(f"  step {m:>4}        " for m in marks))
    for seed, runs in results.items():
        for name in names:
            loss, exact = smooth(runs[name]["loss"], window), smooth(runs[name]["exact"], window)
            print(f"{seed:>4}  {name:<16} " + "".join(f"  {loss[m - 1]:.3f} / {exact[m - 1]:.3f}  " for m in marks))
    print("\nat equal wall time (smoothed loss, steps done; - where a run had ended)")
    for seed, runs in results.items():
        ends = sorted(
            {runs["arcsolver_sized"]["time"][-1], runs["reference"]["time"][-1] / 2, runs["reference"]["time"][-1]}
        )
        cells = []
        for t in ends:
            values = [at_time(runs[n], t, window) for n in names]
            cells.append(f"{t:5.0f} s: " + " / ".join("-" if v is None else f"{v[0]:.3f} ({v[1]})" for v in values))
        print(f"seed {seed} (reference / arcsolver 30x30 / arcsolver sized)  " + "   ".join(cells))

    seeds = list(results)
    smoothed = {(s, n): smooth(results[s][n]["loss"], window)[window - 1 :] for s in seeds for n in names}
    gap = max(float(np.abs(smoothed[s, "reference"] - smoothed[s, "arcsolver_30x30"]).max()) for s in seeds)
    spread = 0.0
    for a in range(len(seeds)):
        for b in range(a + 1, len(seeds)):
            for n in ("reference", "arcsolver_30x30"):
                spread = max(spread, float(np.abs(smoothed[seeds[a], n] - smoothed[seeds[b], n]).max()))
    agree = len(seeds) > 1 and gap <= spread
    print(
        f"learning curves agree within the seed spread: {'yes' if agree else 'no'} "
        f"(max loss gap {gap:.3f}, seed spread {spread:.3f})"
    )
    return {"max_loss_gap": gap, "seed_spread": spread, "agree": agree}


# --- the real loop -------------------------------------------------------------------


def real_loop(args, cfg: TRMConfig, layout: str, device, dtype_name: str) -> float | None:
    """Steady samples/s of `arcsolver pretrain` on the ARC-AGI-1 training mix with this model and
    batch, time-limited: the median of its metrics.jsonl records after the first."""
    run = Path(tempfile.mkdtemp()) / layout
    model = {k: v for k, v in cfg.model_dump().items() if k in SIZES[args.size]["model"]}
    overrides = [f"model.{k}={v}" for k, v in model.items()] + [
        "model.positions=" + ('"rope1d"' if layout == "fixed" else '"rope2d"'),
        "model.canvas=30",
        "model.puzzle_emb_len=16",
        'data.train_sets=["arc1/training"]',
        "data.heldout_sets=[]",
        "data.max_side=30",
        f"data.n_augmentations={args.augmentations}",
        f"optim.global_batch_size={args.batch}",
        f"optim.lr={args.lr}",
        "run.steps=1000000",
        f"run.time_limit_s={args.loop_seconds}",
        "run.checkpoint_every=1000000",
        f"run.log_every={args.loop_log_every}",
        f"run.device={'cuda' if torch.device(device).type == 'cuda' else 'cpu'}",
        f'run.dtype="{dtype_name}"',
        f"run.compile={'true' if args.compile else 'false'}",
        "eval.max_versions=1",
    ]
    recipe = ["--recipe", "arc1"] if args.size == "paper" else []
    command = [sys.executable, "-m", "arcsolver", "pretrain", *recipe, "--out", str(run)]
    for o in overrides:
        command += ["--set", o]
    env = dict(os.environ, COLUMNS="200")
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    steady = steady_samples_per_s(run / "metrics.jsonl")
    if steady is None:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        print(f"real loop ({layout}): too few records to measure: {' | '.join(tail)}")
        return None
    print(f"real loop, arcsolver pretrain ({layout} canvases): {steady:.2f} samples/s", flush=True)
    return steady


# --- main ----------------------------------------------------------------------------


def machine(device) -> str:
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or "CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {torch.get_num_threads()} threads"


def cpu_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return ""
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return " ".join(f for f in wanted if f" {f}" in flags)


def main() -> None:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, help="a clone of the TRM reference code (required but with --report)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--size", default="small", choices=list(SIZES))
    parser.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float32"])
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="default: on CUDA only")
    parser.add_argument("--batch", type=whole(1, MAX_BATCH), help="per step (default: the size's)")
    parser.add_argument(
        "--throughput-steps", type=whole(1, MAX_STEPS), help="timed steps per canvas side in each window"
    )
    parser.add_argument("--windows", type=whole(1, 1000), default=5, help="interleaved timing windows of each side")
    parser.add_argument("--curve-steps", type=whole(1, MAX_STEPS), help="training steps per learning curve")
    parser.add_argument("--seeds", type=whole(1, 1000), default=2)
    parser.add_argument(
        "--halt-exploration",
        default="per_step",
        choices=["per_step", "per_sample"],
        help="arcsolver's halting-exploration draw (the reference's is per_step)",
    )
    parser.add_argument(
        "--augmentations", type=whole(1, MAX_VERSIONS), default=8, help="augmented versions per task in the stream"
    )
    parser.add_argument(
        "--loop-seconds", type=whole(0, MAX_SECONDS), help="time limit of each real-loop run (0: skip the real loop)"
    )
    parser.add_argument("--loop-log-every", type=whole(1, MAX_STEPS), default=5)
    parser.add_argument(
        "--loop-metrics",
        type=Path,
        help="take the real loop's rate from this run's metrics.jsonl instead of running one",
    )
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--skip", nargs="*", default=[], choices=["throughput", "curves", "loop"])
    parser.add_argument("--report", type=Path, help="print the learning-curve report of a --json file, and stop")
    args = parser.parse_args()
    if args.report:
        saved = json.loads(args.report.read_text())
        results = {int(seed): runs for seed, runs in saved["curve_values"].items()}
        steps = len(results[0]["reference"]["loss"])
        report_curves(results, window=max(5, steps // 10))
        return
    if args.reference is None:
        parser.error("--reference PATH is required: a clone of the TRM reference code")

    size = SIZES[args.size]
    for key in ("batch", "throughput_steps", "curve_steps", "loop_seconds"):
        if getattr(args, key) is None:
            setattr(args, key, size[key])
    args.lr = size["lr"]
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    if args.compile is None:
        args.compile = device.type == "cuda"
    dtype = resolve_dtype(args.dtype, device)
    dtype_name = "bf16" if dtype == torch.bfloat16 else "fp32"
    ref = import_reference(args.reference)
    stream = arc1_stream(0, args.augmentations)
    cfg = TRMConfig(**size["model"], canvas=CANVAS, halt_exploration=args.halt_exploration)
    n_params = sum(p.numel() for p in TRM(cfg, table_rows(stream)).parameters())
    print(
        f"{machine(device)} {cpu_flags()}; torch {torch.__version__}; {dtype_name}; compile {args.compile}\n"
        f"size {args.size}: TRM {n_params / 1e6:.2f}M parameters, hidden {cfg.hidden_size}, T={cfg.n_recursions} "
        f"n={cfg.n_latent_steps} N_sup={cfg.n_supervision}, batch {args.batch}; ARC-AGI-1 training mix, "
        f"{table_rows(stream) - 1} task versions; examples per side: "
        + ", ".join(f"{int(s)}: {p:.1%}" for s, p in zip(stream.sides, stream.probabilities)),
        flush=True,
    )

    out: dict = {"device": machine(device), "dtype": dtype_name, "size": args.size, "batch": args.batch}
    # In fp32 the two computations agree to rounding: a check that both run the same network.
    head, fixed, _ = build_equal(ref, cfg, table_rows(stream), args.batch, device, torch.float32, 0, random_rows=True)
    diffs = compare_one_step(head, fixed, on_device(stream.batch(0, args.batch), device, CANVAS), device)
    out["equal_step"] = diffs
    print(
        "one fp32 supervision step, same weights, max |difference|: "
        + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items())
    )
    del head, fixed

    if "throughput" not in args.skip:
        out["throughput"] = throughput(args, ref, cfg, stream, device, dtype)
    if "curves" not in args.skip:
        results = curves(args, ref, cfg, device, dtype)
        out["curves"] = report_curves(results, window=max(5, args.curve_steps // 10))
        out["curve_values"] = results
    loop = None
    if args.loop_metrics:
        loop = steady_samples_per_s(args.loop_metrics)
        out["loop"] = {"metrics": str(args.loop_metrics), "samples_per_s": loop}
        print(f"real loop, from {args.loop_metrics}: {loop if loop is None else round(loop, 2)} samples/s")
    elif "loop" not in args.skip and args.loop_seconds > 0:
        out["loop"] = {
            layout: real_loop(args, cfg, layout, device, "bfloat16" if dtype == torch.bfloat16 else "float32")
            for layout in ("auto", "fixed")
        }
        loop = out["loop"]["auto"]
    speed_up = out.get("throughput", {}).get("training", {}).pop("speed_up", None)
    if out.get("throughput"):
        out["throughput"]["inference"].pop("speed_up", None)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    if speed_up is not None:
        if loop:
            # The real loop ran apart from the reference's windows: its rate is printed, never divided.
            print(f"\n(real loop, sized: {loop:.2f} examples/s, measured on its own: no ratio is taken of it)")
        print(f"training speed-up vs reference: {speed_up.text()} ({machine(device)}, {dtype_name}, {args.size})")


if __name__ == "__main__":
    main()
