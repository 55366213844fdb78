"""Input files that are not regular files, or too large, are refused before a byte is read."""

import os

import pytest
from typer.testing import CliRunner

from arcsolver.cli import app

runner = CliRunner()


def one_error_line(result, path) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith(("error:", "problem:"))]
    assert len(lines) == 1 and str(path) in lines[0], result.output
    return lines[0]


@pytest.mark.parametrize("command", [["data", "check"], ["solve"]])
def test_devices_and_pipes_are_refused(tmp_path, command, tiny_run):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)  # opening it would block until a writer came: it must not be opened
    extra = ["--checkpoint", str(tiny_run), "--out", str(tmp_path / "sub.json")] if command == ["solve"] else []
    for path in ["/dev/zero", str(fifo)]:
        line = one_error_line(runner.invoke(app, [*command, path, *extra]), path)
        assert "not a regular file" in line


def test_a_file_over_the_limit_names_the_variable_that_raises_it(tmp_path, monkeypatch):
    big = tmp_path / "big.json"
    big.write_text("{" + " " * 5000 + "}")
    monkeypatch.setenv("ARCSOLVER_MAX_INPUT_MB", "0.001")
    line = one_error_line(runner.invoke(app, ["data", "check", str(big)]), big)
    assert "ARCSOLVER_MAX_INPUT_MB" in line
    monkeypatch.setenv("ARCSOLVER_MAX_INPUT_MB", "1")
    assert "ARCSOLVER_MAX_INPUT_MB" not in runner.invoke(app, ["data", "check", str(big)]).output


def test_recipe_files_get_the_same_checks(tmp_path):
    utf16 = tmp_path / "r.toml"
    utf16.write_bytes("[run]\nseed = 1\n".encode("utf-16"))
    deep = tmp_path / "deep.toml"
    deep.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    for path in ["/dev/zero", str(utf16), str(deep)]:
        result = runner.invoke(app, ["pretrain", "--recipe", path, "--plan"])
        one_error_line(result, path)
