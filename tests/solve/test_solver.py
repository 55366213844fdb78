"""The submission stage: adaptation, augmented inference, voting, and a file that is always valid."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from helpers import error_line
from helpers.solve import QUICK, quick, sources_counts, write_challenges

import arcsolver.console
from arcsolver.data.augment import Augmentation
from arcsolver.data.encoding import VOCAB_SIZE, encode_grid
from arcsolver.data.loaders import load_tasks
from arcsolver.data.task import Pair, Task, as_grid
from arcsolver.engine.pretrained import load_model
from arcsolver.evaluation.inference import predict, queries_for, rank_by_likelihood, vote_queries
from arcsolver.evaluation.voting import Candidate, vote
from arcsolver.solve.adapt import adapt
from arcsolver.solve.submission import check_submission


class Oracle(torch.nn.Module):
    """Predicts, for every query, the known answer mapped into the query's augmented frame."""

    def __init__(self, answers_by_input: dict[bytes, np.ndarray], canvas: int):
        super().__init__()
        self.answers, self.canvas = answers_by_input, canvas
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def predict(self, inputs, puzzle_ids, *levers):
        logits = torch.full((len(inputs), self.canvas**2, VOCAB_SIZE), -10.0)
        for i, board in enumerate(inputs.numpy().astype(np.uint8)):
            target = encode_grid(self.answers[board.tobytes()], self.canvas).reshape(-1).astype(np.int64)
            logits[i, np.arange(self.canvas**2), target] = 10.0
        return logits, torch.zeros(len(inputs))


def test_inverse_mapping_recovers_the_answer_from_every_frame():
    inp = as_grid([[1, 2, 0], [0, 3, 0]])
    answer = as_grid([[4, 0], [5, 6], [0, 7]])
    task = Task("t", (Pair(inp, answer),), (Pair(inp, answer),))
    augs = [Augmentation(d, tuple([0, *np.random.default_rng(d).permutation(range(1, 10))])) for d in range(8)]
    canvas = 6
    # The oracle answers each augmented input with the augmented answer, as a perfect model would.
    oracle = Oracle({encode_grid(a.apply_grid(inp), canvas).tobytes(): a.apply_grid(answer) for a in augs}, canvas)
    queries = queries_for(task, [(i + 1, a) for i, a in enumerate(augs)])
    preds = predict(oracle, {"t": task}, queries, canvas, batch_size=3)
    assert all(np.array_equal(grid, answer) for grid, _ in preds)
    ranked = vote_queries(queries, preds)[("t", 0)]
    assert len(ranked) == 1 and ranked[0].votes == 8 and np.array_equal(ranked[0].grid, answer)


def test_vote_ranks_by_count_then_halting_confidence():
    a, b, c = as_grid([[1]]), as_grid([[2]]), as_grid([[3, 3]])
    ranked = vote([(a, -1.0), (b, 3.0), (a, -1.0), (c, 5.0), (b, -3.0), (None, 9.0)])
    assert [r.votes for r in ranked] == [2, 2, 1]
    # a and b both have 2 votes; b's mean confidence (sigmoid 3, sigmoid -3) averages 0.5 > a's.
    assert ranked[0].grid.tolist() == [[2]] and ranked[1].grid.tolist() == [[1]]
    assert ranked[2].votes == 1


def test_likelihood_reranks_the_top_candidates():
    canvas = 4
    good, bad = as_grid([[2, 2], [2, 2]]), as_grid([[3]])
    task = Task("t", (Pair(good, good),), (Pair(good, good),))
    queries = queries_for(task, [(1, Augmentation.identity()), (2, Augmentation(1, tuple(range(10))))])
    log_probs = torch.full((2, canvas**2, VOCAB_SIZE), -5.0)
    for q in range(2):  # the model puts its mass on `good` in both frames
        target = encode_grid(queries[q].augmentation.apply_grid(good), canvas).reshape(-1).astype(np.int64)
        log_probs[q, np.arange(canvas**2), target] = -0.01
    ranked = rank_by_likelihood([Candidate(bad, 5, 0.9), Candidate(good, 1, 0.1)], queries, log_probs, top=2)
    assert np.array_equal(ranked[0].grid, good)


def test_adaptation_grows_the_table_and_leaves_the_network_alone_at_first(tiny_run):
    model, pcfg, _ = load_model(tiny_run, torch.device("cpu"))
    before = {k: v.clone() for k, v in model.state_dict().items() if "puzzle_emb" not in k}
    rows_before = model.puzzle_emb.n_rows
    mean_row = model.puzzle_emb.weight[1].clone()  # where every new row starts
    tasks = list(load_tasks("arc1/evaluation").filter(lambda t: t.max_side() <= 5))[:2]
    adapted = adapt(model, tasks, quick("adapt.embeddings_only_fraction=1.0", "optim.ema_rate=0.5"), torch.float32)
    assert model.puzzle_emb.n_rows == rows_before + sum(len(v) for v in adapted.versions.values())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # embeddings only: network untouched
    new_rows = model.puzzle_emb.weight[rows_before:]
    assert any(not torch.equal(row, mean_row) for row in new_rows)  # sign-SGD moved the rows it trained

    model2, _, _ = load_model(tiny_run, torch.device("cpu"))
    adapt(model2, tasks, quick("adapt.embeddings_only_fraction=0.5"), torch.float32)
    changed = [k for k in before if not torch.equal(before[k], model2.state_dict()[k])]
    assert changed  # the second phase trains the network


def run_solve(args, timeout=600):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "arcsolver", "solve", *args, *[x for s in QUICK for x in ("--set", s)]]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def says_what_its_sources_say(log: str, out) -> tuple[int, int]:
    """Check that a solve's last line counts the tasks from the model and of fallbacks only as the
    sources record beside out does; those counts."""
    model, only = sources_counts(json.loads(out.with_name(f"{out.stem}.sources.json").read_text()))
    last = log.strip().splitlines()[-1]
    holds = "fallbacks only: the model answered none" if model == 0 else f"{model} from the model, {only} fallbacks"
    assert f": {model + only} tasks, {holds}" in last, last
    return model, only


def test_malformed_and_oversized_tasks_get_fallbacks_and_the_rest_are_solved(tiny_run, tmp_path):
    good = list(load_tasks("arc1/evaluation").filter(lambda t: t.max_side() <= 5))[:2]
    big = list(load_tasks("arc2/evaluation"))[:1]  # far larger than the 5x5 canvas it was trained on
    bad = {
        "ragged00": {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1, 2]]}]},
        "colour10": {"train": [{"input": [[1]], "output": [[10]]}], "test": [{"input": [[1]]}, {"input": [[2]]}]},
        "notatask": [1, 2, 3],
    }
    challenges = tmp_path / "c.json"
    obj = write_challenges(challenges, good + big, bad)
    out = tmp_path / "submission.json"
    done = run_solve([str(challenges), "--out", str(out), "--checkpoint", str(tiny_run)])
    assert done.returncode == 0, done.stdout + done.stderr
    sub = json.loads(out.read_text())
    assert list(sub) == list(obj)  # every task, in the input's order
    assert check_submission(sub, None, str(out)) == []
    assert len(sub["colour10"]) == 2 and len(sub["notatask"]) == 1
    for task in good + big:
        assert len(sub[task.id]) == len(task.test)
    log = done.stdout
    for tid in ("ragged00", "colour10", "notatask"):
        assert f"task {tid}:" in log and "fallback" in log
    # rope2d positions run any canvas: the large task is answered by the model too.
    assert f"task {big[0].id}:" not in log
    # Of the rest, those the tiny model gave no grid keep their fallbacks too, and say so.
    model, only = says_what_its_sources_say(log, out)
    assert model >= 1 and only == 3 + log.count("the model's answers hold no valid grid")
    for rule in ("votes", "likelihood"):
        assert json.loads((tmp_path / f"submission.{rule}.json").read_text()).keys() == sub.keys()


def test_solve_killed_midway_leaves_a_valid_file(tiny_run, tmp_path):
    tasks = list(load_tasks("arc1/evaluation").filter(lambda t: t.max_side() <= 5))[:6]
    challenges = tmp_path / "c.json"
    write_challenges(challenges, tasks)
    out = tmp_path / "submission.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "arcsolver",
        "solve",
        str(challenges),
        "--out",
        str(out),
        "--checkpoint",
        str(tiny_run),
        *[x for s in QUICK + ["adapt.steps=100000"] for x in ("--set", s)],
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not out.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(1.0)  # well into adaptation
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    sub = json.loads(out.read_text())
    assert set(sub) == {t.id for t in tasks}
    assert check_submission(sub, None, str(out)) == []


def test_time_budget_is_kept(tiny_run, tmp_path):
    tasks = list(load_tasks("arc1/evaluation").filter(lambda t: t.max_side() <= 5))[:3]
    challenges = tmp_path / "c.json"
    write_challenges(challenges, tasks)
    out = tmp_path / "submission.json"
    began = time.monotonic()
    done = run_solve(
        [
            str(challenges),
            "--out",
            str(out),
            "--checkpoint",
            str(tiny_run),
            "--time-budget",
            "25",
            "--set",
            "adapt.steps=1000000",
            "--set",
            "run.safety_margin_s=5",
        ]
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert time.monotonic() - began < 25 + 15  # start-up (imports) is outside the planner's view
    assert "time budget reached" not in done.stdout  # every task answered by the model, grid or none
    says_what_its_sources_say(done.stdout, out)


def test_no_checkpoint_is_one_line(tmp_path):
    (tmp_path / "c.json").write_text("{}")
    nothing = tmp_path / "nothing"
    result = invoke_solve(str(tmp_path / "c.json"), "--checkpoint", str(nothing), "--out", str(tmp_path / "s.json"))
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    error_line(result.output, nothing, "no checkpoint", "run directory", "checkpoints/step_*")


def test_solve_ignores_a_broken_solutions_file_beside_the_challenges(tiny_run, tmp_path):
    tasks = list(load_tasks("arc1/evaluation").filter(lambda t: t.max_side() <= 5))[:1]
    challenges = tmp_path / "x_challenges.json"
    write_challenges(challenges, tasks)
    (tmp_path / "x_solutions.json").write_text("{}")  # lines up with nothing
    out = tmp_path / "submission.json"
    done = run_solve([str(challenges), "--out", str(out), "--checkpoint", str(tiny_run)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "x_solutions.json" not in done.stdout and sum(says_what_its_sources_say(done.stdout, out)) == 1


def invoke_solve(*args):
    from typer.testing import CliRunner

    from arcsolver.cli import app

    return CliRunner().invoke(app, ["solve", *args, *[x for s in QUICK for x in ("--set", s)]], env={"COLUMNS": "300"})


def small_tasks(n):
    return list(load_tasks("arc1/evaluation").filter(lambda t: t.max_side() <= 5))[:n]


def test_a_solve_of_fallbacks_only_says_so_and_prints_paths_and_ids_as_written(tiny_run, tmp_path):
    folder = tmp_path / "[bold]out"
    challenges = folder / "c.json"
    folder.mkdir()
    bad = {
        tid: {"train": [{"input": [[1]], "output": [[10]]}], "test": [{"input": [[3]]}]} for tid in ("[/x]", "b", "c")
    }
    write_challenges(challenges, [], bad)
    out = folder / "s.json"
    result = invoke_solve(str(challenges), "--out", str(out), "--checkpoint", str(tiny_run))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-1].startswith(f"wrote {out}: 3 tasks, fallbacks only: the model answered none of them"), lines[-1]
    assert f"fallback {challenges}: task [/x]: train pair 0 output: colour 10" in result.output
    assert f"fallback {challenges}: task b: train pair 0 output: colour 10" in result.output
    assert f"checkpoint {tiny_run}/checkpoints/step_" in result.output


def test_progress_lines_off_a_terminal(tiny_run, tmp_path, monkeypatch):
    import io

    from rich.console import Console

    from arcsolver.solve import solver

    monkeypatch.setattr(arcsolver.console, "HEARTBEAT_S", 0.0)
    challenges = tmp_path / "c.json"
    write_challenges(challenges, small_tasks(2))
    log = io.StringIO()
    solver.solve(challenges, tmp_path / "s.json", str(tiny_run), quick(), Console(file=log, width=300))
    lines = log.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines if line.startswith("adapting 2 tasks: step")] == [
        f"adapting 2 tasks: step {k}/4" for k in (1, 2, 3, 4)
    ]
    assert [line.split(",")[0] for line in lines if line.startswith("inference: task")] == [
        "inference: task 1/2",
        "inference: task 2/2",
    ]
    assert "━" not in log.getvalue()  # no bar lands at the log's end beside the lines


def test_adaptations_progress_total_is_the_step_its_deadline_allows(tiny_run, tmp_path, monkeypatch):
    import io

    from rich.console import Console

    from arcsolver.solve import answer, solver

    monkeypatch.setattr(arcsolver.console, "HEARTBEAT_S", 0.0)
    monkeypatch.setattr(answer, "adaptation_deadline", lambda *a: time.monotonic() + 3.0)
    challenges = tmp_path / "c.json"
    write_challenges(challenges, small_tasks(2))
    log = io.StringIO()
    report = solver.solve(
        challenges, tmp_path / "s.json", str(tiny_run), quick("adapt.steps=100000"), Console(file=log)
    )
    totals = [int(m[1]) for m in re.finditer(r"adapting 2 tasks: step \d+/(\d+),", log.getvalue())]
    assert totals and report.adapt_steps < 100_000
    assert max(totals) < 100_000  # the deadline's step from the first line on, not adapt.steps


def test_one_seed_writes_the_same_submission_twice(tiny_run, tmp_path):
    import io

    from rich.console import Console

    from arcsolver.solve import solver

    challenges = tmp_path / "c.json"
    write_challenges(challenges, small_tasks(2))
    cfg, written = quick("run.seed=7"), []
    for k in (1, 2):
        torch.manual_seed(k)  # whatever torch's generator holds before, the solve starts from run.seed
        solver.solve(challenges, tmp_path / f"s{k}.json", str(tiny_run), cfg, Console(file=io.StringIO()))
        # The tiny model's answers and weights come out the same unseeded too: check the seed itself.
        assert torch.initial_seed() == 7
        written.append([(tmp_path / f"s{k}{tag}.json").read_bytes() for tag in ("", ".votes", ".likelihood")])
    assert written[0] == written[1]


def test_a_submission_that_cannot_be_written_first_stops_at_once(tiny_run, tmp_path, monkeypatch):
    import errno

    from arcsolver.solve import writer

    def full(path, obj):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writer, "write_submission", full)
    challenges = tmp_path / "c.json"
    write_challenges(challenges, small_tasks(1))
    out = tmp_path / "s.json"
    out.write_text("{}")
    result = invoke_solve(str(challenges), "--out", str(out), "--checkpoint", str(tiny_run))
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    error_line(result.output, out, "No space left on device", "already there are intact")
    assert out.read_text() == "{}"


def test_a_write_that_fails_midway_keeps_the_last_complete_file_and_ends_in_one_error(tiny_run, tmp_path, monkeypatch):
    import errno

    from arcsolver.solve import writer

    real, calls = writer.write_submission, []

    def fills_up(path, obj):
        calls.append(path)
        if len(calls) > 4:  # the fallbacks (3 files and the sources record) are written, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, obj)

    monkeypatch.setattr(writer, "write_submission", fills_up)
    tasks = small_tasks(2)
    challenges = tmp_path / "c.json"
    write_challenges(challenges, tasks)
    out = tmp_path / "s.json"
    result = invoke_solve(str(challenges), "--out", str(out), "--checkpoint", str(tiny_run))
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    warnings = [line for line in result.output.splitlines() if "each later write tries again" in line]
    assert len(warnings) == 4  # once per file, not once per write
    error_line(result.output, out, "No space left on device", "last complete write", "free space and run solve again")
    sub = json.loads(out.read_text())  # the fallbacks, whole
    assert set(sub) == {t.id for t in tasks} and check_submission(sub, None, str(out)) == []


def test_heldout_scores_count_exact_answers_and_cells_of_the_first_attempt():
    from arcsolver.evaluation.scoring import heldout_scores

    a, b = as_grid([[1, 2], [3, 4]]), as_grid([[5, 5, 5]])
    task = Task("t1", (Pair(a, a),), (Pair(a, a), Pair(b, b)))
    other = Task("t2", (Pair(a, a),), (Pair(a, b),))
    half_right = as_grid([[1, 2], [0, 0]])
    ranked = {
        ("t1", 0): [Candidate(half_right, 3, 0.5), Candidate(a, 1, 0.5)],  # right at attempt 2, half the cells at 1
        ("t1", 1): [Candidate(b, 2, 0.5)],  # right at attempt 1
        ("t2", 0): [Candidate(a, 1, 0.5)],  # wrong shape: no cells
    }
    scores = heldout_scores({"t1": task, "t2": other}, ranked)
    assert scores["tasks"] == 2
    assert scores["pass@1"] == pytest.approx((0.5 + 0) / 2)
    assert scores["pass@2"] == pytest.approx((1.0 + 0) / 2)
    assert scores["cell_accuracy"] == pytest.approx(((0.5 + 1.0) / 2 + 0.0) / 2)
    # a task with a test output nobody queried is left out
    assert heldout_scores({"t1": task}, {("t1", 0): ranked[("t1", 0)]})["tasks"] == 0


def same_predictions(a, b, tolerance=0.0) -> bool:
    """Whether two lists of (grid or None, halt logit) hold the same grids and halt logits."""
    return len(a) == len(b) and all(
        (ga is None and gb is None or ga is not None and gb is not None and np.array_equal(ga, gb))
        and abs(ha - hb) <= tolerance
        for (ga, ha), (gb, hb) in zip(a, b)
    )


def test_rollouts_add_seeded_noisy_runs_to_the_vote_and_none_change_nothing(tiny_run):
    from arcsolver.evaluation.canvas import model_canvases
    from arcsolver.evaluation.inference import Levers

    model, _, _ = load_model(tiny_run, torch.device("cpu"))
    task = small_tasks(1)[0]
    versions = adapt(model, [task], quick("adapt.steps=0"), torch.float32).versions[task.id]
    canvas, tasks = model_canvases(model.config), {task.id: task}

    def run(rollouts, seed=0, batch_size=16, noise=0.5):
        queries = queries_for(task, versions, 2, rollouts)
        levers = Levers(rollout_noise=noise, seed=seed)
        return queries, predict(model, tasks, queries, canvas, batch_size, levers=levers)

    queries, plain = run(0)
    assert queries == queries_for(task, versions, 2)  # no rollout: the queries of old
    assert same_predictions(plain, predict(model, tasks, queries, canvas, 16))  # and their answers
    with_rollouts, preds = run(3)
    assert len(with_rollouts) == 4 * len(queries) and with_rollouts[: len(queries)] == queries
    assert [q.rollout for q in with_rollouts[len(queries) :: len(queries)]] == [1, 2, 3]
    assert same_predictions(preds[: len(queries)], plain)  # the plain runs are untouched by their rollouts
    noisy_halts = [halt for _, halt in preds[len(queries) :]]
    assert len(set(noisy_halts)) == len(noisy_halts) and noisy_halts != [h for _, h in plain] * 3  # own starts
    assert same_predictions(run(3)[1], preds)  # seeded
    assert same_predictions(run(3, batch_size=1)[1], preds, 1e-5)  # the same noise however the queries are batched
    assert not same_predictions(run(3, seed=1)[1], preds)  # drawn from the seed
    votes = lambda ps: sum(c.votes for c in vote_queries(with_rollouts[: len(ps)], ps)[(task.id, 0)])  # noqa: E731
    assert votes(preds) == sum(g is not None for g, _ in preds) > votes(plain) or all(g is None for g, _ in preds)


def test_an_ensemble_of_two_copies_of_one_checkpoint_votes_as_it_does_with_every_count_doubled(
    tiny_run, tmp_path, monkeypatch
):
    import io

    from rich.console import Console

    from arcsolver.solve import answer, solver

    challenges = tmp_path / "c.json"
    write_challenges(challenges, small_tasks(2))
    rankings = []
    real_rank = answer.rank_answers

    def rank(task, answers, cfg):
        ranked = real_rank(task, answers, cfg)
        rankings.append((task.id, len(answers), ranked))
        return ranked

    monkeypatch.setattr(answer, "rank_answers", rank)
    cfg = quick("infer.rollouts=1")
    solver.solve(challenges, tmp_path / "one.json", str(tiny_run), cfg, Console(file=io.StringIO()))
    one = {tid: ranked for tid, n, ranked in rankings}
    rankings.clear()
    two = [str(tiny_run), str(tiny_run)]
    report = solver.solve(challenges, tmp_path / "two.json", two, cfg, Console(file=io.StringIO()))
    both = {tid: ranked for tid, n, ranked in rankings if n == 2}
    assert len(both) == 2 and set(both) == set(one)
    sources = json.loads((tmp_path / "two.sources.json").read_text())
    assert (report.solved_by_model, report.fallback_only) == sources_counts(sources)
    assert sum(c.votes for ranked in one.values() for cands in ranked["votes"] for c in cands) > 0  # not vacuous
    for tid, ranked in both.items():
        for rule in ("votes", "likelihood"):
            for mine, alone in zip(ranked[rule], one[tid][rule]):
                assert [c.votes for c in mine] == [2 * c.votes for c in alone]
                assert [c.grid.tolist() for c in mine] == [c.grid.tolist() for c in alone]
                assert [c.halt_confidence for c in mine] == pytest.approx([c.halt_confidence for c in alone])
    files = lambda stem: [(tmp_path / f"{stem}{tag}.json").read_bytes() for tag in ("", ".votes", ".likelihood")]  # noqa: E731
    assert files("two") == files("one")
    for k in (0, 1):  # each checkpoint's own attempts, beside the ensemble's
        assert (tmp_path / f"two.ckpt-{k}.json").read_bytes() == (tmp_path / "one.json").read_bytes()
    # The sources record: each model attempt's votes, half from each copy, some from the rollouts.
    models = [a for tests in sources.values() for test in tests for a in test.values() if a["source"] == "model"]
    assert models and all(
        list(a["checkpoints"].values()) == [a["votes"] // 2] * 2 and sum(a["checkpoints"].values()) == a["votes"]
        for a in models
    )
    assert [name.split(":")[0] for name in models[0]["checkpoints"]] == ["ckpt-0", "ckpt-1"]
    assert all(0 <= a["rollout_votes"] <= a["votes"] for a in models)
    others = [a["source"] for tests in sources.values() for test in tests for a in test.values() if a not in models]
    assert all(s.startswith("fallback: ") for s in others)


def test_adaptation_cools_down_by_its_steps(tiny_run):
    model, _, _ = load_model(tiny_run, torch.device("cpu"))
    tasks = list(load_tasks("arc1/evaluation").filter(lambda t: t.max_side() <= 5))[:2]
    lrs = []
    cfg = quick(
        "adapt.steps=8",
        "adapt.log_every=1",
        "adapt.embeddings_only_fraction=0",
        "optim.warmup_steps=0",
        "optim.cooldown=0.5",
    )
    adapt(model, tasks, cfg, torch.float32, on_step=lambda step, loss, means: lrs.append(means["lr"]))
    assert lrs == pytest.approx([cfg.optim.lr * f for f in [1, 1, 1, 1, 1, 0.75, 0.5, 0.25]])
