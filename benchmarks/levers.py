"""The accuracy levers, each alone against the baseline, at equal training compute.

    python benchmarks/levers.py --out runs/levers --baseline-seconds 540          # the CPU protocol
    python benchmarks/levers.py --out runs/levers --flops 3e15 --seeds 3 --lever 'model.n_layers=4'
    python benchmarks/levers.py --device cuda --recipe arc1 --flops X --out runs/levers-gpu

Every run is `arcsolver pretrain` of the recipe (default cpu-small: its data and model), its
seed set, plus one lever's settings (none for the baseline), and stops at one FLOPs budget
(run.flops): --flops X, or with --baseline-seconds S the FLOPs that the baseline's first seed
reaches in S seconds (that run, timed alone, is then the baseline's first seed; where its final
evaluation was cut by that clock, its checkpoint is evaluated again without one). Each run ends
with a held-out evaluation over --eval-versions versions of every held-out task. The time limit
of the recipe is lifted: the budget ends every run.

A lever is one --lever string of --set settings, separated by spaces (e.g. 'model.n_layers=4' or
'model.mixer="mlp" data.layout="fixed"'); the default list is LEVERS. A lever whose settings do
not validate (a setting this arcsolver does not have) is reported and skipped.

Runs go one after another (--jobs N: N at a time, after the budget is measured), each into
OUT/<lever>-s<seed>; a run already finished (listed in OUT/levers.json) is skipped, and a run
stopped half-way resumes from its checkpoint, so the script picks up where it stopped (and a rerun with more --seeds, or a --lever
alone, adds only the runs it lacks). At the
end it prints `arcsolver compare`'s table and verdicts for every finished run (at equal compute:
every run stops at the budget, a step under it at most, and its final evaluation counts at it) and writes
OUT/compare.png. It prints no wall-time ratio: runs taken one after another do not share a
machine's load (benchmarks/interleave.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from arguments import Parser, number, settings, whole  # noqa: E402  (benchmarks/arguments.py, beside this script)

from arcsolver.atomic import atomic_write_json  # noqa: E402
from arcsolver.config import MAX_FLOPS, MAX_SECONDS, MAX_THREADS, MAX_VERSIONS, PretrainConfig  # noqa: E402
from arcsolver.errors import ArcsolverError  # noqa: E402
from arcsolver.recipes import load_recipe  # noqa: E402
from arcsolver.report.compare import compare_runs  # noqa: E402
from arcsolver.report.compare_plot import plot_compared  # noqa: E402
from arcsolver.report.curves import read_metrics  # noqa: E402

# Each lever alone, as --set strings: URM's ConvSwiGLU over the sequence and our 2-D one, Muon,
# the gradient through the last latent update only (cpu-small's n is 2), n = 4 and n = 6, and
# 4 layers against 2.
LEVERS = [
    'model.mlp_conv="1d"',
    'model.mlp_conv="2d"',
    'optim.optimizer="muon"',
    "model.grad_latent_steps=1",
    "model.n_latent_steps=4",
    "model.n_latent_steps=6",
    "model.n_layers=4",
]
BASELINE = "baseline"
MANIFEST = "levers.json"
MAX_SEEDS = 1000
NO_TIME_LIMIT = "run.time_limit_s=100000000"  # the budget ends each run, not the recipe's clock


@dataclass(frozen=True)
class Run:
    lever: str  # its settings, space-separated ("" for the baseline)
    seed: int

    @property
    def name(self) -> str:
        label = re.sub(r"[^A-Za-z0-9.=_-]+", "", self.lever.replace(" ", "+")) or BASELINE
        return f"{label}-s{self.seed}"

    def sets(self) -> list[str]:
        return shlex.split(self.lever) + [f"run.seed={self.seed}"]


def validate(recipe: str, sets: list[str]) -> str | None:
    """None when the recipe with these settings validates, else the reason in one line."""
    try:
        load_recipe(PretrainConfig, "pretrain", recipe, sets)
    except ArcsolverError as e:
        return str(e)
    return None


def load_manifest(out: Path) -> dict:
    """OUT/levers.json (the budget and the finished runs), or a fresh one; ArcsolverError naming
    the file where it is not one."""
    path = out / MANIFEST
    if not path.exists():
        return {"finished": {}}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise ArcsolverError(
            f"{path}: not readable ({type(e).__name__}); remove it, and its runs start afresh"
        ) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("finished"), dict):
        raise ArcsolverError(f"{path}: not a record of this script's runs; remove it, and its runs start afresh")
    budget = manifest.get("budget")
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget <= MAX_FLOPS
    ):
        raise ArcsolverError(f"{path}: its budget {budget!r} is no FLOPs count; remove it, and its runs start afresh")
    return manifest


def save_manifest(out: Path, manifest: dict) -> None:
    atomic_write_json(out / MANIFEST, manifest)


def pretrain_args(args, run: Run, extra: list[str]) -> list[str]:
    """The `arcsolver pretrain` arguments of a run: a fresh one, or the resumption of one
    stopped after its first checkpoint."""
    run_dir = args.out / run.name
    resume = (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir())
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)  # stopped before its first checkpoint: start it afresh
    command = ["pretrain", "--recipe", args.recipe, "--out", str(run_dir), *(["--resume"] if resume else [])]
    sets = [*args.set, *run.sets(), f'run.device="{args.device}"', f"eval.max_versions={args.eval_versions}", *extra]
    return command + [x for s in sets for x in ("--set", s)]


def pretrain(args, run: Run, extra: list[str]) -> tuple[int, str]:
    """Run (or resume) one `arcsolver pretrain`; returns its exit status and what to say of it.

    With --jobs 1 it runs in this process (its lines print as it goes); with more, each run is
    a process of its own, its output kept for the line that reports it."""
    command = pretrain_args(args, run, extra)
    if args.jobs == 1:
        import click

        from arcsolver.cli import app

        try:
            app(command, standalone_mode=False)
        except click.exceptions.Exit as e:
            return e.exit_code, "see above"
        except click.ClickException as e:
            return e.exit_code, e.format_message()
        return 0, "ok"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), COLUMNS="200")
    proc = subprocess.run([sys.executable, "-m", "arcsolver", *command], capture_output=True, text=True, env=env)
    return proc.returncode, " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-2:])


def final_flops(run_dir: Path) -> float:
    """The training FLOPs of a run's last record."""
    return max(float(r["flops"]) for r in read_metrics(run_dir / "metrics.jsonl") if "flops" in r)


def final_cut(run_dir: Path) -> bool:
    """Whether a run's last held-out evaluation left tasks out (stopped at its time limit)."""
    evaluations = [r for r in read_metrics(run_dir / "metrics.jsonl") if "heldout_tasks" in r]
    return bool(evaluations and evaluations[-1].get("heldout_cut"))


def main(argv: list[str] | None = None) -> int:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="directory of the runs (resumable)")
    parser.add_argument("--recipe", default="cpu-small", help="the pretraining recipe (default: cpu-small)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--flops", type=number(1.0, MAX_FLOPS), help="the FLOPs budget of every run")
    budget.add_argument(
        "--baseline-seconds",
        type=number(0.1, MAX_SECONDS),
        help="the budget: the baseline's FLOPs in this many seconds",
    )
    parser.add_argument(
        "--seeds", type=whole(1, MAX_SEEDS), default=2, help="seeds per lever and for the baseline (0, 1, ...)"
    )
    parser.add_argument(
        "--lever", action="append", type=settings, help=f"a lever's settings (repeatable; default: {LEVERS})"
    )
    parser.add_argument("--no-levers", action="store_true", help="the baseline only")
    parser.add_argument(
        "--eval-versions", type=whole(1, MAX_VERSIONS), default=8, help="versions of each held-out task evaluated"
    )
    parser.add_argument("--set", action="append", default=[], help="a setting for every run, as pretrain's --set")
    parser.add_argument(
        "--jobs", type=whole(1, MAX_THREADS), default=1, help="runs at a time (after the budget is measured)"
    )
    args = parser.parse_args(argv)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        parser.error(f"--out {args.out}: cannot create it ({e.strerror or e}); give a directory")
    levers = [] if args.no_levers else (args.lever or LEVERS)

    usable = [""]
    for lever in levers:
        problem = validate(args.recipe, [*args.set, *shlex.split(lever)])
        if problem:
            print(f"skipped {lever}: {problem}", flush=True)
        else:
            usable.append(lever)
    if problem := validate(args.recipe, args.set):
        print(f"the baseline does not validate: {problem}", flush=True)
        return 1

    try:
        manifest = load_manifest(args.out)
    except ArcsolverError as e:
        print(f"error: {e}", flush=True)
        return 1
    runs = [Run(lever, seed) for lever in usable for seed in range(args.seeds)]

    if manifest.get("budget") is None:
        if args.flops is not None:
            manifest["budget"] = args.flops
        else:
            # The budget is what the baseline's first seed reaches in the given time, timed alone.
            first = runs[0]
            print(f"measuring the budget: {first.name} for {args.baseline_seconds:g} s", flush=True)
            status, tail = pretrain(args, first, [f"run.time_limit_s={args.baseline_seconds}"])
            if status != 0:
                print(f"{first.name} failed (exit {status}): {tail}", flush=True)
                return 1
            manifest["budget"] = final_flops(args.out / first.name)
            manifest["budget_from"] = f"{first.name} in {args.baseline_seconds:g} s"
            if final_cut(args.out / first.name):
                # A loaded machine can outrun the evaluation's estimate: the same checkpoint is
                # resumed at the budget, where it stops at once, and evaluated without a clock.
                print(f"{first.name}: its final evaluation was cut by the time limit; evaluating it again", flush=True)
                status, tail = pretrain(args, first, [f"run.flops={manifest['budget']}", NO_TIME_LIMIT])
                if status != 0 or final_cut(args.out / first.name):
                    print(f"{first.name} failed (exit {status}): {tail}", flush=True)
                    return 1
            manifest["finished"][first.name] = first.lever
        save_manifest(args.out, manifest)
    elif args.flops is not None and args.flops != manifest["budget"]:
        print(
            f"{args.out}: its runs have a budget of {manifest['budget']:.4g} FLOPs, not {args.flops:.4g}; give another --out"
        )
        return 1
    budget = manifest["budget"]
    print(
        f"budget: {budget:.4g} training FLOPs per run"
        + (f" ({manifest['budget_from']})" if "budget_from" in manifest else ""),
        flush=True,
    )

    todo = [r for r in runs if r.name not in manifest["finished"]]
    for r in runs:
        if r.name in manifest["finished"]:
            print(f"{r.name}: finished already", flush=True)

    lock = threading.Lock()  # --jobs: the manifest is written by one run at a time

    def one(run: Run) -> None:
        status, tail = pretrain(args, run, [f"run.flops={budget}", NO_TIME_LIMIT])
        if status == 0:
            with lock:
                manifest["finished"][run.name] = run.lever
                save_manifest(args.out, manifest)
        print(f"{run.name}: {'done' if status == 0 else f'failed (exit {status})'}: {tail}", flush=True)

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(one, todo))

    finished = [args.out / r.name for r in runs if r.name in manifest["finished"]]
    if len(finished) < 2:
        print("fewer than two finished runs: nothing to compare")
        return 1
    try:
        groups, lines = compare_runs(finished)
    except ArcsolverError as e:
        print(f"compare: {e}")
        return 1
    print("\n".join(lines))
    try:
        print(f"wrote {plot_compared(groups, args.out / 'compare.png')}")
    except ArcsolverError as e:  # matplotlib missing: the table above is the result
        print(f"no PNG: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
