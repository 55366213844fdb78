"""Training throughput of one supervision step (forward, backward, optimiser), the paper's model.

    python benchmarks/throughput.py [--batch 16] [--steps 5] [--dtype bf16 fp32] [--device cpu]

Prints samples/s and tokens/s (tokens = canvas cells, 900 at the paper's 30x30) per supervision
step, for each dtype. Model settings can be changed with --set, as in recipes (e.g.
--set hidden_size=128 --set canvas=10).
"""

from __future__ import annotations

import argparse
import time

import torch

from arcsolver.model.loss import trm_loss
from arcsolver.model.trm import TRM, TRMConfig
from arcsolver.recipes import apply_overrides
from arcsolver.train.optim import AdamAtan2


def measure(cfg: TRMConfig, batch: int, steps: int, warmup: int, dtype: torch.dtype, device: torch.device, compile_: bool) -> dict:
    torch.manual_seed(0)
    model = TRM(cfg).to(device).train()
    opt = AdamAtan2(model.parameters(), lr=1e-4)
    forward = torch.compile(model) if compile_ else model
    shape = (batch, cfg.canvas, cfg.canvas)
    data = {
        "inputs": torch.randint(0, cfg.vocab_size, shape, device=device),
        "labels": torch.randint(0, cfg.vocab_size, shape, device=device),
        "puzzle_ids": torch.randint(1, cfg.n_puzzle_ids, (batch,), device=device),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--dtype", nargs="+", default=["bf16", "fp32"], choices=["bf16", "fp32"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="TRMConfig field=value")
    args = parser.parse_args()

    cfg = TRMConfig.model_validate(apply_overrides({"n_puzzle_ids": 1000}, args.overrides))
    device = torch.device(args.device)
    n_params = sum(p.numel() for p in TRM(cfg).parameters())
    print(f"TRM {n_params / 1e6:.2f}M parameters, hidden {cfg.hidden_size}, canvas {cfg.canvas}, "
          f"T={cfg.n_recursions} n={cfg.n_latent_steps}, batch {args.batch}, {device}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    for name in args.dtype:
        dtype = torch.bfloat16 if name == "bf16" else torch.float32
        r = measure(cfg, args.batch, args.steps, args.warmup, dtype, device, args.compile)
        print(f"{name}: {r['s_per_step']:.3f} s/step  {r['samples_per_s']:.2f} samples/s  {r['tokens_per_s']:.0f} tokens/s")


if __name__ == "__main__":
    main()
