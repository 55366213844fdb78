import html
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from typer.testing import CliRunner

from arcsolver.cli import app
from arcsolver.data.render import ARC_COLOURS

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM = next((path for name in BROWSERS if (path := shutil.which(name))), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason=f"renders the page in headless Chromium, and none of {', '.join(BROWSERS)} is on the PATH "
    "(install it with `apt-get install chromium`)",
)
ODD_ID = 'odd<b>&"3'  # a task id that must be escaped to show as written

# Three tasks: one solved (by attempt_2), one missed, one with one of its two tests solved.
CHALLENGES = {
    "solved01": {
        "train": [
            {"input": [[1, 0], [0, 0]], "output": [[0, 1], [0, 0]]},
            {"input": [[2, 0], [0, 0]], "output": [[0, 2], [0, 0]]},
        ],
        "test": [{"input": [[3, 0], [0, 0]]}],
    },
    "missed02": {"train": [{"input": [[4, 4, 4]], "output": [[4], [4], [4]]}], "test": [{"input": [[5, 6, 7]]}]},
    ODD_ID: {"train": [{"input": [[8]], "output": [[9, 9], [9, 9]]}], "test": [{"input": [[7]]}, {"input": [[6]]}]},
}
SOLUTIONS = {
    "solved01": [[[0, 3], [0, 0]]],
    "missed02": [[[5], [6], [7]]],
    ODD_ID: [[[7, 7], [7, 7]], [[6, 6], [6, 6]]],
}
SUBMISSION = {
    "solved01": [{"attempt_1": [[3, 0], [0, 0]], "attempt_2": [[0, 3], [0, 0]]}],
    "missed02": [{"attempt_1": [[5, 6, 7]], "attempt_2": [[5], [6], [8]]}],
    ODD_ID: [{"attempt_1": [[7, 7], [7, 7]], "attempt_2": [[7]]}, {"attempt_1": [[6]], "attempt_2": [[1]]}],
}

runner = CliRunner()


@pytest.fixture
def files(tmp_path):
    for name, obj in (
        ("tiny_challenges.json", CHALLENGES),
        ("tiny_solutions.json", SOLUTIONS),
        ("sub.json", SUBMISSION),
    ):
        (tmp_path / name).write_text(json.dumps(obj))
    return tmp_path / "sub.json", tmp_path / "tiny_solutions.json", tmp_path / "tiny_challenges.json"


def evaluate_html(submission, solutions, out, *extra) -> str:
    result = runner.invoke(
        app, ["evaluate", str(submission), "--solutions", str(solutions), "--html", str(out), *extra]
    )
    assert result.exit_code == 0, result.output
    return out.read_text(encoding="utf-8")


def sections(page: str) -> dict[str, str]:
    """task id (unescaped) -> the opening tag of its section."""
    tags = re.findall(r'<section class="task [^>]*>', page)
    return {html.unescape(re.search(r'data-id="([^"]*)"', tag).group(1)): tag for tag in tags}


def test_page_shows_every_task_with_its_verdict(files, tmp_path):
    submission, solutions, _ = files
    page = evaluate_html(submission, solutions, tmp_path / "report.html")
    tags = sections(page)
    assert list(tags) == ["solved01", "missed02", ODD_ID]
    assert 'class="task solved"' in tags["solved01"] and 'data-solved="1"' in tags["solved01"]
    for task_id in ("missed02", ODD_ID):
        assert 'class="task unsolved"' in tags[task_id] and 'data-solved="0"' in tags[task_id]
    assert page.count("&#10003; solved</span>") == 1
    assert "&#10007; unsolved" in page and "1 of 2 tests solved" in page
    assert "<h2>solved01</h2>" in page and "<h2>missed02</h2>" in page
    assert ODD_ID not in page and f"<h2>{html.escape(ODD_ID)}</h2>" in page
    assert page.count("<h3>demonstrations</h3>") == 3  # found beside the solutions file
    assert page.count("test input<small>") == 4
    assert page.count('<figure class="answer">') == 4
    assert "1 of 3" in page  # tasks solved
    assert re.search(r"<b>0\.5000</b><span>pass@2</span>", page)  # (1 + 0 + 1/2) / 3
    # Self-contained: nothing to fetch.
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"\b(src|href)\s*=", page)


def test_wrong_cells_are_marked_only_on_attempts_of_the_answers_shape(files, tmp_path):
    submission, solutions, _ = files
    page = evaluate_html(submission, solutions, tmp_path / "report.html")
    missed = page[page.index('data-id="missed02"') : page.index(f'data-id="{html.escape(ODD_ID)}"')]
    # attempt_1 is 1x3 against a 3x1 answer (no marks); attempt_2 misses one cell, the bottom one.
    assert missed.count('class="wrong"') == 1
    assert 'class="wrong" d="M0.32 2.32h.36v.36h-.36z"' in missed


def test_explicit_challenges_and_none(files, tmp_path):
    submission, solutions, challenges = files
    lone = tmp_path / "lone" / "answers.json"
    lone.parent.mkdir()
    shutil.copy(solutions, lone)
    page = evaluate_html(submission, lone, tmp_path / "bare.html")
    assert "<h3>demonstrations</h3>" not in page and "test input<small>" not in page
    assert page.count("no challenge for this task") == 3
    assert page.count('<figure class="answer">') == 4 and "attempt 2 &#10003;" in page
    page = evaluate_html(submission, lone, tmp_path / "full.html", "--challenges", str(challenges))
    assert page.count("<h3>demonstrations</h3>") == 3


def test_challenges_without_html_and_a_missing_challenges_file_are_one_line_errors(files, tmp_path):
    submission, solutions, _ = files
    for extra in (
        ["--challenges", str(tmp_path / "x.json")],
        ["--html", str(tmp_path / "r.html"), "--challenges", str(tmp_path / "missing.json")],
    ):
        result = runner.invoke(app, ["evaluate", str(submission), "--solutions", str(solutions), *extra])
        assert result.exit_code == 1, result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert "missing.json: no such file" in result.output
    assert not (tmp_path / "r.html").exists()


def chromium(tmp_path, *args) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@needs_chromium
def test_page_renders_in_headless_chromium(files, tmp_path):
    from matplotlib.image import imread

    submission, solutions, _ = files
    report = tmp_path / "report.html"
    evaluate_html(submission, solutions, report)
    shot = tmp_path / "shot.png"
    done = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,900", report.as_uri())
    assert shot.exists(), done.stderr[-2000:]
    pixels = (imread(shot)[..., :3] * 255).round().astype(np.uint8).reshape(-1, 3)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    assert len(colours) > 20
    assert counts.max() / len(pixels) < 0.8  # the most common colour (the background) is not all there is
    drawn = {tuple(c) for c in colours}
    arc = {tuple(int(h[i : i + 2], 16) for i in (1, 3, 5)) for h in ARC_COLOURS}
    assert len(arc & drawn) >= 6, "the grids' cells are not drawn in ARC's colours"


@needs_chromium
def test_sort_and_filter_controls_run_in_chromium(files, tmp_path):
    submission, solutions, _ = files
    page = evaluate_html(submission, solutions, tmp_path / "report.html")
    # Set the controls as a reader would, then let the page's own script apply them.
    choose = (
        '<script>byId("show").value = "unsolved"; byId("sort").value = "-cells";'
        'byId("min-cells").value = "4"; update();</script></body>'
    )
    controlled = tmp_path / "controlled.html"
    controlled.write_text(page.replace("</body>", choose), encoding="utf-8")
    done = chromium(tmp_path, "--dump-dom", controlled.as_uri())
    dom = done.stdout
    assert "1 of 3 tasks" in dom, done.stderr[-2000:]
    tags = sections(dom)
    assert list(tags) == [ODD_ID, "solved01", "missed02"]  # answer cells 8, 4, 3
    assert "hidden" not in tags[ODD_ID]
    assert "hidden" in tags["solved01"] and "hidden" in tags["missed02"]  # solved; fewer than 4 answer cells


def test_fallback_attempts_are_marked_and_the_checkpoints_named(files, tmp_path):
    submission, solutions, _ = files
    model = {"source": "model", "votes": 4, "checkpoints": {"ckpt-0: runs/a/step_2": 3, "ckpt-1: runs/b/step_9": 1}}
    fallback = {"source": "fallback: the test input"}
    record = {
        "solved01": [{"attempt_1": fallback, "attempt_2": model}],
        "missed02": [{"attempt_1": fallback, "attempt_2": fallback}],
        ODD_ID: [{"attempt_1": model, "attempt_2": fallback}, {"attempt_1": model, "attempt_2": model}],
    }
    plain = evaluate_html(submission, solutions, tmp_path / "plain.html")
    assert '<figure class="fallback' not in plain and "checkpoints:" not in plain  # no record, no marks
    submission.with_name("sub.sources.json").write_text(json.dumps(record))
    page = evaluate_html(submission, solutions, tmp_path / "report.html")
    assert page.count('<figure class="fallback') == 4 and page.count('<figure class="hit fallback') == 0
    assert page.count('class="source"') == 8 and page.count(">model</small>") == 4
    assert "checkpoints: <code>ckpt-0: runs/a/step_2; ckpt-1: runs/b/step_9</code>" in page
    assert "<span>pass@2 of fallbacks</span>" in page and "<span>pass@2 of the model's answers</span>" in page
