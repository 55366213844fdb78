"""The `arcsolver` command line, one module per command group: data.py, pretrain.py, plan.py, runs.py
(report, compare, evaluate-run), solve.py (solve, evaluate), reference.py (import-reference), hub.py
(push), and arcsolver/kaggle/cli.py; `settings` is here. What pretrain and import-reference may write
into a run directory is run_dir.py's."""

from __future__ import annotations

import inspect

import typer
from rich.table import Table

from arcsolver.cli.data import data_app
from arcsolver.cli.hub import push
from arcsolver.cli.plan import plan_command
from arcsolver.cli.pretrain import pretrain
from arcsolver.cli.reference import import_reference
from arcsolver.cli.runs import compare, evaluate_run, report
from arcsolver.cli.solve import evaluate, solve
from arcsolver.console import console, one_line, user_errors
from arcsolver.kaggle.cli import kaggle_app

app = typer.Typer(help="ARC-AGI with the Tiny Recursive Model.", no_args_is_help=True, add_completion=False)
app.add_typer(data_app, name="data")
app.add_typer(kaggle_app, name="kaggle")
app.command()(pretrain)
app.command("plan")(plan_command)
app.command()(evaluate)
app.command("evaluate-run")(evaluate_run)
app.command()(solve)
app.command()(report)
app.command()(compare)
app.command("import-reference")(import_reference)
app.command()(push)


@app.command()
@user_errors
def settings(
    stage: str = typer.Argument(
        ..., metavar="pretrain|submit", help="Which recipes: pretrain (pretrain/*.toml) or submit (submit/*.toml)."
    ),
    recipe: str = typer.Option(
        None, help="Show this recipe's values instead of the defaults (a file or a shipped name)."
    ),
) -> None:
    """List every setting a recipe or --set can change: section.key, value, type and meaning."""
    from arcsolver.recipes import load_recipe, recipe_path, setting_rows, stage_model

    model = stage_model(stage)
    config = load_recipe(model, stage, recipe) if recipe else model()
    title = f"{stage} settings: values of {recipe_path(stage, recipe)}" if recipe else f"{stage} settings: defaults"
    rows = setting_rows(config)
    if console.width >= table_width(rows, MEANING_MIN_WIDTH):
        console.print(settings_table(title, rows))
    else:
        print_setting_list(title, rows)
    console.print(
        "change one with --set SECTION.KEY=VALUE (the value in TOML syntax), e.g. --set optim.lr=3e-4", highlight=False
    )


# Below this many characters a wrapped meaning column reads worse than one setting per line.
MEANING_MIN_WIDTH = 40


def table_width(rows: list[tuple[str, str, str, str]], meaning_width: int) -> int:
    """The width settings_table needs with its first three columns unwrapped and the meaning
    column meaning_width wide: cells, their padding of one space each side, and the borders."""
    widths = [max(len(row[i]) for row in rows) for i in range(3)] + [meaning_width]
    return sum(w + 2 for w in widths) + len(widths) + 1


def settings_table(title: str, rows: list[tuple[str, str, str, str]]) -> Table:
    """The settings as a table: setting, value, type and meaning (where any setting has one)."""
    columns = ("setting", "value", "type", "meaning")[: 4 if any(row[3] for row in rows) else 3]
    table = Table(title=one_line(title), title_justify="left")
    for col in columns:
        table.add_column(col, no_wrap=col == "setting", overflow="fold")
    for row in rows:
        table.add_row(*(one_line(cell) for cell in row[: len(columns)]))
    return table


def print_setting_list(title: str, rows: list[tuple[str, str, str, str]]) -> None:
    """The settings for a narrow terminal: one per line (setting = value, type), its meaning
    indented below it, each wrapped at spaces to the terminal's width."""
    from rich.padding import Padding
    from rich.text import Text

    console.print(f"[bold]{one_line(title)}", highlight=False)
    for key, value, type_, meaning in rows:
        console.print(f"[bold]{one_line(key)}[/] = {one_line(value)}  [dim]{one_line(type_)}", highlight=False)
        if meaning:
            console.print(Padding(Text.from_markup(one_line(meaning)), (0, 0, 0, 4), expand=False))


def reflowed(doc: str) -> str:
    """A docstring with each paragraph on one line: the help screen keeps the source's line
    breaks after the first paragraph, which at 80 columns would break sentences mid-line."""
    return "\n\n".join(" ".join(paragraph.split()) for paragraph in inspect.cleandoc(doc).split("\n\n"))


def reflow_help(group: typer.Typer) -> None:
    """Reflow the help of every command of group and of its sub-groups (see reflowed)."""
    for info in group.registered_commands:
        doc = info.help or (info.callback.__doc__ if info.callback else None)
        if doc:
            info.help = reflowed(doc)
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            reflow_help(sub.typer_instance)


reflow_help(app)


def main() -> None:  # pragma: no cover - the console-script entry point
    app()
