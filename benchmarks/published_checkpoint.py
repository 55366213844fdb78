"""The README's commands from a published TRM checkpoint to a scored submission, end to end on a
CPU with a tiny stand-in: a reference checkpoint of random weights (tests/helpers/reference.py's
reference_state) whose puzzle table has exactly the rows of the reference's arc1concept data set,
laid out as `arcprize/trm_arc_prize_verification` in a Hugging Face cache read offline. It runs

    arcsolver import-reference hf:arcprize/trm_arc_prize_verification/arc_v1_public/step_518071 \\
        --out RUN --identifiers arc1concept --concept CONCEPTARC
    arcsolver solve CHALLENGES --checkpoint RUN --out submission.json \\
        --set adapt.steps=0 --set infer.max_versions=1001
    arcsolver evaluate submission.json --solutions SOLUTIONS
    arcsolver kaggle bundle --checkpoint RUN --out BUNDLE --python-version 3.12

and prints each one's wall time and last lines. CHALLENGES are the first --tasks tasks of the
ARC-AGI-1 evaluation set (all 400 with --tasks 400). Random weights score nothing: the figures are
the pipeline's (download, the rows rebuilt, every trained version voted, the slim bundle).

    git clone https://github.com/victorvikram/ConceptARC   # the 160 ConceptARC tasks arc1concept's rows name
    python benchmarks/published_checkpoint.py --concept ConceptARC [--tasks 20] [--work DIR]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from arguments import Parser, whole  # noqa: E402  (benchmarks/arguments.py, beside this script)
from helpers.reference import reference_state  # noqa: E402

from arcsolver.data.loaders import export_challenges, load_tasks  # noqa: E402
from arcsolver.data.task import TaskSet  # noqa: E402
from arcsolver.reference.names import dataset_subsets, reference_identifiers  # noqa: E402

REPO, FILE = "arcprize/trm_arc_prize_verification", "arc_v1_public/step_518071"
COMMIT = "0" * 40
HIDDEN = 32
# The reference's all_config.yaml for a tiny model on its 30x30 canvas.
ARCH = f"""arch:
  name: recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1
  hidden_size: {HIDDEN}
  num_heads: 2
  L_layers: 1
  H_cycles: 1
  L_cycles: 1
  halt_max_steps: 2
  expansion: 4
  puzzle_emb_len: 16
  puzzle_emb_ndim: ${{.hidden_size}}
  pos_encodings: rope
data_paths: [data/arc1concept-aug-1000]
"""


def run(command: list[str], env: dict) -> float:
    print("$ " + " ".join(command), flush=True)
    started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    took = time.monotonic() - started
    lines = (done.stdout + done.stderr).strip().splitlines()
    print("\n".join("  " + line for line in lines[-6:]))
    print(f"  -> exit {done.returncode} in {took:.1f} s", flush=True)
    if done.returncode:
        sys.exit(done.returncode)
    return took


def main() -> None:
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--concept",
        type=Path,
        required=True,
        help="a clone of ConceptARC: git clone https://github.com/victorvikram/ConceptARC",
    )
    parser.add_argument("--tasks", type=whole(1, 400), default=20, help="ARC-AGI-1 evaluation tasks solved")
    parser.add_argument("--work", type=Path, default=None, help="where to write (default: a temporary folder)")
    parser.add_argument(
        "--rows", type=whole(1, 10**8), default=None, help="arc1concept's rows, if known (skips one rebuild)"
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="published-"))
    work.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    rows = args.rows or len(reference_identifiers(dataset_subsets("arc1concept", args.concept)))
    print(f"arc1concept: {rows} rows (blank included), {time.monotonic() - started:.0f} s to rebuild them")
    snapshot = work / "hub" / f"models--{REPO.replace('/', '--')}" / "snapshots" / COMMIT
    (snapshot / FILE).parent.mkdir(parents=True, exist_ok=True)
    (snapshot.parent.parent / "refs").mkdir(exist_ok=True)
    (snapshot.parent.parent / "refs" / "main").write_text(COMMIT)
    torch.save(reference_state(HIDDEN, rows), snapshot / FILE)
    (snapshot / FILE).parent.joinpath("all_config.yaml").write_text(ARCH)
    print(f"stand-in checkpoint: {(snapshot / FILE).stat().st_size / 1e6:.1f} MB")

    tasks = TaskSet(list(load_tasks("kaggle2024/evaluation"))[: args.tasks], "evaluation")
    challenges, solutions = export_challenges(tasks, work / "data", "arc-agi_evaluation")
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(work / "hub"), COLUMNS="120")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    arcsolver = [sys.executable, "-m", "arcsolver"]
    run([*arcsolver, "import-reference", f"hf:{REPO}/{FILE}", "--out", str(work / "run"),
         "--identifiers", "arc1concept", "--concept", str(args.concept)], env)  # fmt: skip
    run([*arcsolver, "solve", str(challenges), "--checkpoint", str(work / "run"), "--out", str(work / "submission.json"),
         "--set", "adapt.steps=0", "--set", "infer.max_versions=1001"], env)  # fmt: skip
    run([*arcsolver, "evaluate", str(work / "submission.json"), "--solutions", str(solutions)], env)
    run([*arcsolver, "kaggle", "bundle", "--checkpoint", str(work / "run"), "--out", str(work / "bundle"),
         "--python-version", "3.12"], env)  # fmt: skip
    print(json.dumps({"work": str(work), "rows": rows, "tasks": args.tasks}))


if __name__ == "__main__":
    main()
