"""A TRM speedrun: the compute each setting needs to reach one held-out loss, over seeds.

    python benchmarks/speedrun.py --out runs/speedrun --target 1.5 --cap 1.5e14 --seeds 3 \\
        --candidate 'optim.optimizer="muon"' --candidate 'optim.lr=2e-3'

Every run is `arcsolver pretrain` of the recipe (default cpu-small), its seed, and one
candidate's settings (none for the baseline), with run.target_heldout_loss = --target: it stops
at the first check (every --check-every steps, on --check-queries fixed held-out queries) whose
loss is at or below the target, or at --cap FLOPs, where it has not reached it. The record table
gives, per setting: FLOPs to target (the figure: a machine's load cannot move it), steps to
target, each as the mean and seed spread (max - min) over its seeds, a run that never reached it
shown as such, and the verdict on FLOPs against the baseline by `arcsolver compare`'s rule (better
or worse beyond the larger seed spread, at least 2 seeds each). A candidate becomes a default only
where it is better over at least 3 seeds.

Seconds to target are printed per setting as measured, with how they were taken: runs one after
another (--jobs 1) on a machine that was quiet only if nothing else ran; with --jobs N, N runs
shared the machine and their seconds are not comparable between settings. The runs are resumable
as benchmarks/levers.py's (OUT/speedrun.json lists the finished ones).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from arguments import Parser, number, settings, whole  # noqa: E402
from levers import NO_TIME_LIMIT, Run, pretrain, validate  # noqa: E402

from arcsolver.atomic import atomic_write_json  # noqa: E402
from arcsolver.config import MAX_FLOPS  # noqa: E402
from arcsolver.errors import ArcsolverError  # noqa: E402
from arcsolver.report.compare import compare_runs  # noqa: E402
from arcsolver.report.curves import read_metrics  # noqa: E402

MANIFEST = "speedrun.json"


def reached(run_dir: Path) -> dict | None:
    """The record of the check that first reached the target (None: never reached)."""
    return next((r for r in read_metrics(run_dir / "metrics.jsonl") if r.get("target_reached") is True), None)


def machine() -> str:
    """The CPU's model name and the cores this process may use."""
    try:
        model = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
    except OSError:
        model = None
    return f"{model.group(1) if model else platform.machine()}, {len(os.sched_getaffinity(0))} cores"


def seconds_line(label: str, records: list[dict | None], jobs: int) -> str:
    seconds = [r["time_s"] for r in records if r is not None]
    if not seconds:
        return f"{label}: never reached"
    how = "one run at a time" if jobs == 1 else f"{jobs} runs sharing the machine: not comparable between settings"
    return (
        f"{label}: {statistics.mean(seconds):.0f} s to target (range {min(seconds):.0f}-{max(seconds):.0f} s over "
        f"{len(seconds)} seeds; {how}; {machine()})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="directory of the runs (resumable)")
    parser.add_argument("--recipe", default="cpu-small", help="the pretraining recipe (default: cpu-small)")
    parser.add_argument("--target", type=number(1e-6, 100.0), required=True, help="the held-out loss to reach")
    parser.add_argument("--cap", type=number(1.0, MAX_FLOPS), required=True, help="FLOPs at which a run gives up")
    parser.add_argument("--seeds", type=whole(1, 1000), default=3, help="seeds per setting (0, 1, ...)")
    parser.add_argument("--candidate", action="append", default=[], type=settings, help="a candidate's settings")
    parser.add_argument("--check-every", type=whole(1, 10**6), default=25, help="steps between the target's checks")
    parser.add_argument("--check-queries", type=whole(1, 100_000), default=64, help="queries of the fixed sample")
    parser.add_argument("--eval-versions", type=whole(1, 1000), default=1, help="versions in the final evaluation")
    parser.add_argument("--set", action="append", default=[], help="a setting for every run, as pretrain's --set")
    parser.add_argument(
        "--jobs", type=whole(1, 64), default=1, help="runs at a time (their seconds then not comparable)"
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args(argv)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        parser.error(f"--out {args.out}: cannot create it ({e.strerror or e}); give a directory")

    common = [
        *args.set,
        f"run.target_heldout_loss={args.target}",
        f"run.target_every={args.check_every}",
        f"run.target_queries={args.check_queries}",
    ]
    args.set = common  # levers.pretrain_args passes args.set to every run
    usable = [""]
    for candidate in args.candidate:
        if problem := validate(args.recipe, [*common, *shlex.split(candidate)]):
            print(f"skipped {candidate}: {problem}", flush=True)
        else:
            usable.append(candidate)
    if problem := validate(args.recipe, common):
        print(f"the baseline does not validate: {problem}", flush=True)
        return 1

    path = args.out / MANIFEST
    manifest = json.loads(path.read_text()) if path.exists() else {"target": args.target, "finished": {}}
    if manifest.get("target") != args.target:
        print(f"{args.out}: its runs have a target of {manifest.get('target')}, not {args.target}; give another --out")
        return 1
    runs = [Run(candidate, seed) for candidate in usable for seed in range(args.seeds)]
    todo = [r for r in runs if r.name not in manifest["finished"]]
    lock = threading.Lock()  # --jobs: the manifest is written by one run at a time

    def one(run: Run) -> None:
        status, tail = pretrain(args, run, [f"run.flops={args.cap}", NO_TIME_LIMIT])
        if status == 0:
            with lock:
                manifest["finished"][run.name] = run.lever
                atomic_write_json(path, manifest)
        print(f"{run.name}: {'done' if status == 0 else f'failed (exit {status})'}: {tail}", flush=True)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(one, todo))

    finished = [r for r in runs if r.name in manifest["finished"]]
    if len(finished) < 2:
        print("fewer than two finished runs: no record table")
        return 1
    try:
        _, lines = compare_runs([args.out / r.name for r in finished], at="last")
    except ArcsolverError as e:
        print(f"compare: {e}")
        return 1
    print("\n".join(lines[lines.index(next(x for x in lines if x.startswith("time to target"))) :]))
    for candidate in usable:
        records = [reached(args.out / r.name) for r in finished if r.lever == candidate]
        print(seconds_line(candidate or "baseline", records, args.jobs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
