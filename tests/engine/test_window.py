"""The window averages of engine/window.py, and the Logger's records built from them."""

import io
import json

import pytest
import torch
from rich.console import Console

from arcsolver.engine.distributed import Dist
from arcsolver.engine.trainer import StepResult
from arcsolver.engine.window import Window
from arcsolver.train.logger import Logger


def result(loss: float, exact: float, halted: float, halt_steps: float, grad_norm=None) -> StepResult:
    metrics = {
        "exact_accuracy": torch.tensor(exact),
        "halted_fraction": torch.tensor(halted),
        "mean_halt_steps": torch.tensor(halt_steps),
    }
    return StepResult(side=10, loss=torch.tensor(loss), metrics=metrics, grad_norm=grad_norm, lr_scale=1.0)


def test_a_window_reports_the_mean_of_its_steps_and_then_starts_anew():
    window = Window()
    # Halting comes in waves: no sample halts at two of the three steps, all of them at the third.
    window.add(result(3.0, 0.0, 0.0, 0.0, grad_norm=1.0))
    window.add(result(2.0, 0.0, 0.0, 0.0, grad_norm=2.0))
    window.add(result(1.0, 0.9, 1.0, 16.0, grad_norm=6.0))
    means = window.read()
    assert means["loss"] == pytest.approx(2.0)
    assert means["exact_accuracy"] == pytest.approx(0.3)
    assert means["halted_fraction"] == pytest.approx(1 / 3)
    # The mean over the samples that halted, not over steps (16/3) nor the last step's alone.
    assert means["mean_halt_steps"] == pytest.approx(16.0)
    assert means["grad_norm"] == pytest.approx(3.0)

    window.add(result(5.0, 0.5, 0.5, 4.0))
    window.add(result(7.0, 0.5, 0.25, 10.0))
    means = window.read()
    assert means["loss"] == pytest.approx(6.0) and "grad_norm" not in means
    assert means["mean_halt_steps"] == pytest.approx((0.5 * 4 + 0.25 * 10) / 0.75)


def test_a_window_where_no_sample_halted_has_no_halting_steps():
    window = Window()
    window.add(result(1.0, 0.0, 0.0, 0.0))
    means = window.read()
    assert "mean_halt_steps" not in means and means["halted_fraction"] == 0.0


def test_the_sums_stay_on_the_device_until_a_read():
    window = Window()
    window.add(result(1.0, 0.0, 0.0, 0.0))
    window.add(result(2.0, 0.0, 0.0, 0.0))
    assert isinstance(window.sums, torch.Tensor) and window.steps == 2
    assert window.sums.tolist()[window.keys.index("loss")] == pytest.approx(3.0)


def test_metrics_jsonl_records_the_mean_of_the_steps_since_the_last_record(tmp_path):
    logger = Logger(tmp_path, 4, 0, Dist(), torch.device("cpu"), 8, console=Console(file=io.StringIO()))
    for loss in (4.0, 2.0):
        logger.count(result(loss, 0.0, 0.0, 0.0))
    logger.record(2, lr=1e-4)
    for loss, exact in ((1.0, 1.0), (3.0, 0.0)):
        logger.count(result(loss, exact, 1.0, 2.0))
    logger.record(4, lr=1e-4)
    logger.close()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    assert [r["loss"] for r in records] == [pytest.approx(3.0), pytest.approx(2.0)]
    assert records[1]["exact_accuracy"] == pytest.approx(0.5) and records[1]["mean_halt_steps"] == pytest.approx(2.0)
