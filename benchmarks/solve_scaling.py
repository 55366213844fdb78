"""Does `arcsolver solve` cost the same per task on a large file as on a small one? It solves files
of N tiny tasks (1x1 grids) with a tiny model, adaptation off, and reports per N the time per
task (the inference phase, which holds the writes, and the whole solve) and the lines printed.

    python benchmarks/solve_scaling.py [--tasks 200 20000] [--json OUT]

A solve that rewrote its files after every task would take time in the square of N: its time
per task would grow a hundredfold from 200 to 20,000 tasks. The model is trained here for one
step (seconds): the figures are the pipeline's, not the network's.
"""

from __future__ import annotations

import io
import json
import tempfile
import time
from pathlib import Path

from arguments import Parser, whole  # benchmarks/arguments.py, beside this script
from rich.console import Console

from arcsolver.config import PretrainConfig, SolveConfig
from arcsolver.recipes import load_recipe
from arcsolver.solve.answer import NO_GRID
from arcsolver.solve.solver import solve
from arcsolver.train.loop import pretrain

MODEL = [
    "data.train_sets=['arc1/training']",
    "data.heldout_sets=[]",
    "data.max_side=5",
    "data.max_tasks=2",
    "data.n_augmentations=1",
    "model.canvas=5",
    "model.hidden_size=32",
    "model.n_heads=2",
    "model.puzzle_emb_len=2",
    "model.n_latent_steps=1",
    "model.n_recursions=1",
    "model.n_supervision=1",
    "optim.global_batch_size=8",
    "run.steps=1",
    "run.threads=1",
    "run.device='cpu'",
]
SOLVE = [
    "adapt.steps=0",
    "data.n_augmentations=1",
    "infer.max_versions=1",
    "run.threads=1",
    "run.device='cpu'",
]


def tiny_tasks(n: int) -> dict:
    """n distinct one-cell tasks."""
    return {
        f"{i:08x}": {"train": [{"input": [[i % 10]], "output": [[1]]}], "test": [{"input": [[2]]}]} for i in range(n)
    }


def measure(run: Path, n: int, work: Path) -> dict:
    """Solve n tiny tasks; seconds per task and the lines printed."""
    challenges, out = work / f"c{n}.json", work / f"s{n}.json"
    challenges.write_text(json.dumps(tiny_tasks(n)))
    text = io.StringIO()
    console = Console(file=text, width=120, force_terminal=False)
    cfg = load_recipe(SolveConfig, "submit", "cpu-small", SOLVE)
    started = time.perf_counter()
    report = solve(challenges, out, str(run), cfg, console)
    total = time.perf_counter() - started
    assert all(reason == NO_GRID for reason in report.fallbacks.values()), report  # each one answered
    return {
        "tasks": n,
        "inference_s_per_task": report.infer_s / n,
        "solve_s_per_task": total / n,
        "solve_s": total,
        "lines": len(text.getvalue().splitlines()),
    }


def main() -> None:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=whole(1, 1_000_000), nargs="+", default=[200, 20_000])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pretrain(
            load_recipe(PretrainConfig, "pretrain", "cpu-small", MODEL),
            work / "run",
            console=Console(file=io.StringIO()),
        )
        rows = []
        for n in args.tasks:
            rows.append(row := measure(work / "run", n, work))
            first = rows[0]["inference_s_per_task"]
            print(
                f"{row['tasks']:>7} tasks: inference {1e3 * row['inference_s_per_task']:.2f} ms/task "
                f"({row['inference_s_per_task'] / first:.2f}x the first), whole solve {1e3 * row['solve_s_per_task']:.2f} "
                f"ms/task ({row['solve_s']:.1f} s), {row['lines']} lines printed",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
