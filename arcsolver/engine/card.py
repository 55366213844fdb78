"""A run directory's README.md in the Hugging Face Hub's model-card form: YAML front matter
(licence, data sets, metrics, the held-out scores as a model index), then what the model was
trained on and with which recipe, its held-out scores, and the command that made it.

`arcsolver pretrain` writes it when a run starts and again after its held-out evaluation;
`arcsolver import-reference` writes it with the converted run; `arcsolver push` uploads it.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

from arcsolver.atomic import atomic_write_text
from arcsolver.config import PretrainConfig

CARD_FILE = "README.md"
LICENSE = "apache-2.0"  # arcsolver's; a converted checkpoint keeps its own (the reference's: MIT)
SCORES = ("pass@2", "pass@1", "cell_accuracy")


def invoking_command() -> str | None:
    """The arcsolver command line this process runs, or None where arcsolver is a library."""
    program = Path(sys.argv[0]).name if sys.argv else ""
    if program in ("arcsolver", "__main__.py") or sys.argv[0].endswith("arcsolver/__main__.py"):
        return shlex.join(["arcsolver", *sys.argv[1:]])
    return None


def heldout_scores(run_dir: Path) -> list[dict[str, Any]]:
    """The held-out evaluations recorded in a run's metrics.jsonl, oldest first (step, pass@2, ...)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    found = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(record, dict) and isinstance(record.get("heldout_pass@2"), (int, float)):
            scores = {k: record.get(f"heldout_{k}") for k in (*SCORES, "tasks")}
            found.append({"step": record.get("step"), **scores})
    return found


def _yaml_list(items: list[str]) -> str:
    return "".join(f"\n- {json.dumps(item)}" for item in items) if items else " []"


def model_card(
    cfg: PretrainConfig,
    title: str,
    trained_on: str,
    scores: list[dict[str, Any]],
    command: str | None,
    license: str = LICENSE,
    datasets: list[str] | None = None,
) -> str:
    """The card's text (see the module docstring)."""
    m = cfg.model
    datasets = datasets if datasets is not None else sorted({*cfg.data.train_sets, *cfg.data.heldout_sets})
    last = scores[-1] if scores else None
    index = ""
    if last is not None:
        results = "".join(
            f"\n      - type: {json.dumps(k)}\n        value: {last[k]}" for k in SCORES if last.get(k) is not None
        )
        index = (
            f"\nmodel-index:\n- name: {json.dumps(title)}\n  results:\n  - task:\n      type: abstract-reasoning\n"
            f"    dataset:\n      name: {json.dumps(', '.join(cfg.data.heldout_sets) or 'held-out tasks')}\n"
            f"      type: arc-agi\n    metrics:{results}"
        )
    front = (
        f"---\nlicense: {license}\nlibrary_name: arcsolver\ntags:\n- arc-agi\n- tiny-recursive-model\n"
        f"datasets:{_yaml_list(datasets)}\nmetrics:{_yaml_list(list(SCORES))}{index}\n---\n"
    )
    table = "\n".join(
        f"| {s['step']} | {s['pass@2']:.4f} | {s.get('pass@1') or 0:.4f} | {s.get('cell_accuracy') or 0:.4f} | "
        f"{s.get('tasks') or ''} |"
        for s in scores
    )
    held = (
        "| step | pass@2 | pass@1 | cell accuracy | tasks |\n|---|---|---|---|---|\n" + table
        if scores
        else "None recorded yet (the run's final held-out evaluation writes them here)."
    )
    made = f"```bash\n{command}\n```" if command else "Made through arcsolver's Python API, not its command line."
    return (
        f"{front}\n# {title}\n\nA Tiny Recursive Model (TRM, arXiv 2510.04871) for ARC-AGI, in arcsolver's format: "
        "`config.json` holds every setting, `checkpoints/step_*/model.safetensors` and `ema.safetensors` the "
        "weights (safetensors: loading runs no code), `puzzles.txt` the task version of each puzzle-table row. "
        "Answer tasks with `arcsolver solve CHALLENGES.json --checkpoint DIR --out submission.json`.\n\n"
        f"## Training\n\n{trained_on}\n\n"
        f"- model: hidden {m.hidden_size}, {m.n_layers} layers, {m.n_heads} heads, expansion {m.expansion:g}, "
        f"T={m.n_recursions}, n={m.n_latent_steps}, N_sup={m.n_supervision}, {m.positions} on a "
        f"{m.canvas}x{m.canvas} canvas\n"
        f"- data: {', '.join(cfg.data.train_sets) or 'none'} trained on; the demonstrations of "
        f"{', '.join(cfg.data.heldout_sets) or 'no held-out set'} trained on, their test inputs held out; "
        f"{cfg.data.n_augmentations} augmented versions per task\n"
        f"- optimiser: {cfg.optim.optimizer}, lr {cfg.optim.lr:g}, "
        f"global batch {cfg.optim.global_batch_size}, seed {cfg.run.seed}\n\n"
        f"## Held-out scores\n\n{held}\n\n## How it was made\n\n{made}\n"
    )


def write_card(run_dir: Path, text: str) -> None:
    atomic_write_text(Path(run_dir) / CARD_FILE, text)


def pretrain_card(run_dir: Path, cfg: PretrainConfig) -> str:
    """The card of a run of `arcsolver pretrain`, with the held-out scores its metrics.jsonl holds."""
    trained_on = (
        f"Pretrained with arcsolver on {', '.join(cfg.data.train_sets) or 'no training set'} and the "
        f"demonstrations of {', '.join(cfg.data.heldout_sets) or 'no held-out set'}; the held-out tasks' test "
        "inputs were never trained on and are what the scores below measure."
    )
    return model_card(cfg, Path(run_dir).resolve().name, trained_on, heldout_scores(run_dir), invoking_command())


def imported_card(cfg: PretrainConfig, source: str, step: int, rows: int, named_rows: str | None) -> str:
    """The card of a checkpoint of the TRM reference code converted by `arcsolver import-reference`."""
    names = (
        f"Its puzzle table's {rows - 1} rows are named (puzzles.txt) from {named_rows}, so `solve` answers those "
        "tasks with the versions and rows they were trained with."
        if named_rows
        else f"Its puzzle table's {rows - 1} rows are not named: every task starts at their mean row."
    )
    trained_on = (
        f"Trained with the TRM reference code (github.com/SamsungSAILMontreal/TinyRecursiveModels) and converted "
        f"from {source} (step {step}) by `arcsolver import-reference`. {names}"
    )
    datasets = [named_rows] if named_rows and "/" not in named_rows and "\\" not in named_rows else []
    return model_card(
        cfg, f"TRM reference checkpoint, step {step}", trained_on, [], invoking_command(), "mit", datasets
    )
