"""Memory of the paper-sized TRM per sample: a training step (whole network, and embeddings only),
inference, and the micro-batch `optim.micro_batch_size = "auto"` picks.

    python benchmarks/memory.py [--device cpu|cuda] [--rows 730156] [--cap-gb 24] [--json OUT]

On CUDA the figures are peaks of the caching allocator at two batch sizes (their difference
per sample); on a CPU, the bytes autograd saves (training) and the most bytes alive at once
(inference), counted on the same shapes. --rows sizes the puzzle table (ARC-AGI-1 with 1000
versions per task: 730,156). --cap-gb rehearses a smaller GPU on a larger one.
"""

from __future__ import annotations

import json

import torch
from arguments import Parser, number, whole  # benchmarks/arguments.py, beside this script

from arcsolver.config import MAX_BATCH
from arcsolver.engine.device import limit_gpu_memory
from arcsolver.engine.memory import choose_micro_batch, gpu_budget_for
from arcsolver.engine.memory_model import (
    GiB,
    activation_bytes_per_sample,
    estimate_step_memory,
    example_batch,
    inference_bytes_per_sample,
    measure_step_memory,
)
from arcsolver.model.trm import TRM, TRMConfig

MiB = 2**20
MAX_ROWS = 10**8  # puzzle-table rows (the paper's ARC-AGI-1 table has 730,156)


def cuda_inference_per_sample(model: TRM, dtype, sizes=(2, 8)) -> float:
    device = next(model.parameters()).device
    model.eval()
    peaks = []
    for size in sizes:
        batch = example_batch(model, size, device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        with torch.autocast("cuda", dtype=dtype):
            model.predict(batch["inputs"], batch["puzzle_ids"])
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
    model.train()
    return (peaks[1] - peaks[0]) / (sizes[1] - sizes[0])


def main() -> None:
    ap = Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--rows", type=whole(1, MAX_ROWS), default=730_156)
    ap.add_argument("--batch", type=whole(1, MAX_BATCH), default=768, help="local batch the micro-batch is chosen for")
    ap.add_argument("--cap-gb", type=number(0.01, 100_000), nargs="*", default=[24.0])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    device, dtype = torch.device(args.device), torch.bfloat16
    torch.manual_seed(0)
    model = TRM(TRMConfig(), n_puzzle_ids=args.rows).to(device).train()
    out: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "rows": args.rows}
    if device.type == "cuda":
        step = measure_step_memory(model, dtype)
        for p in model.parameters():
            p.requires_grad_(False)
        frozen = measure_step_memory(model, dtype)
        for p in model.parameters():
            p.requires_grad_(True)
        out |= {
            "train_mib": step.per_sample / MiB,
            "embeddings_only_mib": frozen.per_sample / MiB,
            "inference_mib": cuda_inference_per_sample(model, dtype),
            "fixed_gib": step.fixed / GiB,
        }
        out["inference_mib"] /= MiB
        say = lambda text: print(text)  # noqa: E731
        full = choose_micro_batch("auto", model, args.batch, dtype, device, None, say)
        out["auto_micro_batch"] = {"card": full}
        for cap in args.cap_gb:
            limit_gpu_memory(cap, device)
            out["auto_micro_batch"][f"{cap:g}GB"] = choose_micro_batch(
                "auto", model, args.batch, dtype, device, cap, say
            )
        # What the CPU arithmetic predicts, for comparison with the measurement.
        model = model.cpu()
    estimate = estimate_step_memory(model, dtype)
    out |= {
        "cpu_count_train_mib": estimate.per_sample / MiB,
        "cpu_count_embeddings_only_mib": activation_bytes_per_sample(model, dtype, train_network=False) / MiB,
        "cpu_count_inference_mib": inference_bytes_per_sample(model, dtype) / MiB,
        "carry_mib": estimate.carry_per_sample / MiB,
        "plan_micro_batch": {
            f"{gb:g}GB": estimate.micro_batch(gpu_budget_for(gb), args.batch) for gb in (80, *args.cap_gb)
        },
    }
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
