import json
import os
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from arcsolver.cli import app
from arcsolver.errors import ArcsolverError, DataError
from arcsolver.report.curves import curve_panels, plot_training_curves, read_metrics, series

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


def training_record(step: int) -> dict:
    decay = 1 / (1 + step / 10)
    return {
        "step": step,
        "loss": 2.5 * decay + 0.1,
        "lm_loss": 2.2 * decay + 0.05,
        "halt_loss": 0.3 * decay + 0.05,
        "token_accuracy": 0.9 - 0.5 * decay,
        "exact_accuracy": 0.6 - 0.6 * decay,
        "halt_accuracy": 0.8,
        "mean_halt_steps": 16 - 10 * (1 - decay),
        "halted_fraction": 0.1,
        "lr": 1e-4,
        "samples_per_s": 900.0,
        "tokens_per_s": 900.0 * 100,
        "time_s": step * 0.5,
    }


def write_metrics(path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    records = [training_record(step) for step in range(10, 310, 10)]
    records += [
        {"step": s, "heldout_pass@1": p / 2, "heldout_pass@2": p, "heldout_tasks": 20}
        for s, p in ((100, 0.05), (200, 0.15), (300, 0.2))
    ]
    write_metrics(run / "metrics.jsonl", records)
    config = {
        "model": {"hidden_size": 64, "n_latent_steps": 2, "n_recursions": 2, "n_supervision": 16},
        "optim": {"global_batch_size": 32, "lr": 1e-4},
    }
    (run / "config.json").write_text(json.dumps(config))
    return run


def test_report_writes_the_curves_as_a_png(run_dir):
    from matplotlib.image import imread

    result = runner.invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    png = run_dir / "curves.png"
    assert f"wrote {png}" in result.output.replace("\n", "")
    data = png.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 20_000
    pixels = imread(png)
    assert pixels.shape[0] > 500 and pixels.shape[1] > 1000  # two columns of panels, two rows
    colours = np.unique((pixels[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 20  # lines, text and antialiasing, not an empty canvas


def test_report_out_option(run_dir, tmp_path):
    out = tmp_path / "elsewhere" / "c.png"
    result = runner.invoke(app, ["report", str(run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    assert not (run_dir / "curves.png").exists()


def test_panels_whose_keys_are_absent_are_skipped(tmp_path):
    records = [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5, "heldout_pass@2": 0.1}]
    assert [title for title, _ in curve_panels(records)] == ["loss", "held-out tasks"]
    write_metrics(tmp_path / "metrics.jsonl", records)
    assert plot_training_curves(tmp_path).read_bytes().startswith(PNG_SIGNATURE)


def test_a_resumed_run_keeps_the_later_record_of_a_step():
    records = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.0}, {"step": 2, "loss": 1.5}, {"step": 3, "loss": 1.0}]
    assert series(records, "loss") == ([1, 2, 3], [3.0, 1.5, 1.0])


def test_a_line_being_written_at_the_end_is_ignored(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"step": 1, "loss": 1.0}) + '\n{"step": 2, "lo')
    assert read_metrics(path) == [{"step": 1, "loss": 1.0}]


@pytest.mark.parametrize(
    "content, fragment",
    [
        (None, "no such file"),
        ("", "holds no records"),
        ("\n\n", "holds no records"),
        ('{"step": 1, "loss": 1.0}\n{nope\n{"step": 3}\n', "line 2: invalid JSON"),
        ("[1, 2]\n", "line 1: expected a JSON object with a numeric 'step'"),
        ('{"loss": 1.0}\n', "line 1: expected a JSON object with a numeric 'step'"),
        ('{"step": 1, "samples_per_s": 3.0}\n', "no record holds any of loss"),
        ('{"step": 1, "loss": ' + "9" * 5000 + "}\n", "line 1: not a metrics record"),
        ('{"step": 1, "x": ' + "[" * 5000 + "]" * 5000 + "}\n", "line 1: not a metrics record"),
    ],
)
def test_bad_metrics_are_one_line_errors_naming_the_file(tmp_path, content, fragment):
    metrics = tmp_path / "metrics.jsonl"
    if content is not None:
        metrics.write_text(content)
    with pytest.raises(DataError, match="metrics.jsonl") as e:
        plot_training_curves(tmp_path)
    assert fragment in str(e.value)
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "curves.png").exists()


def test_without_matplotlib_the_error_says_how_to_install_it(run_dir, monkeypatch):
    for module in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(ArcsolverError, match=r"pip install 'arcsolver\[report\]'"):
        plot_training_curves(run_dir)
    result = runner.invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 1 and "drawing curves needs matplotlib: pip install 'arcsolver" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_the_demo_ends_with_the_html_report_and_the_curves_and_names_them(tiny_run, tmp_path):
    """The demo's lines after solve, as make would run them, on a tiny run and a 2-task submission."""
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("no make on the PATH")
    from pathlib import Path

    demo = tmp_path / "demo"
    shutil.copytree(tiny_run, demo / "pretrain")
    data = demo / "data"
    data.mkdir()
    grid = [[1, 2], [3, 4]]
    task = {"train": [{"input": grid, "output": grid}], "test": [{"input": grid}]}
    (data / "arc1-evaluation_challenges.json").write_text(json.dumps({"t1": task, "t2": task}))
    (data / "arc1-evaluation_solutions.json").write_text(json.dumps({"t1": [grid], "t2": [[[0]]]}))
    (demo / "submission.json").write_text(
        json.dumps({t: [{"attempt_1": grid, "attempt_2": grid}] for t in ("t1", "t2")})
    )

    root = Path(__file__).parents[2]
    bin_dir = Path(sys.executable).parent
    # Under `make test` the outer make's flags would make this one print "Entering directory" lines.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    planned = (
        subprocess.run(
            ["make", "--no-print-directory", "-n", "demo", f"DEMO={demo}", f"BIN={bin_dir}", f"VENV={bin_dir.parent}"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        .stdout.replace("\\\n", " ")
        .splitlines()
    )
    after_solve = planned[next(i for i, line in enumerate(planned) if " solve " in line) + 1 :]
    out = subprocess.run(
        ["bash", "-euc", "\n".join(after_solve)], cwd=root, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert (demo / "report.html").read_text().count("<h3>demonstrations</h3>") == 2
    assert (demo / "curves.png").read_bytes().startswith(PNG_SIGNATURE)
    assert out[-2].startswith(f"open first: {demo / 'report.html'} ") and out[-1].startswith(
        f"then: {demo / 'curves.png'} "
    )
