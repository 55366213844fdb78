"""Training throughput of one supervision step (forward, backward, optimiser), the paper's model.

    python benchmarks/throughput.py [--batch 16] [--steps 5] [--dtype bf16 fp32] [--device cpu]
    python benchmarks/throughput.py --pairs arc1/training [--batch 8] [--steps 14] [--compile]
    python benchmarks/throughput.py --pairs arc1/training --per-side [--batch 16] [--steps 2]

Prints samples/s and tokens/s (tokens = canvas cells, 900 at the paper's 30x30) per supervision
step, for each dtype. Model settings can be changed with --set, as in recipes (e.g.
--set hidden_size=128 --set canvas=10).

With --pairs, batches are drawn from the real pairs of a named set and run twice through the same
rope2d model: on grid-sized canvases (each batch from one side of CANVAS_SIDES, steps shared out
in proportion to the pairs of each side) and on the fixed 30x30 canvas. It prints examples/s and
real cells/s (the output grids' cells) of training steps and of inference (all N_sup steps, no
gradients), and the speed-up. With --per-side, each side is timed on its own with full batches
and the set's rate is weighed from the sides' rates by its share of pairs.
"""

from __future__ import annotations

import argparse
import time

import torch
from arguments import Parser, whole  # benchmarks/arguments.py, beside this script

from arcsolver.config import MAX_BATCH, MAX_STEPS, OptimConfig
from arcsolver.engine.optim import build_optimizer
from arcsolver.model.loss import trm_loss
from arcsolver.model.trm import TRM, TRMConfig
from arcsolver.recipes import apply_overrides

PUZZLE_ROWS = 1000  # rows of the benchmarked model's puzzle table; the batches draw their ids from them


def measure(
    cfg: TRMConfig, batch: int, steps: int, warmup: int, dtype: torch.dtype, device: torch.device, compile_: bool
) -> dict:
    torch.manual_seed(0)
    model = TRM(cfg, PUZZLE_ROWS).to(device).train()
    optim = OptimConfig()
    opt = build_optimizer(model, optim.optimizer, optim.lr, optim.betas, optim.weight_decay)
    forward = torch.compile(model) if compile_ else model
    shape = (batch, cfg.canvas, cfg.canvas)
    data = {
        "inputs": torch.randint(0, cfg.vocab_size, shape, device=device),
        "labels": torch.randint(0, cfg.vocab_size, shape, device=device),
        "puzzle_ids": torch.randint(1, PUZZLE_ROWS, (batch,), device=device),
    }
    carry = model.initial_carry(data)

    def step():
        nonlocal carry
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            carry, out = forward(carry, data)
        loss, _ = trm_loss(out.logits, out.labels, out.halt_logit, cfg.halt_loss_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.puzzle_emb.step(1e-2, 0.1)

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    return {"s_per_step": seconds, "samples_per_s": batch / seconds, "tokens_per_s": batch * cfg.canvas**2 / seconds}


def pairs_by_side(name: str) -> dict[int, list]:
    """The real pairs of a named set (demonstrations and test pairs with outputs), by the side of
    the smallest canvas of CANVAS_SIDES that holds both grids."""
    from arcsolver.data.encoding import fitting_side
    from arcsolver.data.loaders import load_tasks

    by_side: dict[int, list] = {}
    for task in load_tasks(name):
        for pair in task.train + tuple(p for p in task.test if p.output is not None):
            by_side.setdefault(fitting_side([pair.input.shape, pair.output.shape]), []).append(pair)
    return dict(sorted(by_side.items()))


def pair_batches(name: str, batch: int, steps: int, seed: int = 0) -> list[tuple[int, list]]:
    """`steps` batches of real pairs as (canvas side, pairs): each batch from one side, the
    steps shared out over sides in proportion to their pairs (largest remainders)."""
    import numpy as np

    by_side = pairs_by_side(name)
    total = sum(len(v) for v in by_side.values())
    quota = {side: steps * len(v) / total for side, v in by_side.items()}
    counts = {side: int(q) for side, q in quota.items()}
    for side in sorted(quota, key=lambda s: quota[s] - counts[s], reverse=True)[: steps - sum(counts.values())]:
        counts[side] += 1
    rng = np.random.default_rng(seed)
    out = []
    for side in sorted(counts):
        for _ in range(counts[side]):
            picks = rng.choice(len(by_side[side]), batch, replace=len(by_side[side]) < batch)
            out.append((side, [by_side[side][i] for i in picks]))
    return out


def measure_pairs(cfg: TRMConfig, batches: list, dtype, device, compile_: bool, fixed: bool, train: bool) -> dict:
    """examples/s and real cells/s over the batches, each encoded on its side or on 30x30."""
    from arcsolver.data.encoding import CANVAS, encode_pairs

    torch.manual_seed(0)
    model = TRM(cfg, PUZZLE_ROWS).to(device).train(train)
    optim = OptimConfig()
    opt = build_optimizer(model, optim.optimizer, optim.lr, optim.betas, optim.weight_decay)
    forward = torch.compile(model) if compile_ else model
    predict = torch.compile(model.predict) if compile_ else model.predict
    data = []
    for side, pairs in batches:
        inputs, labels = encode_pairs(pairs, CANVAS if fixed else side)
        data.append(
            {
                "inputs": torch.from_numpy(inputs).long().to(device),
                "labels": torch.from_numpy(labels).long().to(device),
                "puzzle_ids": torch.randint(1, PUZZLE_ROWS, (len(pairs),), device=device),
            }
        )

    def run(b):
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            if not train:
                return predict(b["inputs"], b["puzzle_ids"])
            _, out = forward(model.initial_carry(b), b)
        loss, _ = trm_loss(out.logits, out.labels, out.halt_logit, cfg.halt_loss_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.puzzle_emb.step(1e-2, 0.1)

    seen = set()
    for b in data:  # one warm-up step per canvas shape (compilation, kernel choice)
        if b["inputs"].shape not in seen:
            seen.add(b["inputs"].shape)
            run(b)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for b in data:
        run(b)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    examples = sum(len(pairs) for _, pairs in batches)
    cells = sum(p.output.size for _, pairs in batches for p in pairs)
    return {"examples_per_s": examples / seconds, "cells_per_s": cells / seconds, "seconds": seconds}


def main_pairs(args, cfg: TRMConfig, device) -> None:
    batches = pair_batches(args.pairs, args.batch, args.steps)
    sides = sorted({side for side, _ in batches})
    print(f"{args.pairs}: {len(batches)} batches of {args.batch} real pairs over canvas sides {sides}")
    for name in args.dtype:
        dtype = torch.bfloat16 if name == "bf16" else torch.float32
        for train in [m == "train" for m in args.modes]:
            sized = measure_pairs(cfg, batches, dtype, device, args.compile, fixed=False, train=train)
            fixed = measure_pairs(cfg, batches, dtype, device, args.compile, fixed=True, train=train)
            what = "training" if train else "inference"
            for label, r in (("sized", sized), ("30x30", fixed)):
                print(
                    f"{name} {what} {label:>5}: {r['examples_per_s']:.2f} examples/s  {r['cells_per_s']:.0f} real cells/s"
                )
            print(f"{name} {what} speed-up: {sized['examples_per_s'] / fixed['examples_per_s']:.2f}x")


def main_per_side(args, cfg: TRMConfig, device) -> None:
    """Each side's rate on its own (`--steps` batches of `--batch` of its pairs), and the 30x30
    rate; the set's rate is the pairs-weighted harmonic mean of the sides' rates (the time per
    example over the set's mix of sides). Cheaper than --pairs where one 30x30 step is slow (a
    CPU): every side gets full batches, however rare it is."""
    import numpy as np

    by_side = pairs_by_side(args.pairs)
    total = sum(len(v) for v in by_side.values())
    rng = np.random.default_rng(0)

    def batches(side: int) -> list[tuple[int, list]]:
        pairs = by_side[side]
        return [
            (side, [pairs[i] for i in rng.choice(len(pairs), args.batch, replace=len(pairs) < args.batch)])
            for _ in range(args.steps)
        ]

    print(
        f"{args.pairs}: {total} pairs; share per canvas side: "
        + ", ".join(f"{s}: {len(v) / total:.1%}" for s, v in by_side.items())
    )
    for name in args.dtype:
        dtype = torch.bfloat16 if name == "bf16" else torch.float32
        for train in [m == "train" for m in args.modes]:
            what = "training" if train else "inference"
            rates = {}
            for side in by_side:
                r = measure_pairs(cfg, batches(side), dtype, device, args.compile, fixed=False, train=train)
                rates[side] = r["examples_per_s"]
                print(f"{name} {what} side {side:>2}: {rates[side]:.2f} examples/s", flush=True)
            fixed_batches = [(s, pairs) for s in by_side for _, pairs in batches(s)][:: len(by_side)]
            fixed = measure_pairs(cfg, fixed_batches, dtype, device, args.compile, fixed=True, train=train)
            sized = total / sum(len(v) / rates[s] for s, v in by_side.items())
            print(f"{name} {what} sized (the set's mix): {sized:.2f} examples/s")
            print(f"{name} {what} 30x30: {fixed['examples_per_s']:.2f} examples/s")
            print(f"{name} {what} speed-up: {sized / fixed['examples_per_s']:.2f}x", flush=True)


def main() -> None:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=whole(1, MAX_BATCH), default=16)
    parser.add_argument("--steps", type=whole(1, MAX_STEPS), default=5)
    parser.add_argument("--warmup", type=whole(0, MAX_STEPS), default=2)
    parser.add_argument("--dtype", nargs="+", default=["bf16", "fp32"], choices=["bf16", "fp32"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="TRMConfig field=value")
    parser.add_argument(
        "--pairs", default=None, help="a bundled set: draw batches from its real pairs (sized vs 30x30)"
    )
    parser.add_argument(
        "--per-side", action="store_true", help="with --pairs: time each side on its own, weigh by the set's mix"
    )
    parser.add_argument(
        "--modes", nargs="+", default=["train", "infer"], choices=["train", "infer"], help="with --pairs"
    )
    args = parser.parse_args()
    if args.pairs:
        # One compiled graph per canvas side, for the sized and the fixed runs of the same code.
        torch._dynamo.config.recompile_limit = 32
        cfg = TRMConfig.model_validate(apply_overrides({"positions": "rope2d"}, args.overrides))
        device = torch.device(args.device)
        print(
            f"TRM {sum(p.numel() for p in TRM(cfg, PUZZLE_ROWS).parameters()) / 1e6:.2f}M parameters, rope2d, {device}, "
            f"{torch.get_num_threads()} threads, torch {torch.__version__}, compile {args.compile}"
        )
        return (main_per_side if args.per_side else main_pairs)(args, cfg, device)

    cfg = TRMConfig.model_validate(apply_overrides({}, args.overrides))
    device = torch.device(args.device)
    n_params = sum(p.numel() for p in TRM(cfg, PUZZLE_ROWS).parameters())
    print(
        f"TRM {n_params / 1e6:.2f}M parameters, hidden {cfg.hidden_size}, canvas {cfg.canvas}, "
        f"T={cfg.n_recursions} n={cfg.n_latent_steps}, batch {args.batch}, {device}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    for name in args.dtype:
        dtype = torch.bfloat16 if name == "bf16" else torch.float32
        r = measure(cfg, args.batch, args.steps, args.warmup, dtype, device, args.compile)
        print(
            f"{name}: {r['s_per_step']:.3f} s/step  {r['samples_per_s']:.2f} samples/s  {r['tokens_per_s']:.0f} tokens/s"
        )


if __name__ == "__main__":
    main()
