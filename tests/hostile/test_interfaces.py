"""Scripts and environment variables are interfaces too: a bad value is one line naming the
option or variable and the fix, before any work, never a traceback. Each mechanism, and where it
lives:

- the benchmark scripts' arguments are checked as the CLI's settings are (finite, bounded, a
  lever that splits into settings), in one line and exit status 2: benchmarks/arguments.py;
- every environment variable arcsolver reads is checked as a setting is (a number, finite,
  bounded), in one line naming it: arcsolver/environment.py;
- every Hub error is one line, a cache whose refs/main names no revision it can hold included:
  arcsolver/hub.py's _download.
"""

import importlib.util
import sys
from pathlib import Path

import pytest
from helpers import TINY, error_line
from typer.testing import CliRunner

from arcsolver.cli import app
from arcsolver.errors import ArcsolverError, ConfigError

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


# --- the benchmark scripts' arguments -------------------------------------------------------------


def script(name: str):
    """benchmarks/<name>.py, imported as a module (its main() not run)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def refused(main, argv, capsys, monkeypatch=None) -> str:
    """The one line a script's main prints for argv, which must exit 2 without a traceback."""
    if monkeypatch is not None:
        monkeypatch.setattr(sys, "argv", ["script", *argv])
    with pytest.raises(SystemExit) as exit:
        main(argv) if monkeypatch is None else main()
    out, err = capsys.readouterr()
    assert exit.value.code == 2, out + err
    lines = (out + err).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--flops", "1e9", "--lever", 'model.mixer="mlp'], ['--lever model.mixer="mlp: ', "no closing quotation"]),
        (["--flops", "1e9", "--seeds", "0"], ["--seeds 0: ", "from 1 to"]),
        (["--baseline-seconds", "2", "--seeds", "0"], ["--seeds 0: ", "from 1 to"]),
        (["--flops", "inf"], ["--flops inf: not finite"]),
        (["--baseline-seconds", "nan"], ["--baseline-seconds nan: not finite"]),
        (["--flops", "1e9", "--jobs", "0"], ["--jobs 0: "]),
        (["--flops", "1e9", "--eval-versions", "1e3"], ["--eval-versions 1e3: not a whole number"]),
        (["--flops", "1e9", "--lever", " "], ["--lever  : not settings"]),
    ],
)
def test_levers_refuses_its_arguments_in_one_line_before_any_work(tmp_path, capsys, args, fragments):
    levers = script("levers")
    out = tmp_path / "levers"
    sets = [x for s in TINY for x in ("--set", s)]
    line = refused(levers.main, ["--out", str(out), *sets, *args], capsys)
    assert all(fragment in line for fragment in fragments), line
    assert not out.exists()  # refused before any work


def test_levers_refuses_an_out_that_is_a_file_or_a_manifest_that_is_no_record(tmp_path, capsys):
    levers = script("levers")
    taken = tmp_path / "taken"
    taken.write_text("mine\n")
    line = refused(levers.main, ["--out", str(taken), "--flops", "1e9"], capsys)
    assert line.startswith(f"error: --out {taken}: cannot create it") and taken.read_text() == "mine\n"
    out = tmp_path / "levers"
    out.mkdir()
    (out / "levers.json").write_text('{"finished": {}, "budget": "lots"}')
    sets = [x for s in TINY for x in ("--set", s)]
    assert levers.main(["--out", str(out), *sets, "--flops", "1e9", "--no-levers"]) == 1
    error_line(capsys.readouterr().out, out / "levers.json", "no FLOPs count", "remove it")


@pytest.mark.parametrize(
    "name, args, fragment",
    [
        ("memory", ["--batch", "0"], "--batch 0: out of bounds"),
        ("memory", ["--cap-gb", "inf"], "--cap-gb inf: not finite"),
        ("throughput", ["--steps", "-1"], "--steps -1: out of bounds"),
        ("solve_scaling", ["--tasks", "0"], "--tasks 0: out of bounds"),
        ("reference", ["--seeds", "0"], "--seeds 0: out of bounds"),
        ("published_checkpoint", ["--concept", "x", "--tasks", "1e9"], "--tasks 1e9: not a whole number"),
    ],
)
def test_every_benchmark_script_refuses_its_arguments_in_one_line(capsys, monkeypatch, name, args, fragment):
    assert fragment in refused(script(name).main, args, capsys, monkeypatch)


# --- environment variables ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, cause",
    [
        ("inf", "not a finite number"),
        ("nan", "not a finite number"),
        ("1e400", "not a finite number"),
        ("-1", "out of bounds"),
        ("0", "out of bounds"),
        ("1e7", "out of bounds"),
        ("lots", "not a number"),
    ],
)
def test_the_input_size_limit_from_the_environment_is_checked_as_a_setting(tmp_path, monkeypatch, value, cause):
    task = tmp_path / "t.json"
    task.write_text('{"t1": {"train": [{"input": [[1]], "output": [[2]]}], "test": [{"input": [[1]]}]}}')
    monkeypatch.setenv("ARCSOLVER_MAX_INPUT_MB", value)
    result = runner.invoke(app, ["data", "check", str(task)])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
    error_line(result.output, "ARCSOLVER_MAX_INPUT_MB", f"{value!r} is {cause}", "set it to megabytes from")
    monkeypatch.setenv("ARCSOLVER_MAX_INPUT_MB", "1")
    assert runner.invoke(app, ["data", "check", str(task)]).exit_code == 0


def test_every_reader_of_an_environment_variable_checks_it(monkeypatch):
    from arcsolver.environment import env_integer, env_number
    from arcsolver.solve.shards import PARENT_PID_ENV, exit_with_parent

    monkeypatch.setenv(PARENT_PID_ENV, "12x")
    with pytest.raises(ConfigError, match=f"{PARENT_PID_ENV}: '12x' is not a whole number"):
        exit_with_parent()
    for raw in ("١٢", "1e3", "99999999999999999999999999999999999"):  # digits of another script, a float, too many
        monkeypatch.setenv("X_TEST", raw)
        with pytest.raises(ConfigError, match="X_TEST: "):
            env_integer("X_TEST", None, 1, 100, "processes")
    monkeypatch.setenv("X_TEST", " 7 ")
    assert env_integer("X_TEST", None, 1, 100, "processes") == 7 and env_number("X_TEST", 1.0, 0, 8, "MB") == 7.0
    monkeypatch.delenv("X_TEST")
    assert env_integer("X_TEST", None, 1, 100, "processes") is None and env_number("X_TEST", 2.5, 0, 8, "MB") == 2.5


# --- the Hub ------------------------------------------------------------------------------------


@pytest.mark.parametrize("ref", [b"..", b"/elsewhere", b"\xff\xfe"], ids=["parent", "absolute", "not text"])
def test_a_hub_cache_whose_refs_main_names_no_revision_it_holds_is_one_line(tmp_path, ref):
    from helpers.hub import REPO, hub_cache, run_offline

    cache = hub_cache(tmp_path)
    refs = cache / f"models--{REPO.replace('/', '--')}" / "refs" / "main"
    refs.write_bytes(ref)
    done = run_offline(cache, f"hf:{REPO}/arc_v1_public/step_7", "--out", tmp_path / "run")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    error_line(done.stderr, f"hf:{REPO}/arc_v1_public/step_7", f"{refs} is", "remove it and download again")
    assert not (tmp_path / "run").exists()


def test_a_repository_name_the_hub_refuses_is_one_line():
    pytest.importorskip("huggingface_hub", reason="the hub extra is not installed")
    from arcsolver.hub import download_reference

    with pytest.raises(
        ArcsolverError, match=r"^hf:a\.\.b/c/x/step_7: not a name the Hub accepts \(.*\); check OWNER/REPO$"
    ):
        download_reference("hf:a..b/c/x/step_7", "all_config.yaml")
