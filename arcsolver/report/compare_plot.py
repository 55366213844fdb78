"""`arcsolver compare --png`: every compared run's curves against training FLOPs, one colour per group."""

from __future__ import annotations

import io
import math
from pathlib import Path

from arcsolver.atomic import atomic_write_bytes
from arcsolver.errors import DataError
from arcsolver.report.curves import _matplotlib, read_metrics
from arcsolver.report.runs import Group, shown

# One panel per metric, against training FLOPs; (record key, title).
CURVES = (
    ("heldout_loss", "held-out loss"),
    ("heldout_cell_accuracy", "held-out cell accuracy"),
    ("heldout_pass@2", "held-out pass@2"),
    ("loss", "training loss"),
)


def plot_compared(groups: list[Group], out) -> Path:
    """Every run's curves against training FLOPs, one colour per group, into one PNG."""
    Figure, FigureCanvasAgg = _matplotlib()
    fig = Figure(figsize=(12.8, 7.8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    colours = [f"C{i % 10}" for i in range(len(groups))]
    for i, (key, title) in enumerate(CURVES):
        ax = fig.add_subplot(2, 2, i + 1)
        for colour, group in zip(colours, groups):
            for j, run in enumerate(group.runs):
                points = _points(run.dir, key)
                if points:
                    xs, ys = zip(*points)
                    label = f"{group.label} (seed {shown(run.settings.get('run.seed'))})"
                    ax.plot(
                        xs,
                        ys,
                        color=colour,
                        linestyle=("-", "--", ":", "-.")[j % 4],
                        marker="o" if len(xs) < 20 else None,
                        markersize=3,
                        label=label,
                    )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training FLOPs")
        ax.grid(alpha=0.3)
        if i == 0 and ax.lines:
            ax.legend(fontsize=7)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    path = Path(out)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as e:
        raise DataError(f"{path}: cannot write: {e}") from None
    return path


def _points(run_dir: Path, key: str) -> list[tuple[float, float]]:
    by_flops = {}
    for record in read_metrics(run_dir / "metrics.jsonl"):
        x, y = record.get("flops"), record.get(key)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x, y)) and math.isfinite(y):
            by_flops[x] = y
    return sorted(by_flops.items())
