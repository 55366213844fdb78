"""A training run's curves, drawn from its metrics.jsonl into one PNG: loss, accuracy on the
training batches, halting steps, and held-out pass@k against the optimiser step.

matplotlib is an optional extra (`arcsolver[report]`), imported only when a PNG is drawn.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

from arcsolver.atomic import atomic_write_bytes
from arcsolver.errors import ArcsolverError, DataError
from arcsolver.reader import parse_json, read_json, read_text

# One panel per question a reader asks of a run: (title, ((metrics key, legend label), ...)).
# A panel is drawn when at least one of its keys occurs; the first key is drawn boldest.
PANELS = (
    ("loss", (("loss", "loss"), ("lm_loss", "lm loss"), ("halt_loss", "halt loss"))),
    ("accuracy on training batches", (("exact_accuracy", "exact"), ("token_accuracy", "token"))),
    ("supervision steps before halting", (("mean_halt_steps", "mean halting steps"),)),
    (
        "held-out tasks",
        (("heldout_pass@2", "pass@2"), ("heldout_pass@1", "pass@1"), ("heldout_cell_accuracy", "per-cell, attempt 1")),
    ),
)
LOG_SCALE_SPAN = 10  # a loss panel whose values span more than this factor gets a log y axis


def read_metrics(path) -> list[dict]:
    """The records of a metrics.jsonl, in file order; raises DataError naming the file and line."""
    path = Path(path)
    if not os.path.lexists(path):
        raise DataError(f"{path}: no such file; `arcsolver pretrain` writes one into its run directory")
    text = read_text(path)
    lines = text.splitlines()
    records = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = parse_json(line)
        except json.JSONDecodeError as e:
            if records and n == len(lines) and not text.endswith("\n"):
                break  # a live run is writing this line right now
            raise DataError(f"{path}: line {n}: invalid JSON: {e.msg}") from None
        except ValueError:  # an integer of thousands of digits; nesting too deep to parse
            raise DataError(f"{path}: line {n}: not a metrics record (a number or nesting too large to read)") from None
        step = record.get("step") if isinstance(record, dict) else None
        if not isinstance(step, (int, float)) or isinstance(step, bool):
            raise DataError(f"{path}: line {n}: expected a JSON object with a numeric 'step'")
        records.append(record)
    if not records:
        raise DataError(f"{path}: holds no records; the run has not logged a step yet")
    return records


def series(records: list[dict], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of one metric, by step. A resumed run logs some steps twice: the later record wins."""
    by_step = {}
    for record in records:
        value = record.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            by_step[record["step"]] = float(value)
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def curve_panels(records: list[dict]) -> list[tuple[str, list[tuple[str, list[float], list[float]]]]]:
    """The PANELS the records have data for: (title, [(label, steps, values), ...])."""
    panels = []
    for title, keys in PANELS:
        lines = [(label, *series(records, key)) for key, label in keys]
        lines = [line for line in lines if line[1]]
        if lines:
            panels.append((title, lines))
    return panels


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ArcsolverError("drawing curves needs matplotlib: pip install 'arcsolver[report]'") from None
    return Figure, FigureCanvasAgg


def _subtitle(run_dir: Path) -> str:
    """The model and optimiser settings from config.json, or "" where it is missing or unreadable."""
    try:
        cfg = read_json(run_dir / "config.json")
        model, optim = cfg["model"], cfg["optim"]  # type: ignore[index]
        return (
            f"hidden {model['hidden_size']}, n={model['n_latent_steps']}, T={model['n_recursions']}, "
            f"N_sup={model['n_supervision']}; batch {optim['global_batch_size']}, lr {optim['lr']:g}"
        )
    except (ArcsolverError, KeyError, TypeError):
        return ""  # the title is a courtesy; the curves do not depend on it


def plot_training_curves(run_dir, out=None) -> Path:
    """Draw a run's metrics.jsonl into a PNG (default: RUN_DIR/curves.png) and return its path."""
    run_dir = Path(run_dir)
    metrics = run_dir / "metrics.jsonl"
    records = read_metrics(metrics)
    panels = curve_panels(records)
    if not panels:
        wanted = ", ".join(key for _, keys in PANELS for key, _ in keys)
        raise DataError(f"{metrics}: no record holds any of {wanted}; is it a training run's metrics file?")

    Figure, FigureCanvasAgg = _matplotlib()
    n_cols = min(2, len(panels))
    n_rows = math.ceil(len(panels) / n_cols)
    fig = Figure(figsize=(6.4 * n_cols, 3.6 * n_rows + 0.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    subtitle = _subtitle(run_dir)
    fig.suptitle(f"{run_dir.resolve().name}" + (f"\n{subtitle}" if subtitle else ""), fontsize=11)
    for i, (title, lines) in enumerate(panels):
        ax = fig.add_subplot(n_rows, n_cols, i + 1)
        for j, (label, steps, values) in enumerate(lines):
            # Evaluations are few: mark each one, or a single point would not show at all.
            ax.plot(
                steps,
                values,
                label=f"{label} ({values[-1]:.3g})",
                linewidth=1.8 if j == 0 else 1.0,
                marker="o" if len(steps) < 20 else None,
                markersize=4,
            )
        values = [v for _, _, vs in lines for v in vs if math.isfinite(v)]
        if title == "loss" and values and min(values) > 0 and max(values) > LOG_SCALE_SPAN * min(values):
            ax.set_yscale("log")
        elif title != "loss" and values and min(values) >= 0:
            ax.set_ylim(bottom=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    path = Path(out) if out is not None else run_dir / "curves.png"
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as e:
        raise DataError(f"{path}: cannot write: {e}") from None
    return path
