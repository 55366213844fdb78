"""README.md and docs/: every relative link resolves (a file, and a heading for its #anchor), and every
`arcsolver ...` command their code blocks show exists (its `--help` runs)."""

import re
import shlex
from pathlib import Path

import typer.main
from typer.testing import CliRunner

from arcsolver.cli import app

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^[ \t]*```.*?^[ \t]*```[ \t]*$", flags=re.M | re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
# The words before a command's own: a line's start, or what starts a command within it.
STARTERS = {"-m", "&&", "||", ";", "|"}


def prose(text: str) -> str:
    """The text outside code blocks."""
    return FENCE.sub("", text)


def code_lines(text: str) -> list[str]:
    """Every line of the code blocks, a line continued with a backslash joined to the next."""
    lines = []
    for block in FENCE.findall(text):
        body = block.split("\n")[1:-1]
        lines += "\n".join(body).replace("\\\n", " ").split("\n")
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: its text lowercased, links reduced to their text, punctuation
    other than hyphens and underscores dropped, spaces made hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings; a repeated one gets -1, -2... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", prose(page.read_text(encoding="utf-8")), flags=re.M):
        base = slug(heading)
        found.add(f"{base}-{seen[base]}" if base in seen else base)
        seen[base] = seen.get(base, 0) + 1
    return found


def broken_links(page: Path) -> list[str]:
    broken = []
    text = re.sub(r"`[^`\n]*`", "", prose(page.read_text(encoding="utf-8")))
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{page.relative_to(ROOT)}: {target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{page.relative_to(ROOT)}: {target}: no such heading")
    return broken


def commands(page: Path) -> list[list[str]]:
    """The words after `arcsolver` of every command the page's code blocks show."""
    found = []
    for line in code_lines(page.read_text(encoding="utf-8")):
        words = shlex.split(line, comments=True)
        for i, word in enumerate(words):
            if (word == "arcsolver" or word.endswith("/arcsolver")) and (i == 0 or words[i - 1] in STARTERS):
                found.append(words[i + 1 :])
    return found


def command_path(words: list[str]) -> tuple[str, ...]:
    """The subcommand names a command starts with, down to the command that runs; a word that names
    no subcommand of a group raises."""
    command = typer.main.get_command(app)
    path: list[str] = []
    while (subcommands := getattr(command, "commands", None)) is not None:  # a group
        word = words[len(path)] if len(path) < len(words) else ""
        if word not in subcommands:
            raise LookupError(f"`{' '.join(['arcsolver', *path])}`: {word!r} is none of its commands")
        command = subcommands[word]
        path.append(word)
    return tuple(path)


def test_every_relative_link_resolves_to_a_file_and_its_anchor_to_a_heading():
    assert len(PAGES) > 1  # docs/ found
    assert [b for page in PAGES for b in broken_links(page)] == []


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in LINK.findall(prose((ROOT / "README.md").read_text()))}
    assert [p.name for p in PAGES[1:] if p not in linked] == []


def test_every_arcsolver_command_shown_exists_and_its_help_runs():
    paths: dict[tuple[str, ...], str] = {}
    for page in PAGES:
        for words in commands(page):
            try:
                paths.setdefault(command_path(words), page.name)
            except LookupError as error:
                raise AssertionError(f"{page.relative_to(ROOT)}: {error}") from None
    assert {("pretrain",), ("solve",), ("kaggle", "bundle"), ("data", "list")} <= set(paths)
    runner = CliRunner()
    for path, page in paths.items():
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (page, path, result.output)
